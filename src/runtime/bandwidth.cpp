#include "runtime/bandwidth.h"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "hearth/error.h"

namespace hearth::runtime {
namespace {

// Four 64-bit lanes: one 32-byte load with AVX2, two 16-byte loads on baseline x86-64/ARM.
using U64x4 = uint64_t __attribute__((vector_size(32)));
constexpr size_t kWordsPerLine = 8;  // uint64 words per 64-byte cache line

// Sum of p[0, n_words); n_words is a multiple of 8 (whole cache lines). Two lines per
// iteration into four independent accumulators keep many loads in flight.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
uint64_t sum_words(const uint64_t* p, size_t n_words) {
  U64x4 a0{}, a1{}, a2{}, a3{};
  size_t i = 0;
  for (; i + 16 <= n_words; i += 16) {
    U64x4 x0, x1, x2, x3;
    std::memcpy(&x0, p + i, sizeof x0);
    std::memcpy(&x1, p + i + 4, sizeof x1);
    std::memcpy(&x2, p + i + 8, sizeof x2);
    std::memcpy(&x3, p + i + 12, sizeof x3);
    a0 += x0;
    a1 += x1;
    a2 += x2;
    a3 += x3;
  }
  for (; i + 4 <= n_words; i += 4) {
    U64x4 x;
    std::memcpy(&x, p + i, sizeof x);
    a0 += x;
  }
  const U64x4 s = (a0 + a1) + (a2 + a3);
  return s[0] + s[1] + s[2] + s[3];
}

// Thread t of nt owns cache lines [n_lines·t/nt, n_lines·(t+1)/nt), as words.
void range_of(size_t n_lines, int t, int nt, size_t& begin, size_t& end) {
  begin = n_lines * static_cast<size_t>(t) / static_cast<size_t>(nt) * kWordsPerLine;
  end = n_lines * static_cast<size_t>(t + 1) / static_cast<size_t>(nt) * kWordsPerLine;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

std::vector<BandwidthResult> measure_read_bandwidth(uint64_t bytes, const std::vector<int>& thread_counts,
                                                    int passes) {
  if (bytes < 4096 || bytes % 64 != 0)
    throw Error("bandwidth probe: buffer size " + std::to_string(bytes) +
                " bytes must be at least 4096 and a multiple of 64");
  if (thread_counts.empty()) throw Error("bandwidth probe: no thread counts given");
  for (int t : thread_counts)
    if (t < 1) throw Error("bandwidth probe: thread count " + std::to_string(t) + " must be at least 1");
  if (passes < 1) throw Error("bandwidth probe: passes " + std::to_string(passes) + " must be at least 1");
  if (bytes > SIZE_MAX) throw Error("bandwidth probe: buffer size " + std::to_string(bytes) + " bytes is too large");

  std::unique_ptr<uint64_t, FreeDeleter> buffer(static_cast<uint64_t*>(std::aligned_alloc(64, bytes)));
  if (!buffer) throw Error("bandwidth probe: cannot allocate " + std::to_string(bytes) + " bytes");
#ifdef MADV_HUGEPAGE
  madvise(buffer.get(), bytes, MADV_HUGEPAGE);  // fewer TLB misses; a hint, failure is fine
#endif
  uint64_t* const words = buffer.get();
  const size_t n_words = bytes / sizeof(uint64_t);
  const size_t n_lines = n_words / kWordsPerLine;

  // First touch by the widest team, so the pages are spread the way they will be read.
  const int fill_threads = *std::max_element(thread_counts.begin(), thread_counts.end());
#pragma omp parallel num_threads(fill_threads)
  {
    size_t begin, end;
    range_of(n_lines, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (size_t i = begin; i < end; ++i) words[i] = i;
  }

  std::vector<BandwidthResult> results;
  for (const int nt : thread_counts) {
    BandwidthResult r;
    r.n_threads = nt;
    r.bytes = bytes;
    r.passes = passes;
    r.best_seconds = 0;
    for (int pass = -1; pass < passes; ++pass) {  // pass -1: untimed warm-up
      uint64_t total = 0;
      int team = nt;
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(nt) reduction(+ : total)
      {
        size_t begin, end;
        range_of(n_lines, omp_get_thread_num(), omp_get_num_threads(), begin, end);
        total += sum_words(words + begin, end - begin);
        if (omp_get_thread_num() == 0) team = omp_get_num_threads();
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.checksum = total;
      r.n_threads = team;  // what OpenMP granted (OMP_THREAD_LIMIT may cap it)
      if (pass >= 0 && (r.best_seconds == 0 || seconds < r.best_seconds)) r.best_seconds = seconds;
    }
    r.best_seconds = std::max(r.best_seconds, 1e-9);  // a clock tick, never a division by zero
    r.gb_per_s = static_cast<double>(bytes) / r.best_seconds / 1e9;
    results.push_back(r);
  }
  return results;
}

uint64_t parse_size_bytes(const std::string& text) {
  const size_t digits = text.find_first_not_of("0123456789");
  const std::string number = text.substr(0, digits), suffix = digits == std::string::npos ? "" : text.substr(digits);
  uint64_t mul = 0;
  if (suffix.empty()) mul = 1;
  else if (suffix == "K" || suffix == "k" || suffix == "KiB") mul = uint64_t{1} << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") mul = uint64_t{1} << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") mul = uint64_t{1} << 30;
  uint64_t v = 0;
  bool ok = !number.empty() && number.size() <= 19 && mul != 0;
  if (ok) {
    v = std::stoull(number);
    ok = v <= UINT64_MAX / mul;
  }
  if (!ok) throw Error("'" + text + "' is not a size in bytes (e.g. 1073741824, 512M, 1G)");
  return v * mul;
}

}  // namespace hearth::runtime

#include "kernels/moe.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <string>

#include "hearth/error.h"
#include "kernels/ops.h"

namespace hearth::kernels {

void moe_route_softmax(const float* logits, int64_t n_tokens, int n_expert, int n_used, bool renormalize,
                       MoeRouting& out) {
  if (n_expert <= 0 || n_used <= 0 || n_used > n_expert)
    throw Error("mixture of experts: " + std::to_string(n_used) + " of " + std::to_string(n_expert) +
                " experts per token is not a valid routing");
  out.n_expert = n_expert;
  out.n_used = n_used;
  out.n_tokens = n_tokens;
  const size_t n_entries = static_cast<size_t>(n_tokens) * static_cast<size_t>(n_used);
  out.ids.resize(n_entries);
  out.weights.resize(n_entries);
  std::vector<float> p(static_cast<size_t>(n_expert));
  std::vector<uint8_t> taken(static_cast<size_t>(n_expert));
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::memcpy(p.data(), logits + t * n_expert, p.size() * sizeof(float));
    softmax(p.data(), n_expert);
    std::fill(taken.begin(), taken.end(), uint8_t{0});
    int32_t* ids = out.ids.data() + t * n_used;
    float* w = out.weights.data() + t * n_used;
    float sum = 0.0f;
    for (int s = 0; s < n_used; ++s) {
      int best = -1;
      for (int e = 0; e < n_expert; ++e)
        if (!taken[static_cast<size_t>(e)] && (best < 0 || p[static_cast<size_t>(e)] > p[static_cast<size_t>(best)]))
          best = e;
      taken[static_cast<size_t>(best)] = 1;
      ids[s] = best;
      w[s] = p[static_cast<size_t>(best)];
      sum += w[s];
    }
    if (renormalize) {
      const float div = std::max(sum, kMoeMinWeightSum);
      for (int s = 0; s < n_used; ++s) w[s] /= div;
    }
  }
  moe_group(out);
}

void moe_route_sigmoid(const float* logits, int64_t n_tokens, int n_expert, int n_used, MoeRouting& out) {
  if (n_expert <= 0 || n_used <= 0 || n_used > n_expert)
    throw Error("mixture of experts: " + std::to_string(n_used) + " of " + std::to_string(n_expert) +
                " experts per token is not a valid routing");
  out.n_expert = n_expert;
  out.n_used = n_used;
  out.n_tokens = n_tokens;
  const size_t n_entries = static_cast<size_t>(n_tokens) * static_cast<size_t>(n_used);
  out.ids.resize(n_entries);
  out.weights.resize(n_entries);
  std::vector<uint8_t> taken(static_cast<size_t>(n_expert));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* l = logits + t * n_expert;
    std::fill(taken.begin(), taken.end(), uint8_t{0});
    int32_t* ids = out.ids.data() + t * n_used;
    float* w = out.weights.data() + t * n_used;
    for (int s = 0; s < n_used; ++s) {
      int best = -1;
      for (int e = 0; e < n_expert; ++e)
        if (!taken[static_cast<size_t>(e)] && (best < 0 || l[e] > l[best])) best = e;
      taken[static_cast<size_t>(best)] = 1;
      ids[s] = best;
      w[s] = 1.0f / (1.0f + std::exp(-l[best]));  // ggml_sigmoid
    }
  }
  moe_group(out);
}

void moe_group(MoeRouting& out) {
  const size_t n_entries = static_cast<size_t>(out.n_tokens) * static_cast<size_t>(out.n_used);
  if (out.ids.size() < n_entries) throw Error("mixture of experts: routing has fewer ids than tokens x experts used");
  out.offsets.assign(static_cast<size_t>(out.n_expert) + 1, 0);
  for (size_t i = 0; i < n_entries; ++i) {
    const int32_t e = out.ids[i];
    if (e < 0 || e >= out.n_expert)
      throw Error("mixture of experts: expert id " + std::to_string(e) + " is outside [0, " +
                  std::to_string(out.n_expert) + ")");
    ++out.offsets[static_cast<size_t>(e) + 1];
  }
  for (size_t e = 0; e < static_cast<size_t>(out.n_expert); ++e) out.offsets[e + 1] += out.offsets[e];
  out.order.resize(n_entries);
  std::vector<int32_t> next(out.offsets.begin(), out.offsets.end() - 1);
  for (size_t i = 0; i < n_entries; ++i) out.order[static_cast<size_t>(next[static_cast<size_t>(out.ids[i])]++)] =
      static_cast<int32_t>(i);
}

void moe_gather(const float* src, int64_t width, const int32_t* entries, int64_t n, int n_used, float* dst) {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * width, src + static_cast<int64_t>(entries[i] / n_used) * width,
                static_cast<size_t>(width) * sizeof(float));
}

void moe_positions(const MoeRouting& r, std::vector<int32_t>& position) {
  position.resize(r.order.size());
  for (size_t i = 0; i < r.order.size(); ++i) position[static_cast<size_t>(r.order[i])] = static_cast<int32_t>(i);
}

void moe_combine(const MoeRouting& r, const std::vector<int32_t>& position, const float* src, int64_t width,
                 float* y, const ThreadPool& pool, bool weighted) {
  const int k = r.n_used;
  // Parallel only for prompt-sized batches (grain 16 tokens): a decode step is not worth a barrier.
  pool.parallel_for(r.n_tokens, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* yr = y + t * width;
      for (int s = 0; s < k; ++s) {
        const size_t entry = static_cast<size_t>(t * k + s);
        const float w = weighted ? r.weights[entry] : 1.0f;
        const float* sr = src + static_cast<int64_t>(position[entry]) * width;
        if (s == 0) {
          for (int64_t j = 0; j < width; ++j) yr[j] = w * sr[j];
        } else {
          for (int64_t j = 0; j < width; ++j) yr[j] += w * sr[j];
        }
      }
    }
  }, 16);
}

void moe_matmuls(std::span<const MoeMatmul> jobs, MoeSchedule schedule, const ThreadPool& pool,
                 std::vector<MatmulScratch>& scratch) {
  const int nt = pool.n_threads();
  if (scratch.size() < static_cast<size_t>(nt)) scratch.resize(static_cast<size_t>(nt));
  if (schedule == MoeSchedule::kPerMatrix || nt == 1) {
    for (const MoeMatmul& j : jobs) matmul(j.w, j.x, j.n_rows, j.y, j.ldy, pool, scratch[0]);
    return;
  }
  // Blocks of output rows: about 8 per thread over all products (so threads finishing early
  // find work), at least 16 rows (a thread's outputs fill whole cache lines), multiples of 16.
  int64_t total_rows = 0;
  for (const MoeMatmul& j : jobs) total_rows += j.w.n_out;
  int64_t block = (total_rows / (8 * nt) + 15) / 16 * 16;
  block = std::max<int64_t>(16, block);
  struct Unit {
    int32_t job;
    int64_t o0, o1;
  };
  std::vector<Unit> units;
  for (size_t j = 0; j < jobs.size(); ++j)
    for (int64_t o = 0; o < jobs[j].w.n_out; o += block)
      units.push_back({static_cast<int32_t>(j), o, std::min(jobs[j].w.n_out, o + block)});
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first exception of any thread, rethrown after the region
  const ThreadPool single(1);
  pool.run_on_all([&](int thread) {
    MatmulScratch& ms = scratch[static_cast<size_t>(thread)];
    try {
      for (size_t u = next.fetch_add(1); u < units.size() && !failed; u = next.fetch_add(1)) {
        const MoeMatmul& j = jobs[static_cast<size_t>(units[u].job)];
        MatrixView w = j.w;
        w.data = j.w.row(units[u].o0);
        w.n_out = units[u].o1 - units[u].o0;
        matmul(w, j.x, j.n_rows, j.y + units[u].o0, j.ldy, single, ms);
      }
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

MatrixView expert_matrix(const MatrixView& stack, int64_t n_out, int64_t e) {
  if (n_out <= 0 || e < 0 || (e + 1) * n_out > stack.n_out)
    throw Error("mixture of experts: expert " + std::to_string(e) + " of " + std::to_string(n_out) +
                " rows is outside a stack of " + std::to_string(stack.n_out) + " rows");
  MatrixView m = stack;
  m.n_out = n_out;
  m.data = stack.data + static_cast<size_t>(e * n_out) * stack.row_bytes;
  return m;
}

}  // namespace hearth::kernels

// Google Benchmark: one attention_f16 call (kernels/attention.h) of one layer with the shape of
// qwen3-1.7b (16 query heads, 8 KV heads, head_dim 128), per CPU path and thread count:
// * prompt/<n>: n query tokens of a fresh prompt, token t attending cells 0..t (causal),
// * decode/<n>: one token attending n cached cells.
// Items processed = (query head, key) pairs. Names: BM_Attention/<case>/<path>/threads:<t>; a
// path this CPU cannot run reports an error instead of a time.
//
// BM_AttentionFlash/<type>/<case>/<path>/threads:<t>: the same calls of attention_flash over a
// cache whose K and V rows are stored as <type> (f16, bf16, q8_0, q4_0). Its SIMD kernel is
// the AVX2 one on both SIMD paths, so only scalar and avx2 are registered.
//
// Compare paths with e.g. `hearth_bench --benchmark_filter='Attention/prompt'`, cache types
// with `--benchmark_filter='Attention(Flash/[a-z0-9_]+)?/decode/4096/avx2'`.
#include <benchmark/benchmark.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/threadpool.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace {

using hearth::kernels::CpuPath;

void BM_Attention(benchmark::State& state, bool prompt, int n, CpuPath path, int threads) {
  if (!hearth::kernels::cpu_supports(path)) {
    state.SkipWithError((std::string("this CPU cannot run the ") + hearth::kernels::cpu_path_name(path) + " kernels")
                            .c_str());
    return;
  }
  hearth::kernels::AttnShape s;
  s.n_head = 16;
  s.n_head_kv = 8;
  s.head_dim_k = s.head_dim_v = 128;
  s.scale = 1.0f / std::sqrt(128.0f);
  const int64_t width_k = static_cast<int64_t>(s.n_head_kv) * s.head_dim_k;
  const int64_t width_v = static_cast<int64_t>(s.n_head_kv) * s.head_dim_v;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint16_t> k(static_cast<size_t>(width_k * n)), v(static_cast<size_t>(width_v * n));
  for (auto& h : k) h = hearth::quant::fp32_to_fp16(dist(rng));
  for (auto& h : v) h = hearth::quant::fp32_to_fp16(dist(rng));
  std::vector<int32_t> cells(static_cast<size_t>(n));
  std::iota(cells.begin(), cells.end(), 0);
  const int64_t n_tokens = prompt ? n : 1;
  std::vector<hearth::kernels::AttnSpan> spans(static_cast<size_t>(n_tokens));
  int64_t pairs = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    spans[t] = {cells.data(), static_cast<int32_t>(prompt ? t + 1 : n)};
    pairs += spans[t].n * s.n_head;
  }
  std::vector<float> q(static_cast<size_t>(n_tokens * s.n_head * s.head_dim_k));
  for (float& x : q) x = dist(rng);
  std::vector<float> out(static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v));
  const hearth::kernels::KvLayerF16 kv{k.data(), v.data(), width_k, width_v};
  const hearth::kernels::ThreadPool pool(threads);
  for (auto _ : state) {
    hearth::kernels::attention_f16_path(path, q.data(), n_tokens, s, kv, spans.data(), out.data(), pool);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * pairs);
}

void BM_AttentionFlash(benchmark::State& state, hearth::quant::GgmlType type, bool prompt, int n, CpuPath path,
                       int threads) {
  if (!hearth::kernels::cpu_supports(path)) {
    state.SkipWithError((std::string("this CPU cannot run the ") + hearth::kernels::cpu_path_name(path) + " kernels")
                            .c_str());
    return;
  }
  hearth::kernels::AttnShape s;
  s.n_head = 16;
  s.n_head_kv = 8;
  s.head_dim_k = s.head_dim_v = 128;
  s.scale = 1.0f / std::sqrt(128.0f);
  const int64_t width = static_cast<int64_t>(s.n_head_kv) * s.head_dim_k;
  const int64_t row = static_cast<int64_t>(hearth::quant::row_size(type, width));
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint8_t> k(static_cast<size_t>(row * n)), v(static_cast<size_t>(row * n));
  std::vector<float> x(static_cast<size_t>(width));
  for (int c = 0; c < n; ++c) {
    for (float& f : x) f = dist(rng);
    hearth::quant::traits(type).from_float(x.data(), k.data() + c * row, width);
    for (float& f : x) f = dist(rng);
    hearth::quant::traits(type).from_float(x.data(), v.data() + c * row, width);
  }
  std::vector<int32_t> cells(static_cast<size_t>(n));
  std::iota(cells.begin(), cells.end(), 0);
  const int64_t n_tokens = prompt ? n : 1;
  std::vector<hearth::kernels::AttnSpan> spans(static_cast<size_t>(n_tokens));
  int64_t pairs = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    spans[t] = {cells.data(), static_cast<int32_t>(prompt ? t + 1 : n)};
    pairs += spans[t].n * s.n_head;
  }
  std::vector<float> q(static_cast<size_t>(n_tokens * s.n_head * s.head_dim_k));
  for (float& f : q) f = dist(rng);
  std::vector<float> out(static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v));
  const hearth::kernels::KvLayerView kv{type, type, k.data(), v.data(), row, row};
  const hearth::kernels::ThreadPool pool(threads);
  for (auto _ : state) {
    hearth::kernels::attention_flash_path(path, q.data(), n_tokens, s, kv, spans.data(), out.data(), pool);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * pairs);
}

const bool kRegistered = [] {
  struct Case {
    bool prompt;
    int n;
  };
  const Case cases[] = {{true, 256}, {true, 512}, {false, 512}, {false, 4096}};
  const CpuPath paths[] = {CpuPath::scalar, CpuPath::avx2, CpuPath::avx512};
  for (const Case& c : cases)
    for (CpuPath p : paths)
      for (int threads : {1, 2})
        benchmark::RegisterBenchmark((std::string("BM_Attention/") + (c.prompt ? "prompt/" : "decode/") +
                                      std::to_string(c.n) + "/" + hearth::kernels::cpu_path_name(p) +
                                      "/threads:" + std::to_string(threads))
                                         .c_str(),
                                     BM_Attention, c.prompt, c.n, p, threads)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
  for (hearth::quant::GgmlType type : {hearth::quant::GgmlType::F16, hearth::quant::GgmlType::BF16,
                                       hearth::quant::GgmlType::Q8_0, hearth::quant::GgmlType::Q4_0}) {
    std::string tname(hearth::quant::type_name(type));
    for (char& ch : tname) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (const Case& c : cases)
      for (CpuPath p : {CpuPath::scalar, CpuPath::avx2})
        for (int threads : {1, 2})
          benchmark::RegisterBenchmark((std::string("BM_AttentionFlash/") + tname + "/" +
                                        (c.prompt ? "prompt/" : "decode/") + std::to_string(c.n) + "/" +
                                        hearth::kernels::cpu_path_name(p) + "/threads:" + std::to_string(threads))
                                           .c_str(),
                                       BM_AttentionFlash, type, c.prompt, c.n, p, threads)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
  }
  return true;
}();

}  // namespace

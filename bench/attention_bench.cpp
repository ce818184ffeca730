// Google Benchmark: one attention_f16 call (kernels/attention.h) of one layer with the shape of
// qwen3-1.7b (16 query heads, 8 KV heads, head_dim 128), per CPU path and thread count:
// * prompt/<n>: n query tokens of a fresh prompt, token t attending cells 0..t (causal),
// * decode/<n>: one token attending n cached cells.
// Items processed = (query head, key) pairs. Names: BM_Attention/<case>/<path>/threads:<t>; a
// path this CPU cannot run reports an error instead of a time.
//
// Compare paths with e.g. `hearth_bench --benchmark_filter='Attention/prompt'`.
#include <benchmark/benchmark.h>

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
  return true;
}();

}  // namespace

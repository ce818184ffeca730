// Google Benchmark: one vec_dot call per weight type on one row of 4096 elements (the row
// length of a 4096-wide projection), with the activation row already converted to the
// weight's partner format (formats.md §2.7). Bytes processed = bytes of the weight row read
// per call (the activation row stays in cache across rows of a matrix-vector product).
// The activation converters are measured separately, per f32 input byte.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/dot.h"
#include "quant/types.h"

namespace {

using hearth::quant::GgmlType;

constexpr int64_t kRow = 4096;

std::vector<float> random_row(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(kRow);
  for (float& v : x) v = dist(rng);
  return x;
}

void BM_VecDot(benchmark::State& state, GgmlType weight_type) {
  const auto& wt = hearth::quant::traits(weight_type);
  const GgmlType act_type = wt.vec_dot_type;
  const hearth::kernels::VecDotFn dot = hearth::kernels::vec_dot_fn(weight_type);
  if (dot == nullptr) {
    state.SkipWithError("no kernel");
    return;
  }
  const auto w_f32 = random_row(1);
  const auto a_f32 = random_row(2);
  std::vector<uint8_t> w(hearth::quant::row_size(weight_type, kRow));
  std::vector<uint8_t> a(hearth::quant::row_size(act_type, kRow));
  wt.from_float(w_f32.data(), w.data(), kRow);
  hearth::kernels::act_quantize_fn(act_type)(a_f32.data(), a.data(), kRow);
  for (auto _ : state) {
    float r = dot(kRow, w.data(), a.data());
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
  state.SetItemsProcessed(state.iterations() * kRow);
}

void BM_ActQuantize(benchmark::State& state, GgmlType act_type) {
  const auto x = random_row(3);
  std::vector<uint8_t> y(hearth::quant::row_size(act_type, kRow));
  const auto quantize = hearth::kernels::act_quantize_fn(act_type);
  for (auto _ : state) {
    quantize(x.data(), y.data(), kRow);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kRow * static_cast<int64_t>(sizeof(float)));
}

BENCHMARK_CAPTURE(BM_VecDot, F32, GgmlType::F32);
BENCHMARK_CAPTURE(BM_VecDot, F16, GgmlType::F16);
BENCHMARK_CAPTURE(BM_VecDot, BF16, GgmlType::BF16);
BENCHMARK_CAPTURE(BM_VecDot, Q8_0, GgmlType::Q8_0);
BENCHMARK_CAPTURE(BM_VecDot, Q4_0, GgmlType::Q4_0);
BENCHMARK_CAPTURE(BM_VecDot, Q4_K, GgmlType::Q4_K);
BENCHMARK_CAPTURE(BM_VecDot, Q5_K, GgmlType::Q5_K);
BENCHMARK_CAPTURE(BM_VecDot, Q6_K, GgmlType::Q6_K);

BENCHMARK_CAPTURE(BM_ActQuantize, Q8_0, GgmlType::Q8_0);
BENCHMARK_CAPTURE(BM_ActQuantize, Q8_K, GgmlType::Q8_K);

}  // namespace

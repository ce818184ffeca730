// Google Benchmark: one vec_dot call per weight type and CPU path (scalar, avx2, avx512; see
// kernels/cpu.h) on one row of 4096 elements (the row length of a 4096-wide projection), with
// the activation row already converted to the weight's partner format (formats.md §2.7).
// Bytes processed = bytes of the weight row read per call (the activation row stays in cache
// across rows of a matrix-vector product). The activation converters are measured separately,
// per f32 input byte. Names: BM_VecDot/<type>/<path>, BM_ActQuantize/<type>/<path>; a path this
// CPU cannot run reports an error instead of a time.
//
// Compare paths with e.g. `hearth_bench --benchmark_filter='VecDot/Q4_K'`.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/dot.h"
#include "quant/types.h"

namespace {

using hearth::kernels::CpuPath;
using hearth::quant::GgmlType;

constexpr int64_t kRow = 4096;

std::vector<float> random_row(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(kRow);
  for (float& v : x) v = dist(rng);
  return x;
}

bool runnable(benchmark::State& state, CpuPath path) {
  if (hearth::kernels::cpu_supports(path)) return true;
  state.SkipWithError((std::string("this CPU cannot run the ") + hearth::kernels::cpu_path_name(path) + " kernels").c_str());
  return false;
}

void BM_VecDot(benchmark::State& state, GgmlType weight_type, CpuPath path) {
  if (!runnable(state, path)) return;
  const auto& wt = hearth::quant::traits(weight_type);
  const GgmlType act_type = wt.vec_dot_type;
  const hearth::kernels::VecDotFn dot = hearth::kernels::vec_dot_fn(weight_type, path);
  if (dot == nullptr) {
    state.SkipWithError("no kernel");
    return;
  }
  const auto w_f32 = random_row(1);
  const auto a_f32 = random_row(2);
  std::vector<uint8_t> w(hearth::quant::row_size(weight_type, kRow));
  std::vector<uint8_t> a(hearth::quant::row_size(act_type, kRow));
  wt.from_float(w_f32.data(), w.data(), kRow);
  hearth::kernels::act_quantize_fn(act_type, CpuPath::scalar)(a_f32.data(), a.data(), kRow);
  for (auto _ : state) {
    float r = dot(kRow, w.data(), a.data());
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
  state.SetItemsProcessed(state.iterations() * kRow);
}

void BM_ActQuantize(benchmark::State& state, GgmlType act_type, CpuPath path) {
  if (!runnable(state, path)) return;
  const auto x = random_row(3);
  std::vector<uint8_t> y(hearth::quant::row_size(act_type, kRow));
  const auto quantize = hearth::kernels::act_quantize_fn(act_type, path);
  for (auto _ : state) {
    quantize(x.data(), y.data(), kRow);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kRow * static_cast<int64_t>(sizeof(float)));
}

// Every (type, path) pair, registered before main runs.
const bool kRegistered = [] {
  const GgmlType weight_types[] = {
      GgmlType::F32,  GgmlType::F16,  GgmlType::BF16,  GgmlType::Q8_0,   GgmlType::Q4_0,  GgmlType::Q4_1,
      GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL, GgmlType::MXFP4, GgmlType::Q2_K,  GgmlType::Q3_K,
      GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,  GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0,
      GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_S,
      GgmlType::IQ1_M};
  const GgmlType act_types[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K};
  const CpuPath paths[] = {CpuPath::scalar, CpuPath::avx2, CpuPath::avx512};
  for (GgmlType t : weight_types)
    for (CpuPath p : paths)
      benchmark::RegisterBenchmark(
          (std::string("BM_VecDot/") + std::string(hearth::quant::type_name(t)) + "/" + hearth::kernels::cpu_path_name(p))
              .c_str(),
          BM_VecDot, t, p);
  for (GgmlType t : act_types)
    for (CpuPath p : paths)
      benchmark::RegisterBenchmark((std::string("BM_ActQuantize/") + std::string(hearth::quant::type_name(t)) + "/" +
                                    hearth::kernels::cpu_path_name(p))
                                       .c_str(),
                                   BM_ActQuantize, t, p);
  return true;
}();

}  // namespace

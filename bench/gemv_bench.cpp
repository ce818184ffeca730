// Google Benchmark: single-row matrix products (GEMV, the decode step's matmul) through
// kernels::matmul on one thread, for the weight types of the common mixes, and the same with 4
// and 8 activation rows (/rows:N: a decode step of N sequences, weights read once). Sizes: a matrix
// that fits in L2 (512 x 2048: the kernel's compute speed; /l2wide: 96 x 8192, rows longer
// than L1 holds) and ones larger than L3 (/dram: 16384 x 4096, 38 MB in Q4_K, about a 32 MB L3;
// /big: 65536 x 4096, 151 MB in Q4_K, so none of it is still cached on the next call, as for a
// model's weights in decode: bound by memory bandwidth). Bytes processed = weight bytes
// read per call, so the DRAM rows compare directly with `hearth bench --bandwidth` (1 thread;
// /t2: 2 threads, real time).
// /lanes: the weights repacked into the lane layout first (kernels/gemm.h), as the model
// loader does on a CPU path with lane-layout kernels; /x16: into the x16 layout (16 rows
// interleaved), as it does for Q4_K and Q6_K where the path has x16 kernels.
// Names: BM_Gemv/<type>/<l2|l2wide|dram|dram/t2|big/t2>[/rows:N][/lanes|/x16]. Compare e.g. `hearth_bench --benchmark_filter=Gemv`.
// BM_GemvChain/<Q4_K|Q6_K>/rows:<1|4>: a decode step's sequence of FFN matrices (below).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "quant/types.h"

namespace {

using hearth::quant::GgmlType;

enum class Layout { natural, lanes, x16 };

void BM_Gemv(benchmark::State& state, GgmlType type, int64_t n_out, int64_t n_in, int64_t n_rows, Layout layout,
             int n_threads) {
  const auto& tr = hearth::quant::traits(type);
  const size_t row_bytes = hearth::quant::row_size(type, n_in);
  // 64 distinct quantized rows repeated over the matrix (quantizing every row would take seconds).
  constexpr int64_t kDistinct = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(n_in));
  std::vector<uint8_t> w(row_bytes * static_cast<size_t>(n_out));
  for (int64_t r = 0; r < n_out; ++r) {
    uint8_t* dst = w.data() + static_cast<size_t>(r) * row_bytes;
    if (r < kDistinct) {
      for (float& v : src) v = dist(rng);
      tr.from_float(src.data(), dst, n_in);
    } else {
      std::memcpy(dst, w.data() + static_cast<size_t>(r % kDistinct) * row_bytes, row_bytes);
    }
  }
  std::vector<float> x(static_cast<size_t>(n_in * n_rows)), y(static_cast<size_t>(n_out * n_rows));
  for (float& v : x) v = dist(rng);
  hearth::kernels::MatrixView view{type, n_in, n_out, w.data(), row_bytes};
  if (layout == Layout::x16) {
    if (!hearth::kernels::gemm::prefers_x16_layout(type, n_in, n_out)) {
      state.SkipWithError("no x16 kernel for this type on this CPU path");
      return;
    }
    for (int64_t r = 0; r < n_out; r += hearth::kernels::gemm::kX16Rows)
      hearth::kernels::gemm::to_x16(type, view.row(r), w.data() + r * row_bytes, n_in);
    view.layout = hearth::kernels::WeightLayout::x16;
  }
  if (layout == Layout::lanes) {
    if (!hearth::kernels::gemm::prefers_lane_layout(type, n_in)) {
      state.SkipWithError("no lane-layout kernel for this type on this CPU path");
      return;
    }
    for (int64_t r = 0; r < n_out; ++r) hearth::kernels::gemm::to_lane_layout(type, view.row(r), w.data() + r * row_bytes, n_in);
    view.layout = hearth::kernels::WeightLayout::lanes;
  }
  const hearth::kernels::ThreadPool pool(n_threads);
  hearth::kernels::MatmulScratch scratch;
  for (auto _ : state) {
    hearth::kernels::matmul(view, x.data(), n_rows, y.data(), n_out, pool, scratch);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
}

// A decode step's pattern: many matrices of qwen3-1.7b's FFN shapes (gate and up 6144 x 2048,
// down 2048 x 6144), 84 of them (28 layers, ~600 MB in Q4_K), each product a parallel region
// of its own on 2 threads, so every matrix comes from DRAM and each thread's share starts cold.
void BM_GemvChain(benchmark::State& state, GgmlType type, int64_t n_rows) {
  const auto& tr = hearth::quant::traits(type);
  constexpr int kLayers = 28;
  constexpr int64_t kD = 2048, kF = 6144;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(kF));
  // One quantized row of each width, repeated (quantizing every row would take minutes).
  std::vector<uint8_t> row_d(hearth::quant::row_size(type, kD)), row_f(hearth::quant::row_size(type, kF));
  for (float& v : src) v = dist(rng);
  tr.from_float(src.data(), row_d.data(), kD);
  tr.from_float(src.data(), row_f.data(), kF);
  struct M {
    std::vector<uint8_t> bytes;
    hearth::kernels::MatrixView view;
  };
  std::vector<M> ms(3 * kLayers);
  for (size_t i = 0; i < ms.size(); ++i) {
    const bool down = i % 3 == 2;
    const int64_t n_in = down ? kF : kD, n_out = down ? kD : kF;
    const std::vector<uint8_t>& row = down ? row_f : row_d;
    ms[i].bytes.resize(row.size() * static_cast<size_t>(n_out));
    for (int64_t r = 0; r < n_out; ++r) std::memcpy(ms[i].bytes.data() + r * row.size(), row.data(), row.size());
    ms[i].view = {type, n_in, n_out, ms[i].bytes.data(), row.size()};
    if (hearth::kernels::gemm::prefers_x16_layout(type, n_in, n_out)) {
      for (int64_t r = 0; r < n_out; r += hearth::kernels::gemm::kX16Rows)
        hearth::kernels::gemm::to_x16(type, ms[i].view.row(r), ms[i].bytes.data() + r * row.size(), n_in);
      ms[i].view.layout = hearth::kernels::WeightLayout::x16;
    }
  }
  std::vector<float> x(static_cast<size_t>(kF * n_rows)), y(static_cast<size_t>(kF * n_rows));
  for (float& v : x) v = dist(rng);
  const hearth::kernels::ThreadPool pool(2);
  hearth::kernels::MatmulScratch scratch;
  int64_t bytes = 0;
  for (const M& m : ms) bytes += static_cast<int64_t>(m.bytes.size());
  for (auto _ : state) {
    for (const M& m : ms) hearth::kernels::matmul(m.view, x.data(), n_rows, y.data(), m.view.n_out, pool, scratch);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

const bool kRegistered = [] {
  for (const GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K})
    for (const int64_t rows : {1, 4})
      benchmark::RegisterBenchmark(
          ("BM_GemvChain/" + std::string(hearth::quant::type_name(t)) + "/rows:" + std::to_string(rows)).c_str(),
          BM_GemvChain, t, rows)
          ->MinTime(2.0)
          ->UseRealTime();
  const GgmlType types[] = {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::IQ4_XS};
  for (GgmlType t : types) {
    const std::string name = std::string("BM_Gemv/") + std::string(hearth::quant::type_name(t));
    for (const Layout layout : {Layout::natural, Layout::lanes, Layout::x16})
      for (const int64_t rows : {1, 4, 8}) {
        if (layout == Layout::x16 && t != GgmlType::Q4_K && t != GgmlType::Q6_K) continue;
        const std::string suffix = (rows == 1 ? "" : "/rows:" + std::to_string(rows)) +
                                   (layout == Layout::lanes ? "/lanes" : layout == Layout::x16 ? "/x16" : "");
        benchmark::RegisterBenchmark((name + "/l2" + suffix).c_str(), BM_Gemv, t, 512, 2048, rows, layout, 1);
        benchmark::RegisterBenchmark((name + "/l2wide" + suffix).c_str(), BM_Gemv, t, 96, 8192, rows, layout, 1);
        benchmark::RegisterBenchmark((name + "/dram" + suffix).c_str(), BM_Gemv, t, 16384, 4096, rows, layout, 1)->MinTime(1.0);
        benchmark::RegisterBenchmark((name + "/dram/t2" + suffix).c_str(), BM_Gemv, t, 16384, 4096, rows, layout, 2)
            ->MinTime(1.0)
            ->UseRealTime();
        benchmark::RegisterBenchmark((name + "/big/t2" + suffix).c_str(), BM_Gemv, t, 65536, 4096, rows, layout, 2)
            ->MinTime(1.0)
            ->UseRealTime();
      }
  }
  return true;
}();

}  // namespace

#include "kernels/matmul.h"

#include <algorithm>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/dot.h"
#include "kernels/gemm.h"

namespace hearth::kernels {
namespace {

/// Row `i` of a repacked weight in the file's layout (row_bytes bytes at `out`).
void natural_row(const MatrixView& w, int64_t i, uint8_t* out) {
  if (w.layout == WeightLayout::x16) {
    gemm::x16_row(w.type, w.row(i - i % gemm::kX16Rows), static_cast<int>(i % gemm::kX16Rows), out, w.n_in);
  } else {
    gemm::from_lane_layout(w.type, w.row(i), out, w.n_in);
  }
}

}  // namespace

void matmul(const MatrixView& w, const float* x, int64_t n_rows, float* y, int64_t ldy, const ThreadPool& pool,
            MatmulScratch& scratch) {
  if (n_rows >= kTiledMinRows && gemm::matmul_tiled(w, x, n_rows, y, ldy, pool, scratch)) return;
  const quant::TypeTraits& wt = quant::traits(w.type);
  const VecDotFn dot = vec_dot_fn(w.type);
  if (dot == nullptr) throw Error(std::string("no matrix multiplication for weights of type ") + wt.name);
  const quant::GgmlType act_type = wt.vec_dot_type;
  const ActQuantizeFn quantize = act_quantize_fn(act_type);
  if (quantize == nullptr) throw Error(std::string("no activation converter for type ") + quant::traits(act_type).name);
  const size_t act_row = quant::row_size(act_type, w.n_in);
  scratch.act.resize(act_row * static_cast<size_t>(n_rows));
  uint8_t* act = scratch.act.data();
  pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize(x + r * w.n_in, act + static_cast<size_t>(r) * act_row, w.n_in);
  });
  // Tiles of output rows: a tile of weight rows stays in cache while every activation row
  // passes over it. 16 rows keep the floats each thread writes on separate cache lines.
  constexpr int64_t kTile = 16;
  if (w.layout != WeightLayout::natural) {
    // Repacked rows on a path without kernels for their layout: each row back to the file's layout.
    pool.parallel_for(
        w.n_out,
        [&](int64_t o0, int64_t o1) {
          std::vector<uint8_t> natural(w.row_bytes);
          for (int64_t o = o0; o < o1; ++o) {
            natural_row(w, o, natural.data());
            for (int64_t r = 0; r < n_rows; ++r) y[r * ldy + o] = dot(w.n_in, natural.data(), act + static_cast<size_t>(r) * act_row);
          }
        },
        kTile);
    return;
  }
  pool.parallel_for(
      w.n_out,
      [&](int64_t o0, int64_t o1) {
        for (int64_t ot = o0; ot < o1; ot += kTile) {
          const int64_t oe = std::min(o1, ot + kTile);
          for (int64_t r = 0; r < n_rows; ++r) {
            const uint8_t* a = act + static_cast<size_t>(r) * act_row;
            float* yr = y + r * ldy;
            for (int64_t o = ot; o < oe; ++o) yr[o] = dot(w.n_in, w.row(o), a);
          }
        }
      },
      kTile);
}

void get_row(const MatrixView& w, int64_t i, float* out) {
  const quant::TypeTraits& t = quant::traits(w.type);
  if (t.to_float == nullptr) throw Error(std::string("cannot convert tensors of type ") + t.name + " to float");
  if (w.layout != WeightLayout::natural) {
    std::vector<uint8_t> natural(w.row_bytes);
    natural_row(w, i, natural.data());
    t.to_float(natural.data(), out, w.n_in);
    return;
  }
  t.to_float(w.row(i), out, w.n_in);
}

}  // namespace hearth::kernels

// Matrix products of a weight (any supported ggml type) with float activations.
// Source: ../shared/docs/formats.md §2.7: activations are converted once per row to the
// weight type's dot-product partner, then every output is one vec_dot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/threadpool.h"
#include "quant/types.h"

namespace hearth::kernels {

/// How a weight's rows are laid out: as in the file, or repacked at load time into the lane
/// layout of kernels/gemm.h (same bytes per row, codes permuted within each 256-element chunk)
/// or its x16 layout (groups of 16 rows interleaved; a group's bytes start at row(16g)).
enum class WeightLayout : uint8_t { natural, lanes, x16 };

/// A 2-D weight {n_in, n_out} in ggml order: n_out rows of n_in elements of `type`, each row
/// `row_bytes` apart. Views point into the mmap'd file.
struct MatrixView {
  quant::GgmlType type = quant::GgmlType::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  WeightLayout layout = WeightLayout::natural;

  const uint8_t* row(int64_t i) const { return data + static_cast<size_t>(i) * row_bytes; }
};

/// Scratch memory reused across calls: activation rows in the partner format, and for the
/// tiled path (kernels/gemm.h) the activation tiles and one weight-tile buffer per thread
/// (raw bytes, 64-byte aligned by their users).
struct MatmulScratch {
  std::vector<uint8_t> act;
  std::vector<uint8_t> act_tiles;
  std::vector<uint8_t> act_natural;
  std::vector<std::vector<uint8_t>> weight_tiles;
};

/// Y = X · Wᵀ: y[r·ldy + o] = Σ_i W[o][i] · x[r·n_in + i] for r < n_rows, o < n_out.
/// X is [n_rows][n_in] f32 (contiguous), Y has row stride `ldy` floats (>= n_out).
/// Work is split over output rows so each weight row is read once for all activation rows.
/// Where the weight type and CPU path have a tiled path (kernels/gemm.h), every batch of at
/// least kTiledMinRows rows (that is, every batch) goes through it: single rows then use the
/// same arithmetic as batches, so a token's result does not depend on the batch it is in.
/// Throws Error if the weight type has no dot product.
/// Smallest batch for which matmul uses the tiled path.
inline constexpr int64_t kTiledMinRows = 1;

void matmul(const MatrixView& w, const float* x, int64_t n_rows, float* y, int64_t ldy, const ThreadPool& pool,
            MatmulScratch& scratch);

/// Dequantizes row `i` of `w` (n_in floats) into `out` (embedding lookup, ggml get_rows), in
/// either layout.
void get_row(const MatrixView& w, int64_t i, float* out);

}  // namespace hearth::kernels

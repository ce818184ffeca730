// Quantizers of the lattice ("i-quant") formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and
// IQ1_M: the search llama-quantize runs (ggml's quantize_row_iq2_xxs_impl, ..._iq2_xs_impl,
// ..._iq2_s_impl, ..._iq3_xxs_impl (IQ3_XXS and IQ3_S), ..._iq1_s_impl, ..._iq1_m_impl), written
// from the description in ../shared/docs/formats.md §3.6; block layouts in quant/blocks_iq.h
// (formats.md §2.5), codebooks in quant/iq_grids.h.
//
// Every function has the FromFloatWeightedFn signature of quant/quantize_weighted.h: `src` holds
// one row of `n` f32 values (n a non-negative multiple of 256, else hearth::Error and nothing is
// written), `dst` receives row_size(type, n) bytes, `weights` the n per-column importances
// (≥ 0, finite; formats.md §3.7) or nullptr. With importance the per-element error weight is
// qw·sqrt(σ² + x²) (σ² = Σx²/256 for IQ2_XXS/IQ2_XS, 2Σx²/256 for the others, per 256-element
// super-block). Without importance the weight is ggml's default where ggml has one: x² for
// IQ3_XXS, IQ3_S and IQ1_M, σ²/4 + x² (σ² = 2Σx²/256) for IQ2_S; ggml has none for IQ2_XXS,
// IQ2_XS and IQ1_S (it requires an imatrix), hearth uses IQ2_S's for the IQ2 types and x² for
// IQ1_S. Any finite input is accepted; non-finite input gives defined but meaningless codes.
//
// The lattice tables (which grid entry a point of the lattice is, and the nearest grid entries
// of the points that are not on the grid) are built from the grids at first use, once per
// process (thread-safe).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quant/types.h"

namespace hearth::quant {

/// The search tables of one lattice codebook (formats.md §3.6 "Initialization"). A point of the
/// lattice is a group of `width` levels (0..n_levels-1), packed as Σ level_k << (bits·k): the
/// packing of ggml's kgrid tables, so grid entry i is the point kgrid[i].
struct LatticeTable {
  int width = 0;     ///< coordinates per grid entry: 8 (IQ2_*, IQ1_*) or 4 (IQ3_*)
  int bits = 0;      ///< bits per coordinate in a packed point: 2 or 3
  int n_levels = 0;  ///< levels per coordinate the quantizers use: 3 (2-bit lattices) or 8
  int n_shells = 0;  ///< neighbour lists hold the grid entries of this many nearest distances
  std::vector<uint16_t> points;  ///< packed point of every grid entry (ggml's kgrid table)
  std::vector<int8_t> levels;    ///< levels[width·i + k]: level of coordinate k of grid entry i
  /// Per packed point: the grid index (≥ 0); for an off-grid point with all levels < n_levels,
  /// −(1 + offset) of its neighbour list in `neighbours`; kNoPoint for the other packings.
  std::vector<int32_t> map;
  /// Neighbour lists: a count c, then c grid indices sorted by (squared distance, index). The
  /// distance is Σ (level difference)² (proportional to ggml's, whose coordinates are 2L + 1).
  std::vector<uint16_t> neighbours;

  static constexpr int32_t kNoPoint = INT32_MIN;

  /// Grid index of packed point `u`, or −1 if it is not a grid entry.
  int index(uint32_t u) const { return map[u] >= 0 ? map[u] : -1; }
  /// The nearest grid entries of the off-grid point `u` (empty for grid entries and for packings
  /// with a level ≥ n_levels).
  std::span<const uint16_t> nearest(uint32_t u) const {
    const int32_t m = map[u];
    if (m >= 0 || m == kNoPoint) return {};
    const size_t off = static_cast<size_t>(-(m + 1));
    return {neighbours.data() + off + 1, neighbours[off]};
  }
};

/// The table of the codebook of `type` (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S or IQ1_M;
/// IQ1_S and IQ1_M share one), built on first use. Throws Error for other types. Neighbour
/// shells (ggml's choice): 2 for IQ2_XXS, IQ2_XS and IQ3_XXS, 1 for IQ2_S, 3 for IQ1_* and IQ3_S.
const LatticeTable& lattice_table(GgmlType type);

/// IQ2_XXS: per 32 elements, signs with an even number of negatives per 8 (the odd one out is the
/// element with the smallest weight·x²), 13 candidate scales around make_qp_quants' estimate,
/// groups of 8 rounded to levels {1, 3, 5}·scale and snapped to the best grid neighbour, scale
/// refitted by weighted least squares; 4-bit sub-scales relative to d = max_scale/31.
void quantize_weighted_iq2_xxs(const float* src, void* dst, int64_t n, const float* weights);
/// IQ2_XS: as IQ2_XXS per 16 elements, 19 candidates (2·3 − 1 + 0.1t)/max, t = −9..9; only
/// the groups that fell off the grid are re-rounded at the final scale.
void quantize_weighted_iq2_xs(const float* src, void* dst, int64_t n, const float* weights);
/// IQ2_S: as IQ2_XS with free signs (8 sign bits per group) and stored d = 0.9875·max_scale/31.
void quantize_weighted_iq2_s(const float* src, void* dst, int64_t n, const float* weights);
/// IQ3_XXS: per 32 elements, parity signs as IQ2_XXS, groups of 4 on 8 levels {1, 3, ..., 15},
/// 31 candidates (15 + 0.2t)/max, t = −15..15; stored d = 1.0125·max_scale/31.
void quantize_weighted_iq3_xxs(const float* src, void* dst, int64_t n, const float* weights);
/// IQ3_S: as IQ3_XXS with free signs, 19 candidates (t = −9..9), every group re-rounded at the
/// final scale when one fell off the grid; stored d = 1.033·max_scale/31.
void quantize_weighted_iq3_s(const float* src, void* dst, int64_t n, const float* weights);
/// IQ1_S: per 32 elements the exact weighted least-squares split of the sorted values into the
/// levels {−1, 0, +1} + δ (δ = ±1/8, both tried), groups of 8 snapped to the grid, 3-bit
/// sub-scales relative to d = max_scale/15, stored d·1.125.
void quantize_weighted_iq1_s(const float* src, void* dst, int64_t n, const float* weights);
/// IQ1_M: as IQ1_S per 16 elements with a δ sign per group of 8 (4 combinations), then d refitted
/// by least squares over the super-block and stored as d·1.1125 in the scale words' top nibbles.
void quantize_weighted_iq1_m(const float* src, void* dst, int64_t n, const float* weights);

// The reference quantizers (FromFloatFn of quant/types.h): the functions above without
// importance (default weights).
void from_float_iq2_xxs(const float* src, void* dst, int64_t n);
void from_float_iq2_xs(const float* src, void* dst, int64_t n);
void from_float_iq2_s(const float* src, void* dst, int64_t n);
void from_float_iq3_xxs(const float* src, void* dst, int64_t n);
void from_float_iq3_s(const float* src, void* dst, int64_t n);
void from_float_iq1_s(const float* src, void* dst, int64_t n);
void from_float_iq1_m(const float* src, void* dst, int64_t n);

}  // namespace hearth::quant

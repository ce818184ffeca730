// Importance-weighted quantizers: what llama-quantize runs when it has an importance matrix
// (formats.md §3.4 right column, §3.5, §3.7 "Use at quantization"). Each minimizes the error
// Σ_c qw[c]·(x_c − x̂_c)² (with ggml's extra per-element sqrt(σ² + x²) factor) instead of the
// reference quantizers' fixed weights (quant/convert.h).
#pragma once

#include <cstdint>

#include "quant/types.h"

namespace hearth::quant {

/// Quantizes one row: `src` has `n` f32 values (a multiple of the type's block size, else Error),
/// `dst` receives row_size(type, n) bytes, `weights` holds the `n` per-column importance values
/// of this row (≥ 0, finite; formats.md §3.7 imp = Σx²/count). With `weights` == nullptr the
/// type's reference quantizer (traits().from_float) is used.
using FromFloatWeightedFn = void (*)(const float* src, void* dst, int64_t n, const float* weights);

/// The weighted quantizer of `type`, or nullptr for types without one (those are quantized with
/// the reference quantizer; the imatrix is ignored). Implemented: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
/// Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, and the lattice types IQ2_XXS, IQ2_XS, IQ2_S,
/// IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (quant/quantize_lattice.h).
FromFloatWeightedFn weighted_quantizer(GgmlType type);

// The individual quantizers (signature FromFloatWeightedFn; formats.md §3.4 / §3.5).

/// Q2_K: per 16 weights qw·sqrt(σ² + x²) (σ² = Σx²/256), make_qkx3(3, −0.9, 0.05, 36); 4-bit
/// scales and mins by make_qp_quants(15) weighted by the sub-block weight sums; requantized.
void quantize_weighted_q2_K(const float* src, void* dst, int64_t n, const float* weights);
/// Q3_K: per 16 weights qw·sqrt(σ² + x²) (σ² = 2Σx²/256), make_qx_quants(nmax 4); 6-bit signed
/// scales by make_qx_quants(nmax 32, weights Σw); requantized to [−4, 3].
void quantize_weighted_q3_K(const float* src, void* dst, int64_t n, const float* weights);
/// Q4_K: per 32 weights qw·sqrt(σ² + x²), make_qkx3(15, −0.9, 0.05, 36); 6-bit scales and mins
/// by make_qp_quants(63, Σw); requantized.
void quantize_weighted_q4_K(const float* src, void* dst, int64_t n, const float* weights);
/// Q5_K: as Q4_K with nmax 31.
void quantize_weighted_q5_K(const float* src, void* dst, int64_t n, const float* weights);
/// Q6_K: per 16 make_qx_quants(nmax 32) with weights qw; 8-bit scales; requantized to [−32, 31].
void quantize_weighted_q6_K(const float* src, void* dst, int64_t n, const float* weights);
/// Q4_0 / Q5_0: per 32 make_qx_quants(nmax 8 / 16) with weights qw·sqrt(σ² + x²), σ² = Σx²/n.
void quantize_weighted_q4_0(const float* src, void* dst, int64_t n, const float* weights);
void quantize_weighted_q5_0(const float* src, void* dst, int64_t n, const float* weights);
/// Q4_1 / Q5_1: per 32 make_qkx3(15 / 31, −0.9, 0.05, 36) with the Q4_0 weights; m = −b.
void quantize_weighted_q4_1(const float* src, void* dst, int64_t n, const float* weights);
void quantize_weighted_q5_1(const float* src, void* dst, int64_t n, const float* weights);
/// IQ4_NL: per 32 the codebook search of §3.5 with weights qw·sqrt(σ² + x²), σ² = 2Σx²/32.
void quantize_weighted_iq4_nl(const float* src, void* dst, int64_t n, const float* weights);
/// IQ4_XS: per 256 the IQ4_NL search per 32 (σ² = 2Σx²/256), 6-bit block scales.
void quantize_weighted_iq4_xs(const float* src, void* dst, int64_t n, const float* weights);

namespace detail {

/// ggml's make_qp_quants (formats.md §3.3 item 3), shared by the quantizers of quant/: the `n`
/// values x (meant non-negative) as integers 0..nmax in L[0..n) under weights w[0..n) (a
/// 9-candidate scale search, then up to 5 rounds of single-code changes); returns the scale
/// Σw·x·L / Σw·L² (0 when max x < 1e-15 or all of Σw·L² vanishes).
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w);

}  // namespace detail

}  // namespace hearth::quant

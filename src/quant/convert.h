// Row conversions between f32 and the tensor types hearth implements: dequantizers
// (to_float_*) and reference quantizers without importance weights (from_float_*).
// Source: ../shared/docs/formats.md §2 (layouts and dequantization formulas) and §3
// (quantization algorithms). The functions have the ToFloatFn / FromFloatFn signatures of
// quant/types.h and are what the traits table points to.
//
// Shapes: `n` is the number of elements of the row; it must be a multiple of the type's block
// size (1 for F32/F16/BF16; 32 for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL, MXFP4; 256 for
// the K-quants, IQ4_XS, TQ1_0 and TQ2_0), otherwise hearth::Error is thrown and nothing is
// written. A quantized row of n elements occupies row_size(type, n) bytes. Values are f32 in the
// units of the tensor; quantizers accept any finite input (non-finite input gives defined but
// meaningless codes).
#pragma once

#include <bit>
#include <cstdint>

namespace hearth::quant {

// ---- plain types (formats.md §2.1) ----

/// F32 -> f32: copies n floats.
void to_float_f32(const void* src, float* dst, int64_t n);
/// F16 -> f32: exact conversion of n binary16 values.
void to_float_f16(const void* src, float* dst, int64_t n);
/// BF16 -> f32: exact conversion of n bfloat16 values (f32 bits = bf16 << 16).
void to_float_bf16(const void* src, float* dst, int64_t n);

/// f32 -> F32: copies n floats.
void from_float_f32(const float* src, void* dst, int64_t n);
/// f32 -> F16, round to nearest even; overflow gives inf (formats.md §2.1).
void from_float_f16(const float* src, void* dst, int64_t n);
/// f32 -> BF16, round to nearest even; NaNs made quiet (formats.md §2.1).
void from_float_bf16(const float* src, void* dst, int64_t n);

// ---- dequantizers (formats.md §2.2, §2.3, §2.4, §2.6) ----

/// Q4_0 (18-byte blocks of 32): x[j] = (lo(qs[j]) - 8)*d, x[j+16] = (hi(qs[j]) - 8)*d.
void to_float_q4_0(const void* src, float* dst, int64_t n);
/// Q4_1 (20-byte blocks of 32, §2.2): x[j] = lo(qs[j])*d + m, x[j+16] = hi(qs[j])*d + m.
void to_float_q4_1(const void* src, float* dst, int64_t n);
/// Q5_0 (22-byte blocks of 32, §2.2): q[j] = lo(qs[j]) | bit_j(qh)<<4,
/// q[j+16] = hi(qs[j]) | bit_(j+16)(qh)<<4; x = (q - 16)*d.
void to_float_q5_0(const void* src, float* dst, int64_t n);
/// Q5_1 (24-byte blocks of 32, §2.2): q as Q5_0; x = q*d + m.
void to_float_q5_1(const void* src, float* dst, int64_t n);
/// Q8_0 (34-byte blocks of 32): x[e] = qs[e]*d.
void to_float_q8_0(const void* src, float* dst, int64_t n);
/// Q8_1 (36-byte blocks of 32, §2.2): x[e] = qs[e]*d (the stored sum s is not needed).
void to_float_q8_1(const void* src, float* dst, int64_t n);
/// Q2_K (84-byte blocks of 256, §2.3): x = d*lo(scales[e/16])*q - dmin*hi(scales[e/16]),
/// q = (qs[32h + l] >> 2k) & 3 for e = 128h + 32k + l.
void to_float_q2_K(const void* src, float* dst, int64_t n);
/// Q3_K (110-byte blocks of 256, §2.3): x = d*sc*(q2 - (hb ? 0 : 4)) with the 6-bit signed
/// sub-block scale sc of e/16, q2 from qs and the high bit hb from hmask.
void to_float_q3_K(const void* src, float* dst, int64_t n);
/// Q4_K (144-byte blocks of 256): x = d*sc_j*q - dmin*m_j, j = e/32.
void to_float_q4_K(const void* src, float* dst, int64_t n);
/// Q5_K (176-byte blocks of 256): as Q4_K with a fifth code bit from qh.
void to_float_q5_K(const void* src, float* dst, int64_t n);
/// Q6_K (210-byte blocks of 256): x = d*scales[e/16]*(q - 32) in the ql/qh order of §2.3.
void to_float_q6_K(const void* src, float* dst, int64_t n);
/// Q8_K (292-byte blocks of 256, f32 scale): x[e] = d*qs[e].
void to_float_q8_K(const void* src, float* dst, int64_t n);
/// IQ4_NL (18-byte blocks of 32, §2.2): x[j] = d*K[lo(qs[j])], x[j+16] = d*K[hi(qs[j])] with
/// the codebook K = kValuesIq4nl (quant/blocks.h).
void to_float_iq4_nl(const void* src, float* dst, int64_t n);
/// IQ4_XS (136-byte blocks of 256, §2.4): block ib of 32 decodes as IQ4_NL with the scale
/// d*(ls - 32), ls the 6-bit scale from scales_l/scales_h.
void to_float_iq4_xs(const void* src, float* dst, int64_t n);
/// TQ1_0 (54-byte blocks of 256, §2.6): x = (t - 1)*d for the base-3 digits t packed 5 per
/// qs byte and 4 per qh byte.
void to_float_tq1_0(const void* src, float* dst, int64_t n);
/// TQ2_0 (66-byte blocks of 256, §2.6): x = (q - 1)*d with 2-bit q in the K-quant order.
void to_float_tq2_0(const void* src, float* dst, int64_t n);
/// MXFP4 (17-byte blocks of 32, §2.6): x[j] = FP4(lo(qs[j]))*2^(e-127),
/// x[j+16] = FP4(hi(qs[j]))*2^(e-127) (OCP E2M1 codes, E8M0 exponent e).
void to_float_mxfp4(const void* src, float* dst, int64_t n);

// ---- reference quantizers without importance weights (formats.md §3) ----

/// Q4_0 (§3.2): d = (signed max-magnitude element)/-8, q = min(15, trunc(x/d + 8.5)).
void from_float_q4_0(const float* src, void* dst, int64_t n);
/// Q4_1 (§3.2): d = (max - min)/15, m = min, q = min(15, trunc((x - min)/d + 0.5)).
void from_float_q4_1(const float* src, void* dst, int64_t n);
/// Q5_0 (§3.2): d = (signed max-magnitude element)/-16, q = min(31, trunc(x/d + 16.5)).
void from_float_q5_0(const float* src, void* dst, int64_t n);
/// Q5_1 (§3.2): d = (max - min)/31, m = min, q = trunc((x - min)/d + 0.5).
void from_float_q5_1(const float* src, void* dst, int64_t n);
/// Q8_0 (§3.2 = §3.1): d = max|x|/127, q = roundf(x/d) (halves away from zero).
void from_float_q8_0(const float* src, void* dst, int64_t n);
/// Q8_1 (§3.1, ggml's reference path): as Q8_0 (roundf) plus s = f16(d*sum q) with the f32 d.
/// The activation converter of the Q4_1/Q5_1 dot products is kernels' act_quantize_q8_1.
void from_float_q8_1(const float* src, void* dst, int64_t n);
/// Q2_K (§3.4, no imatrix): per 16 a make_qkx2 search (nmax 3, weights |x|, rmin -0.5,
/// rdelta 0.1, 15 steps, absolute error), 4-bit scales and mins nint(15*v/max_v) relative to
/// f16 d = max_scale/15 and dmin = max_min/15, requantization with the decoded values.
void from_float_q2_K(const float* src, void* dst, int64_t n);
/// Q3_K (§3.4, no imatrix): per 16 a symmetric search with 5 refinement passes (nmax 4,
/// weights x^2), 6-bit signed scales clamp(nint(-32*s/max_scale), -32, 31) relative to
/// f16 d = max_scale/-32, requantization to [-4, 3] with the decoded scales.
void from_float_q3_K(const float* src, void* dst, int64_t n);
/// Q4_K (§3.3, §3.4): per 32 a make_qkx2 search (nmax 15), 6-bit scales and mins,
/// requantization with the decoded f16 scales.
void from_float_q4_K(const float* src, void* dst, int64_t n);
/// Q5_K (§3.3, §3.4): as Q4_K with nmax 31.
void from_float_q5_K(const float* src, void* dst, int64_t n);
/// Q6_K (§3.3, §3.4): per 16 a symmetric make_qx_quants search (nmax 32), 8-bit scales,
/// requantization to [-32, 31] with the decoded scales.
void from_float_q6_K(const float* src, void* dst, int64_t n);
/// Q8_K (§3.1): iscale = -127/(signed max-magnitude element), q = min(127, nint(iscale*x)),
/// d = 1/iscale stored as f32, bsums = sums of 16 consecutive codes. This is also the
/// activation quantizer of the K-quant dot products.
void from_float_q8_K(const float* src, void* dst, int64_t n);
/// IQ4_NL (§3.5, weights x^2): per 32 the codebook scale search (d = -max/K[0], least-squares
/// refit, 1/d = (t + K[0])/max for t = -7..7), f16(d) stored, codes re-assigned with the f32 d.
/// Byte-identical with llama-quantize's IQ4_NL without an imatrix.
void from_float_iq4_nl(const float* src, void* dst, int64_t n);
/// IQ4_XS (§3.5, weights x^2): the IQ4_NL search per 32, then d = -max_scale/32 (f16),
/// 6-bit block scales clamp(nint(s/d), -32, 31) + 32, codes re-assigned with d*l.
/// Byte-identical with llama-quantize's IQ4_XS without an imatrix.
void from_float_iq4_xs(const float* src, void* dst, int64_t n);
/// TQ1_0 (§3.2, §2.6): d = max|x| per 256, trit = lroundf(x/d) + 1, 5 trits per qs byte and
/// 4 per qh byte stored as ceil(v*256/243).
void from_float_tq1_0(const float* src, void* dst, int64_t n);
/// TQ2_0 (§3.2): d = max|x| per 256, q = lroundf(x/d) + 1 in 2 bits.
void from_float_tq2_0(const float* src, void* dst, int64_t n);
/// MXFP4 (§3.2): e = floor(log2(max|x|)) - 2 + 127 (0 for an all-zero block; clamped to
/// [0, 254]), each element the first FP4 code nearest to x/2^(e-127).
void from_float_mxfp4(const float* src, void* dst, int64_t n);

/// ggml's `nearest_int` (formats.md §3, "nint"): round to nearest with ties to even, computed
/// by adding 1.5*2^23 and reading the low mantissa bits. Exact for |x| < 2^22; larger or
/// non-finite inputs give an unspecified (but defined) value that callers clamp.
inline int32_t nint(float x) {
  const float shifted = x + 12582912.0f;  // 1.5 * 2^23: the integer part lands in the mantissa
  const uint32_t bits = std::bit_cast<uint32_t>(shifted);
  return static_cast<int32_t>(bits & 0x007FFFFFu) - 0x00400000;
}

}  // namespace hearth::quant

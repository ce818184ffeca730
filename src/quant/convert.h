// Row conversions between f32 and the tensor types hearth implements: dequantizers
// (to_float_*) and reference quantizers without importance weights (from_float_*).
// Source: ../shared/docs/formats.md §2 (layouts and dequantization formulas) and §3
// (quantization algorithms). The functions have the ToFloatFn / FromFloatFn signatures of
// quant/types.h and are what the traits table points to.
//
// Shapes: `n` is the number of elements of the row; it must be a multiple of the type's block
// size (1 for F32/F16/BF16, 32 for Q4_0/Q8_0, 256 for the K-quants), otherwise hearth::Error is
// thrown. A quantized row of n elements occupies row_size(type, n) bytes.
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

// ---- dequantizers (formats.md §2.2, §2.3) ----

/// Q4_0 (18-byte blocks of 32): x[j] = (lo(qs[j]) - 8)*d, x[j+16] = (hi(qs[j]) - 8)*d.
void to_float_q4_0(const void* src, float* dst, int64_t n);
/// Q8_0 (34-byte blocks of 32): x[e] = qs[e]*d.
void to_float_q8_0(const void* src, float* dst, int64_t n);
/// Q4_K (144-byte blocks of 256): x = d*sc_j*q - dmin*m_j, j = e/32.
void to_float_q4_K(const void* src, float* dst, int64_t n);
/// Q5_K (176-byte blocks of 256): as Q4_K with a fifth code bit from qh.
void to_float_q5_K(const void* src, float* dst, int64_t n);
/// Q6_K (210-byte blocks of 256): x = d*scales[e/16]*(q - 32) in the ql/qh order of §2.3.
void to_float_q6_K(const void* src, float* dst, int64_t n);
/// Q8_K (292-byte blocks of 256, f32 scale): x[e] = d*qs[e].
void to_float_q8_K(const void* src, float* dst, int64_t n);

// ---- reference quantizers without importance weights (formats.md §3) ----

/// Q4_0 (§3.2): d = (signed max-magnitude element)/-8, q = min(15, trunc(x/d + 8.5)).
void from_float_q4_0(const float* src, void* dst, int64_t n);
/// Q8_0 (§3.2 = §3.1): d = max|x|/127, q = roundf(x/d) (halves away from zero).
void from_float_q8_0(const float* src, void* dst, int64_t n);
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

/// ggml's `nearest_int` (formats.md §3, "nint"): round to nearest with ties to even, computed
/// by adding 1.5*2^23 and reading the low mantissa bits. Exact for |x| < 2^22; larger or
/// non-finite inputs give an unspecified (but defined) value that callers clamp.
inline int32_t nint(float x) {
  const float shifted = x + 12582912.0f;  // 1.5 * 2^23: the integer part lands in the mantissa
  const uint32_t bits = std::bit_cast<uint32_t>(shifted);
  return static_cast<int32_t>(bits & 0x007FFFFFu) - 0x00400000;
}

}  // namespace hearth::quant

// Scalar reference dot products and activation converters (internal to kernels/).
// These are the reference the SIMD versions are tested against; callers use the lookup
// functions of kernels/dot.h. Source: ../shared/docs/formats.md §2.7 (partners), §3.1
// (activation quantizers), §2 (layouts: §2.2 legacy and IQ4_NL, §2.3 K-quants, §2.4 IQ4_XS,
// §2.6 TQ1_0/TQ2_0/MXFP4).
//
// Every vec_dot_* has the VecDotFn contract: `n` elements (a multiple of the weight's block
// size), `w` one weight row, `a` one activation row in the weight's partner format; returns
// sum_i w[i]*a[i]. Quantized kernels sum exact integer products per block and combine the
// blocks in f32; the float kernels accumulate in double.
#pragma once

#include <cstdint>

namespace hearth::kernels::scalar {

/// F32 x F32: sum in double of the double products.
float vec_dot_f32(int64_t n, const void* w, const void* a);
/// F16 x F16: sum in double of the (exact) products of the f16 values.
float vec_dot_f16(int64_t n, const void* w, const void* a);
/// BF16 x BF16: sum in double of the (exact) products of the bf16 values.
float vec_dot_bf16(int64_t n, const void* w, const void* a);

/// Q8_0 x Q8_0: per 32-block sumf += (f16(dw)*f16(da)) * sum qw*qa.
float vec_dot_q8_0(int64_t n, const void* w, const void* a);
/// Q4_0 x Q8_0: per 32-block sumf += (f16(dw)*f16(da)) * sum (qw - 8)*qa.
float vec_dot_q4_0(int64_t n, const void* w, const void* a);
/// Q4_1 x Q8_1: per 32-block sumf += (f16(dw)*f16(da)) * sum qw*qa + f16(m)*f16(s), where the
/// activation's s = d*sum qa supplies the min term (so the result differs from the dot of the
/// dequantized rows by m*(s - d*sum qa), the f16 rounding of s).
float vec_dot_q4_1(int64_t n, const void* w, const void* a);
/// Q5_0 x Q8_0: per 32-block sumf += (f16(dw)*f16(da)) * sum (qw - 16)*qa, 5-bit qw.
float vec_dot_q5_0(int64_t n, const void* w, const void* a);
/// Q5_1 x Q8_1: as Q4_1 with 5-bit codes.
float vec_dot_q5_1(int64_t n, const void* w, const void* a);
/// IQ4_NL x Q8_0: per 32-block sumf += (f16(dw)*f16(da)) * sum K[qw]*qa (K = kValuesIq4nl).
float vec_dot_iq4_nl(int64_t n, const void* w, const void* a);
/// MXFP4 x Q8_0: per 32-block sumf += (f16(da)*2^(e-128)) * sum kValuesMxfp4x2[qw]*qa.
float vec_dot_mxfp4(int64_t n, const void* w, const void* a);
/// Q2_K x Q8_K: per 256-block sumf += (da*f16(d))*isum - (da*f16(dmin))*summins with
/// isum = sum over the 16-element sub-blocks s of lo(scales[s]) * sum q*q8 and
/// summins = sum_s hi(scales[s]) * bsums[s].
float vec_dot_q2_K(int64_t n, const void* w, const void* a);
/// Q3_K x Q8_K: per 256-block sumf += (f16(d)*da) * isum with
/// isum = sum_s sc_s * (sum (q2 + 4*hb)*q8 - 4*bsums[s]) (the -4 offset of elements whose high
/// bit is clear is taken from bsums).
float vec_dot_q3_K(int64_t n, const void* w, const void* a);
/// Q4_K x Q8_K: per 256-block sumf += dw*da*isum - dmin*da*summins, with
/// isum = sum_j sc_j * sum q*q8 over sub-block j (32 elements) and
/// summins = sum_j m_j * (bsums[2j] + bsums[2j+1]).
float vec_dot_q4_K(int64_t n, const void* w, const void* a);
/// Q5_K x Q8_K: as Q4_K with 5-bit codes.
float vec_dot_q5_K(int64_t n, const void* w, const void* a);
/// Q6_K x Q8_K: per 256-block sumf += d*da*isum, isum = sum over the 16-element sub-blocks
/// of scales[s] * sum (q - 32)*q8.
float vec_dot_q6_K(int64_t n, const void* w, const void* a);
/// IQ4_XS x Q8_K: per 256-block sumf += (f16(d)*da) * isum, isum = sum over the 32-element
/// blocks ib of (ls_ib - 32) * sum K[qw]*q8.
float vec_dot_iq4_xs(int64_t n, const void* w, const void* a);
/// TQ1_0 x Q8_K: per 256-block sumf += isum * (f16(d)*da), isum = sum (t - 1)*q8.
float vec_dot_tq1_0(int64_t n, const void* w, const void* a);
/// TQ2_0 x Q8_K: per 256-block sumf += isum * (f16(d)*da), isum = sum (q - 1)*q8.
float vec_dot_tq2_0(int64_t n, const void* w, const void* a);

/// Activation F32: a copy of the n floats.
void act_quantize_f32(const float* x, void* y, int64_t n);
/// Activation F16: round to nearest even.
void act_quantize_f16(const float* x, void* y, int64_t n);
/// Activation BF16: round to nearest even, NaNs quiet.
void act_quantize_bf16(const float* x, void* y, int64_t n);
/// Activation Q8_0 (formats.md §3.1 as llama.cpp's x86 SIMD path computes it):
/// amax = max|x|, d = amax/127 (stored f16), q = nearbyint(x * (127/amax)) with ties to even;
/// an all-zero block gives d = 0 and q = 0.
void act_quantize_q8_0(const float* x, void* y, int64_t n);
/// Activation Q8_1 (formats.md §3.1): as act_quantize_q8_0 (x86 SIMD path, ties to even) plus
/// s = f16(d*sum q) with the f32 d = amax/127; an all-zero block gives d = s = 0.
void act_quantize_q8_1(const float* x, void* y, int64_t n);
/// Activation Q8_K (formats.md §3.1): the reference Q8_K quantizer with bsums.
void act_quantize_q8_K(const float* x, void* y, int64_t n);

}  // namespace hearth::kernels::scalar

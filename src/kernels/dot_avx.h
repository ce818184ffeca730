// AVX2 and AVX-512 dot products and activation converters (internal to kernels/).
// Callers use kernels/dot.h (vec_dot_fn / act_quantize_fn), which picks these by the active
// CpuPath (kernels/cpu.h); tests call them directly to compare them with kernels/dot_scalar.h.
// Source: ../shared/docs/formats.md §2 (layouts), §2.7 (partners), §3.1 (activation quantizers).
//
// Only declared on x86 builds (the .cpp files compile to nothing elsewhere). Every function must
// only be called when cpu_supports() says its path runs on this CPU (avx2: AVX2+FMA+F16C;
// avx512: AVX-512 F/BW/VL/VNNI, plus AVX512_BF16 for vec_dot_bf16_dpbf16); otherwise the CPU
// raises SIGILL.
//
// Contracts are those of kernels/dot.h (VecDotFn, ActQuantizeFn) and the matching scalar
// reference (kernels/dot_scalar.h, kernels/dot_lattice.h):
// * Dot products equal the scalar reference up to float summation order: F32/F16/BF16 sum in
//   f32 vector lanes (the reference sums in double); the 32-element block types (Q8_0, Q4_0,
//   Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4) combine the exact per-block integer sums in f32 vector
//   lanes (Q4_1/Q5_1 add their min terms f16(m)*f16(s) in four f32 partial sums). The
//   256-element super-block types (Q2_K..Q6_K, IQ4_XS, TQ1_0, TQ2_0 and the lattice i-quants
//   IQ2_XXS..IQ1_M) compute each super-block's exact integer sums and combine the blocks in
//   the reference's order and float expression: they are bit-identical to the reference.
// * Activation codes must lie in [-127, 127] (what every Q8_0 and Q8_K activation quantizer
//   writes: the element of largest magnitude maps to +-127) for the kernels that move signs onto
//   the activations: Q8_0, Q4_0, Q5_0, IQ4_NL, MXFP4, IQ4_XS (avx2) and the lattice types. The
//   weights may hold any code.
// * Activation converters are bit-exact with the scalar ones for finite inputs
//   (F16, BF16 also for inf/NaN).
#pragma once

#include <cstdint>

#include "kernels/dot.h"
#include "quant/types.h"

#if defined(__x86_64__)

namespace hearth::kernels::avx2 {

float vec_dot_f32(int64_t n, const void* w, const void* a);
float vec_dot_f16(int64_t n, const void* w, const void* a);
float vec_dot_bf16(int64_t n, const void* w, const void* a);
float vec_dot_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_K(int64_t n, const void* w, const void* a);
float vec_dot_q5_K(int64_t n, const void* w, const void* a);
float vec_dot_q6_K(int64_t n, const void* w, const void* a);
float vec_dot_q4_1(int64_t n, const void* w, const void* a);
float vec_dot_q5_0(int64_t n, const void* w, const void* a);
float vec_dot_q5_1(int64_t n, const void* w, const void* a);
float vec_dot_iq4_nl(int64_t n, const void* w, const void* a);
float vec_dot_mxfp4(int64_t n, const void* w, const void* a);
float vec_dot_q2_K(int64_t n, const void* w, const void* a);
float vec_dot_q3_K(int64_t n, const void* w, const void* a);
float vec_dot_iq4_xs(int64_t n, const void* w, const void* a);
float vec_dot_tq1_0(int64_t n, const void* w, const void* a);
float vec_dot_tq2_0(int64_t n, const void* w, const void* a);
// Lattice i-quants (dot_lattice_avx2.cpp).
float vec_dot_iq2_xxs(int64_t n, const void* w, const void* a);
float vec_dot_iq2_xs(int64_t n, const void* w, const void* a);
float vec_dot_iq2_s(int64_t n, const void* w, const void* a);
float vec_dot_iq3_xxs(int64_t n, const void* w, const void* a);
float vec_dot_iq3_s(int64_t n, const void* w, const void* a);
float vec_dot_iq1_s(int64_t n, const void* w, const void* a);
float vec_dot_iq1_m(int64_t n, const void* w, const void* a);

void act_quantize_f16(const float* x, void* y, int64_t n);
void act_quantize_bf16(const float* x, void* y, int64_t n);
void act_quantize_q8_0(const float* x, void* y, int64_t n);
void act_quantize_q8_1(const float* x, void* y, int64_t n);
void act_quantize_q8_K(const float* x, void* y, int64_t n);

/// This path's dot product for `weight_type`, or nullptr where it has none (callers then use
/// the scalar one).
VecDotFn vec_dot_fn(quant::GgmlType weight_type);
/// This path's converter to `act_type`, or nullptr where it has none.
ActQuantizeFn act_quantize_fn(quant::GgmlType act_type);

}  // namespace hearth::kernels::avx2

namespace hearth::kernels::avx512 {

float vec_dot_f32(int64_t n, const void* w, const void* a);
/// BF16 with AVX-512F only (bf16 -> f32 by shifting, FMA).
float vec_dot_bf16(int64_t n, const void* w, const void* a);
/// BF16 with AVX512_BF16 (VDPBF16PS; it treats subnormal inputs as zero and flushes subnormal
/// results). Needs cpu_features().avx512_bf16.
float vec_dot_bf16_dpbf16(int64_t n, const void* w, const void* a);
float vec_dot_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_K(int64_t n, const void* w, const void* a);
float vec_dot_q5_K(int64_t n, const void* w, const void* a);
float vec_dot_q6_K(int64_t n, const void* w, const void* a);
float vec_dot_q4_1(int64_t n, const void* w, const void* a);
float vec_dot_q5_0(int64_t n, const void* w, const void* a);
float vec_dot_q5_1(int64_t n, const void* w, const void* a);
float vec_dot_iq4_nl(int64_t n, const void* w, const void* a);
float vec_dot_mxfp4(int64_t n, const void* w, const void* a);
float vec_dot_q2_K(int64_t n, const void* w, const void* a);
float vec_dot_q3_K(int64_t n, const void* w, const void* a);
float vec_dot_iq4_xs(int64_t n, const void* w, const void* a);
float vec_dot_tq1_0(int64_t n, const void* w, const void* a);
float vec_dot_tq2_0(int64_t n, const void* w, const void* a);
// Lattice i-quants (dot_lattice_avx512.cpp).
float vec_dot_iq2_xxs(int64_t n, const void* w, const void* a);
float vec_dot_iq2_xs(int64_t n, const void* w, const void* a);
float vec_dot_iq2_s(int64_t n, const void* w, const void* a);
float vec_dot_iq3_xxs(int64_t n, const void* w, const void* a);
float vec_dot_iq3_s(int64_t n, const void* w, const void* a);
float vec_dot_iq1_s(int64_t n, const void* w, const void* a);
float vec_dot_iq1_m(int64_t n, const void* w, const void* a);

void act_quantize_f16(const float* x, void* y, int64_t n);
void act_quantize_q8_0(const float* x, void* y, int64_t n);
void act_quantize_q8_1(const float* x, void* y, int64_t n);
void act_quantize_q8_K(const float* x, void* y, int64_t n);

/// This path's dot product for `weight_type` (vec_dot_bf16_dpbf16 for BF16 when the CPU has
/// AVX512_BF16), or nullptr where it has none (callers then use the AVX2 one, then the
/// scalar one): F16, whose AVX2 kernel is the faster one on Zen 4.
VecDotFn vec_dot_fn(quant::GgmlType weight_type);
/// This path's converter to `act_type`, or nullptr where it has none.
ActQuantizeFn act_quantize_fn(quant::GgmlType act_type);

}  // namespace hearth::kernels::avx512

#endif

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
// reference:
// * Dot products equal the scalar reference up to float summation order: F32/F16/BF16 sum in
//   f32 vector lanes (the reference sums in double), Q8_0/Q4_0 combine the exact per-block
//   integer sums in f32 vector lanes. Q4_K/Q5_K/Q6_K compute each super-block's exact integer
//   sums and combine the blocks in the reference's order and float expression: they are
//   bit-identical to the reference.
// * Q8_0 and Q4_0 require activation codes in [-127, 127] (what every Q8_0 activation
//   quantizer writes); the weights may hold any code.
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

void act_quantize_f16(const float* x, void* y, int64_t n);
void act_quantize_bf16(const float* x, void* y, int64_t n);
void act_quantize_q8_0(const float* x, void* y, int64_t n);
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

void act_quantize_f16(const float* x, void* y, int64_t n);
void act_quantize_q8_0(const float* x, void* y, int64_t n);
void act_quantize_q8_K(const float* x, void* y, int64_t n);

/// This path's dot product for `weight_type` (vec_dot_bf16_dpbf16 for BF16 when the CPU has
/// AVX512_BF16), or nullptr where it has none (callers then use the AVX2 one, then the
/// scalar one): F16, whose AVX2 kernel is the faster one on Zen 4.
VecDotFn vec_dot_fn(quant::GgmlType weight_type);
/// This path's converter to `act_type`, or nullptr where it has none.
ActQuantizeFn act_quantize_fn(quant::GgmlType act_type);

}  // namespace hearth::kernels::avx512

#endif

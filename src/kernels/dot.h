// Dot products of one weight row with one activation row, per weight type, and the
// activation converters that produce each weight type's partner format.
// Source: ../shared/docs/formats.md §2.7 (partners) and §3.1 (activation quantizers).
#pragma once

#include <cstdint>

#include "kernels/cpu.h"
#include "quant/types.h"

namespace hearth::kernels {

/// Dot product of `n` elements: `w` is one row of a weight of type W (n a multiple of W's
/// block size), `a` is an activation row already converted to `traits(W).vec_dot_type`.
/// Returns sum_i w[i] * a[i] as float.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

/// Converts `n` floats of an activation row into an activation format (F32 copy, F16, BF16,
/// Q8_0, Q8_K); `n` is a multiple of that format's block size.
using ActQuantizeFn = void (*)(const float* x, void* y, int64_t n);

/// The dot product for weights of `weight_type` on the active CPU path (kernels/cpu.h:
/// the best this CPU runs, or HEARTH_CPU), or nullptr if hearth has none yet.
/// Throws hearth::Error if HEARTH_CPU is wrong (see active_cpu_path()).
VecDotFn vec_dot_fn(quant::GgmlType weight_type);

/// The activation converter producing `act_type` on the active CPU path, or nullptr if hearth
/// has none. Throws hearth::Error if HEARTH_CPU is wrong.
ActQuantizeFn act_quantize_fn(quant::GgmlType act_type);

/// The dot product of `path` for `weight_type`: that path's own kernel, else the one of the
/// path below it, down to the scalar reference; nullptr if hearth has none at all.
/// The SIMD kernels equal the scalar ones up to float summation order (kernels/dot_avx.h).
/// Throws hearth::Error if this CPU cannot run `path` (cpu_supports(path) is false).
VecDotFn vec_dot_fn(quant::GgmlType weight_type, CpuPath path);

/// The activation converter of `path` for `act_type`, with the same fallback; the SIMD
/// converters are bit-exact with the scalar ones. Throws hearth::Error if this CPU cannot run
/// `path`.
ActQuantizeFn act_quantize_fn(quant::GgmlType act_type, CpuPath path);

}  // namespace hearth::kernels

// Dot products of one weight row with one activation row, per weight type, and the
// activation converters that produce each weight type's partner format.
// Source: ../shared/docs/formats.md §2.7 (partners) and §3.1 (activation quantizers).
#pragma once

#include <cstdint>

#include "quant/types.h"

namespace hearth::kernels {

/// Dot product of `n` elements: `w` is one row of a weight of type W (n a multiple of W's
/// block size), `a` is an activation row already converted to `traits(W).vec_dot_type`.
/// Returns sum_i w[i] * a[i] as float.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

/// Converts `n` floats of an activation row into an activation format (F32 copy, F16, BF16,
/// Q8_0, Q8_K); `n` is a multiple of that format's block size.
using ActQuantizeFn = void (*)(const float* x, void* y, int64_t n);

/// The dot product for weights of `weight_type`, or nullptr if hearth has none yet.
VecDotFn vec_dot_fn(quant::GgmlType weight_type);

/// The activation converter producing `act_type`, or nullptr if hearth has none.
ActQuantizeFn act_quantize_fn(quant::GgmlType act_type);

}  // namespace hearth::kernels

// Scalar reference dot products of the lattice i-quant weights with Q8_K activations
// (internal to kernels/; callers use kernels/dot.h). Source: ../shared/docs/formats.md §2.5
// (weight layouts) and §2.7 (partner Q8_K).
//
// Every function has the VecDotFn contract: `n` elements (a multiple of 256), `w` one weight row
// of n/256 blocks (quant/blocks_iq.h), `a` one activation row of n/256 Q8_K blocks; returns
// sum_i w[i]*a[i]. Per 256-block the products of the integer grid values, signs, sub-block
// scales and Q8_K codes are summed exactly in int32 and combined in f32 as
// sumf += (f16(d)*da) * isum (times the format's constant factor).
#pragma once

#include <cstdint>

namespace hearth::kernels::scalar {

/// IQ2_XXS x Q8_K: isum = sum_ib (2*ls_ib + 1) * sum grid*sign*q8; result 0.125 * sum_blocks.
float vec_dot_iq2_xxs(int64_t n, const void* w, const void* a);
/// IQ2_XS x Q8_K: as IQ2_XXS with a 4-bit scale per 16 elements.
float vec_dot_iq2_xs(int64_t n, const void* w, const void* a);
/// IQ2_S x Q8_K: as IQ2_XS with 10-bit grid indices and full sign bytes.
float vec_dot_iq2_s(int64_t n, const void* w, const void* a);
/// IQ3_XXS x Q8_K: isum = sum_ib (2*ls_ib + 1) * sum grid*sign*q8; result 0.25 * sum_blocks.
float vec_dot_iq3_xxs(int64_t n, const void* w, const void* a);
/// IQ3_S x Q8_K: isum = sum_ib (1 + 2*s_ib) * sum grid*sign*q8.
float vec_dot_iq3_s(int64_t n, const void* w, const void* a);
/// IQ1_S x Q8_K: per block sumf += f16(d)*da * (isum + 0.125*isum_delta) with
/// isum = sum_ib ls_ib * sum grid*q8 and isum_delta = sum_ib ls_ib * (±1) * (bsums of block ib).
float vec_dot_iq1_s(int64_t n, const void* w, const void* a);
/// IQ1_M x Q8_K: per block sumf += f16(d)*da * (isum + 0.125*isum_delta) with the 3-bit scale
/// per 16 elements and the ±1 delta sign per group of 8 (sum q8 of the group).
float vec_dot_iq1_m(int64_t n, const void* w, const void* a);

}  // namespace hearth::kernels::scalar

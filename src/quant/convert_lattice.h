// Dequantizers of the lattice ("i-quant") formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S
// and IQ1_M. Source: ../shared/docs/formats.md §2.5 (layouts, formulas), grids from
// quant/iq_grids.h. The functions have the ToFloatFn signature of quant/types.h and are what the
// traits table points to.
//
// Shapes: `src` holds n/256 consecutive blocks (quant/blocks_iq.h), `dst` receives n f32 values.
// n must be a non-negative multiple of 256, otherwise hearth::Error is thrown and nothing is
// written. Every bit pattern of a block decodes to a defined value (non-finite f16 scales give
// non-finite outputs).
#pragma once

#include <cstdint>

namespace hearth::quant {

/// IQ2_XXS (66-byte blocks): x[32ib+8g+k] = d*(0.5+ls)*0.25 * grid_k * sign_k with the grid
/// index in byte g of chunk ib and 7-bit sign index and ls in the chunk's u32.
void to_float_iq2_xxs(const void* src, float* dst, int64_t n);
/// IQ2_XS (74-byte blocks): v = q[4ib+g] (9-bit grid index, 7-bit sign index),
/// db = d*(0.5 + 4-bit scale)*0.25.
void to_float_iq2_xs(const void* src, float* dst, int64_t n);
/// IQ2_S (82-byte blocks): 10-bit grid index from qs and qh, full sign bytes, db as IQ2_XS.
void to_float_iq2_s(const void* src, float* dst, int64_t n);
/// IQ3_XXS (98-byte blocks): two 4-wide grid entries per group, 7-bit signs,
/// db = d*(0.5 + (w >> 28))*0.5.
void to_float_iq3_xxs(const void* src, float* dst, int64_t n);
/// IQ3_S (110-byte blocks): 9-bit indices into the 4-wide grid, full sign bytes,
/// db = d*(1 + 2s) with a 4-bit s per 32.
void to_float_iq3_s(const void* src, float* dst, int64_t n);
/// IQ1_S (50-byte blocks): x = d*(2s+1)*(grid_k ± 0.125) with ternary grid values.
void to_float_iq1_s(const void* src, float* dst, int64_t n);
/// IQ1_M (56-byte blocks): d from the top nibbles of the scale words, 3-bit scale per 16,
/// ±0.125 shift per group of 8; x = d*(2s+1)*(grid_k + delta).
void to_float_iq1_m(const void* src, float* dst, int64_t n);

}  // namespace hearth::quant

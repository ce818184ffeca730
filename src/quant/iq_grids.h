// Codebooks ("grids") of the lattice i-quant formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
// IQ1_S and IQ1_M, and the 7-bit sign table. Source: ../shared/docs/formats.md §2.5.
//
// Every grid entry packs one group of weights little-endian: byte k of a u64 entry (8-wide
// grids) or u32 entry (4-wide grids) is the value of element k of the group. The grids are
// computed (at compile time) from ggml's compact uint16 index tables, whose coordinate k of
// entry i is the level L = (kgrid[i] >> (B*k)) & (2^B - 1) (B = 2 for 8-wide, 3 for 4-wide),
// mapped to a byte as formats.md §2.5 says. They equal ggml-common.h's `iq2xxs_grid` etc.
// (checked by tests/quant/iq_grids_test.cpp).
#pragma once

#include <array>
#include <cstdint>

namespace hearth::quant {

/// IQ2_XXS grid (`iq2xxs_grid`): 256 entries of 8 magnitudes in {8, 25, 43}.
extern const std::array<uint64_t, 256> kIq2xxsGrid;
/// IQ2_XS grid (`iq2xs_grid`): 512 entries of 8 magnitudes in {8, 25, 43}.
extern const std::array<uint64_t, 512> kIq2xsGrid;
/// IQ2_S grid (`iq2s_grid`): 1024 entries of 8 magnitudes in {8, 25, 43}.
extern const std::array<uint64_t, 1024> kIq2sGrid;
/// IQ1_S / IQ1_M grid (`iq1s_grid`): 2048 entries of 8 int8 values in {-1, 0, +1} (stored as
/// the bytes 0xFF, 0x00, 0x01).
extern const std::array<uint64_t, 2048> kIq1sGrid;
/// IQ3_XXS grid (`iq3xxs_grid`): 256 entries of 4 magnitudes in {4, 12, 20, 28, 36, 44, 52, 62}.
extern const std::array<uint32_t, 256> kIq3xxsGrid;
/// IQ3_S grid (`iq3s_grid`): 512 entries of 4 odd magnitudes in 1..15.
extern const std::array<uint32_t, 512> kIq3sGrid;
/// `ksigns_iq2xs`: the full sign byte of a 7-bit sign index s7, s7 | (popcount(s7) & 1) << 7
/// (an even number of negatives per group of 8). Bit k set: element k negative.
extern const std::array<uint8_t, 128> kSignsIq2xs;

/// ggml's compact index tables (formats.md §2.5), as the quantizers also use them (with
/// coordinate value 2L + 1, formats.md §3.6).
const std::array<uint16_t, 256>& kgrid_2bit_256();    ///< IQ2_XXS: 8 coords x 2 bits
const std::array<uint16_t, 512>& kgrid_2bit_512();    ///< IQ2_XS
const std::array<uint16_t, 1024>& kgrid_2bit_1024();  ///< IQ2_S
const std::array<uint16_t, 2048>& kgrid_1bit_2048();  ///< IQ1_S / IQ1_M
const std::array<uint16_t, 256>& kgrid_3bit_256();    ///< IQ3_XXS: 4 coords x 3 bits (ggml `kgrid_256`)
const std::array<uint16_t, 512>& kgrid_3bit_512();    ///< IQ3_S (ggml `kgrid_512`)

/// Byte k (0..7) of an 8-wide grid entry.
inline uint8_t grid_byte(uint64_t entry, int k) { return static_cast<uint8_t>(entry >> (8 * k)); }
/// Byte k (0..3) of a 4-wide grid entry.
inline uint8_t grid_byte(uint32_t entry, int k) { return static_cast<uint8_t>(entry >> (8 * k)); }

}  // namespace hearth::quant

// Packed block structs of the lattice ("i-quant") formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
// IQ3_S, IQ1_S and IQ1_M (256 elements per block, 8 blocks `ib` of 32, each 4 groups `g` of 8).
// Source: ../shared/docs/formats.md §1.6 (sizes) and §2.5 (layouts, formulas). All multi-byte
// fields are little-endian; f16 fields hold IEEE binary16 bits (quant/fp16.h). The structs have
// no padding. Grids and the sign table are in quant/iq_grids.h.
#pragma once

#include <cstdint>

#include "quant/types.h"

namespace hearth::quant {

/// Little-endian u16 at p (no alignment needed).
inline uint16_t iq_load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
/// Little-endian u32 at p (no alignment needed).
inline uint32_t iq_load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

/// IQ2_XXS (66 bytes, 2.0625 bpw; formats.md §2.5).
/// Layout: `[0:2] d` f16, `[2:66] qs` = 8 chunks of 8 bytes, chunk ib for block ib. Chunk bytes
/// 0..3: grid indices (kIq2xxsGrid) of groups 0..3; bytes 4..7: u32 w with the 7-bit sign index
/// of group g in bits 7g..7g+6 (full signs = kSignsIq2xs[...]) and the 4-bit scale ls = w >> 28.
/// Value: x[32ib + 8g + k] = d*(0.5 + ls)*0.25 * grid_byte_k * (±1).
struct block_iq2_xxs {
  uint16_t d;
  uint8_t qs[QK_K / 4];
};
static_assert(sizeof(block_iq2_xxs) == 66, "IQ2_XXS block is 66 bytes (formats.md §1.6)");

/// IQ2_XS (74 bytes, 2.3125 bpw; formats.md §2.5).
/// Layout: `[0:2] d` f16, `[2:66] q[32]` u16, `[66:74] scales[8]`. Group g of block ib:
/// v = q[4ib + g], grid index v & 511 (kIq2xsGrid), sign index v >> 9 (kSignsIq2xs);
/// db = d*(0.5 + s)*0.25 with s = lo(scales[ib]) for g < 2, hi(scales[ib]) for g >= 2.
struct block_iq2_xs {
  uint16_t d;
  uint16_t qs[QK_K / 8];
  uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_xs) == 74, "IQ2_XS block is 74 bytes (formats.md §1.6)");

/// IQ2_S (82 bytes, 2.5625 bpw; formats.md §2.5).
/// Layout: `[0:2] d` f16, `[2:34] qs[32]`, `[34:66] signs[32]`, `[66:74] qh[8]`,
/// `[74:82] scales[8]`. Group g of block ib: grid index qs[4ib+g] | ((qh[ib] >> 2g) & 3) << 8
/// (kIq2sGrid), full sign byte signs[4ib+g]; db as IQ2_XS.
struct block_iq2_s {
  uint16_t d;
  uint8_t qs[QK_K / 8];
  uint8_t signs[QK_K / 8];
  uint8_t qh[QK_K / 32];
  uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_s) == 82, "IQ2_S block is 82 bytes (formats.md §1.6)");

/// IQ3_XXS (98 bytes, 3.0625 bpw; formats.md §2.5).
/// Layout: `[0:2] d` f16, `[2:66] qs[64]` grid indices (kIq3xxsGrid, 4 values each),
/// `[66:98] w[8]` u32 (stored as bytes: read with iq_load_u32). Group g of block ib: elements 0..3
/// from grid[qs[8ib+2g]], 4..7 from grid[qs[8ib+2g+1]]; signs kSignsIq2xs[(w[ib] >> 7g) & 127];
/// db = d*(0.5 + (w[ib] >> 28))*0.5.
struct block_iq3_xxs {
  uint16_t d;
  uint8_t qs[QK_K / 4];
  uint8_t scales_signs[QK_K / 8];
};
static_assert(sizeof(block_iq3_xxs) == 98, "IQ3_XXS block is 98 bytes (formats.md §1.6)");

/// IQ3_S (110 bytes, 3.4375 bpw; formats.md §2.5).
/// Layout: `[0:2] d` f16, `[2:66] qs[64]`, `[66:74] qh[8]`, `[74:106] signs[32]`,
/// `[106:110] scales[4]`. Group g of block ib: indices qs[8ib+2g] | bit_(2g)(qh[ib]) << 8 and
/// qs[8ib+2g+1] | bit_(2g+1)(qh[ib]) << 8 (kIq3sGrid), sign byte signs[4ib+g];
/// db = d*(1 + 2s), s = lo(scales[ib/2]) for even ib, hi for odd ib.
struct block_iq3_s {
  uint16_t d;
  uint8_t qs[QK_K / 4];
  uint8_t qh[QK_K / 32];
  uint8_t signs[QK_K / 8];
  uint8_t scales[QK_K / 64];
};
static_assert(sizeof(block_iq3_s) == 110, "IQ3_S block is 110 bytes (formats.md §1.6)");

/// IQ1_S (50 bytes, 1.5625 bpw; formats.md §2.5).
/// Layout: `[0:2] d` f16, `[2:34] qs[32]`, `[34:50] qh[8]` u16. Block ib, h = qh[ib]: group g
/// index qs[4ib+g] | ((h >> 3g) & 7) << 8 (kIq1sGrid, int8 -1/0/+1);
/// dl = d*(2*((h >> 12) & 7) + 1); delta = (h & 0x8000) ? -0.125 : +0.125; x = dl*(grid_k + delta).
struct block_iq1_s {
  uint16_t d;
  uint8_t qs[QK_K / 8];
  uint16_t qh[QK_K / 32];
};
static_assert(sizeof(block_iq1_s) == 50, "IQ1_S block is 50 bytes (formats.md §1.6)");

/// IQ1_M (56 bytes, 1.75 bpw; formats.md §2.5).
/// Layout: `[0:32] qs[32]`, `[32:48] qh[16]`, `[48:56] scales` = u16 sc[4] (stored as bytes).
/// No separate d: its f16 bits are the top nibbles of sc0..sc3 (iq1_m_d_bits). Block ib, group g:
/// nib = lo(qh[2ib + g/2]) for even g, hi for odd g; index qs[4ib+g] | (nib & 7) << 8 (kIq1sGrid);
/// delta = (nib & 8) ? -0.125 : +0.125; s = (sc[ib/2] >> (6*(ib%2) + 3*(g/2))) & 7;
/// x = d*(2s + 1)*(grid_k + delta).
struct block_iq1_m {
  uint8_t qs[QK_K / 8];
  uint8_t qh[QK_K / 16];
  uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq1_m) == 56, "IQ1_M block is 56 bytes (formats.md §1.6)");

/// u16 scale word i (0..3) of an IQ1_M block.
inline uint16_t iq1_m_sc(const block_iq1_m& b, int i) { return iq_load_u16(b.scales + 2 * i); }

/// The f16 bits of an IQ1_M block's d: (sc0>>12) | (sc1>>12)<<4 | (sc2>>12)<<8 | (sc3>>12)<<12.
inline uint16_t iq1_m_d_bits(const block_iq1_m& b) {
  return static_cast<uint16_t>((iq1_m_sc(b, 0) >> 12) | (iq1_m_sc(b, 1) >> 12) << 4 | (iq1_m_sc(b, 2) >> 12) << 8 |
                               (iq1_m_sc(b, 3) >> 12) << 12);
}

/// 3-bit scale s (0..7) of group g of block ib of an IQ1_M block: (sc[ib/2] >> (6(ib%2) + 3(g/2))) & 7.
inline int iq1_m_scale(const block_iq1_m& b, int ib, int g) {
  return (iq1_m_sc(b, ib / 2) >> (6 * (ib % 2) + 3 * (g / 2))) & 7;
}

/// The delta magnitude of IQ1_S / IQ1_M (formats.md §2.5): grid values are shifted by ±1/8.
inline constexpr float kIq1Delta = 0.125f;

}  // namespace hearth::quant

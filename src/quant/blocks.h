// Packed block structs of the ggml block formats hearth implements, and the 6-bit scale/min
// packing shared by Q4_K and Q5_K.
// Source: ../shared/docs/formats.md §1.6 (block sizes), §2.2 (legacy 32-element blocks),
// §2.3 (K-quants). All multi-byte fields are little-endian; f16 fields hold IEEE binary16 bits
// (convert with quant/fp16.h). The structs have no padding, so a pointer into a tensor's data
// (GGUF aligns tensors to >= 32 bytes) can be reinterpreted as an array of blocks.
#pragma once

#include <cstdint>

#include "quant/types.h"

namespace hearth::quant {

/// Elements per block of the legacy 32-element formats (Q4_0, Q8_0).
inline constexpr int64_t QK4_0 = 32;
inline constexpr int64_t QK8_0 = 32;

/// Q4_0 (18 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:18] qs[16]` 4-bit codes. Element j < 16 is the low nibble
/// of qs[j], element j + 16 its high nibble; value = (code - 8) * d.
struct block_q4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes (formats.md §1.6)");

/// Q8_0 (34 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:34] qs[32]` signed 8-bit codes; value = qs[e] * d.
struct block_q8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes (formats.md §1.6)");

/// Q4_K (144 bytes, 256 elements; formats.md §2.3).
/// Layout: `[0:2] d` f16 super-scale, `[2:4] dmin` f16 super-min, `[4:16] scales[12]` eight
/// 6-bit sub-block scales and eight 6-bit mins (see unpack_scale_min_k4), `[16:144] qs[128]`.
/// Sub-block j (32 elements) of pair p = j/2 uses qs[32p .. 32p+31]: low nibbles for even j,
/// high nibbles for odd j. value = d*sc_j*q - dmin*m_j.
struct block_q4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144, "Q4_K block is 144 bytes (formats.md §1.6)");

/// Q5_K (176 bytes, 256 elements; formats.md §2.3).
/// Layout: `[0:2] d`, `[2:4] dmin`, `[4:16] scales[12]` (as Q4_K), `[16:48] qh[32]`,
/// `[48:176] qs[128]`. The low 4 bits of each code are stored as in Q4_K; bit 4 of the code of
/// element e is bit (e/32) of qh[e%32]. value = d*sc_j*q - dmin*m_j with j = e/32.
struct block_q5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176, "Q5_K block is 176 bytes (formats.md §1.6)");

/// Q6_K (210 bytes, 256 elements; formats.md §2.3).
/// Layout: `[0:128] ql[128]` low 4 bits, `[128:192] qh[64]` high 2 bits, `[192:208] scales[16]`
/// signed 8-bit scales (one per 16 elements), `[208:210] d` f16 super-scale.
/// With h = e/128, g = (e%128)/32, l = e%32: low4 = nibble (g >= 2 ? high : low) of
/// ql[64h + 32*(g&1) + l], high2 = (qh[32h + l] >> 2g) & 3, q = (low4 | high2<<4) - 32,
/// value = d*scales[e/16]*q.
struct block_q6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
static_assert(sizeof(block_q6_K) == 210, "Q6_K block is 210 bytes (formats.md §1.6)");

/// Signed code (-32..31) of element e = 128h + 32g + l (h < 2, g < 4, l < 32) of a Q6_K block
/// (formats.md §2.3): low 4 bits from ql[64h + 32(g&1) + l] (low nibble for g < 2, high nibble
/// for g >= 2), high 2 bits from bits 2g..2g+1 of qh[32h + l], minus 32.
inline int q6_K_code(const block_q6_K& b, int h, int g, int l) {
  const uint8_t low = b.ql[64 * h + 32 * (g & 1) + l];
  const int low4 = g >= 2 ? low >> 4 : low & 0x0F;
  const int high2 = (b.qh[32 * h + l] >> (2 * g)) & 3;
  return (low4 | high2 << 4) - 32;
}

/// Q8_K (292 bytes, 256 elements; activation format only, formats.md §2.3).
/// Layout: `[0:4] d` f32 scale, `[4:260] qs[256]` signed 8-bit codes, `[260:292] bsums[16]`
/// int16 sums of each 16 consecutive codes. value = d*qs[e].
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
static_assert(sizeof(block_q8_K) == 292, "Q8_K block is 292 bytes (formats.md §1.6)");

/// Reads the 6-bit scale `*sc` and 6-bit min `*m` of sub-block j (0..7) from the 12-byte
/// `scales` field of a Q4_K / Q5_K block (formats.md §2.3, Q4_K table):
/// j < 4: sc = scales[j] & 63, m = scales[j+4] & 63;
/// j >= 4: sc = lo(scales[j+4]) | (scales[j-4] >> 6) << 4, m = hi(scales[j+4]) | (scales[j] >> 6) << 4.
inline void unpack_scale_min_k4(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

/// Packs eight 6-bit scales `sc[8]` and mins `m[8]` (each 0..63) into the 12-byte field of a
/// Q4_K / Q5_K block; the inverse of unpack_scale_min_k4 (formats.md §2.3).
inline void pack_scale_min_k4(const uint8_t* sc, const uint8_t* m, uint8_t* scales) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
  }
}

}  // namespace hearth::quant

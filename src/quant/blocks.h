// Packed block structs of the ggml block formats hearth implements, the 6-bit scale/min
// packing shared by Q4_K and Q5_K, and the small codebooks of IQ4_NL/IQ4_XS and MXFP4.
// Source: ../shared/docs/formats.md §1.6 (block sizes), §2.2 (legacy 32-element blocks),
// §2.3 (K-quants), §2.4 (IQ4_XS), §2.6 (ternary and FP4 types). All multi-byte fields are little-endian; f16 fields hold IEEE binary16 bits
// (convert with quant/fp16.h). The structs have no padding, so a pointer into a tensor's data
// (GGUF aligns tensors to >= 32 bytes) can be reinterpreted as an array of blocks.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "quant/types.h"

namespace hearth::quant {

/// Elements per block of the 32-element formats (formats.md §1.6).
inline constexpr int64_t QK4_0 = 32;
inline constexpr int64_t QK4_1 = 32;
inline constexpr int64_t QK5_0 = 32;
inline constexpr int64_t QK5_1 = 32;
inline constexpr int64_t QK8_0 = 32;
inline constexpr int64_t QK8_1 = 32;
inline constexpr int64_t QK4_NL = 32;
inline constexpr int64_t QK_MXFP4 = 32;

/// Q4_0 (18 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:18] qs[16]` 4-bit codes. Element j < 16 is the low nibble
/// of qs[j], element j + 16 its high nibble; value = (code - 8) * d.
struct block_q4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes (formats.md §1.6)");

/// Q4_1 (20 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:4] m` f16 min, `[4:20] qs[16]` 4-bit codes. Element j < 16 is
/// the low nibble of qs[j], element j + 16 its high nibble; value = code * d + m.
struct block_q4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20, "Q4_1 block is 20 bytes (formats.md §1.6)");

/// Q5_0 (22 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:6] qh` u32 (little-endian, stored as bytes so the struct has
/// no padding) fifth bits, `[6:22] qs[16]` low 4 bits. Code of element j < 16:
/// lo(qs[j]) | bit_j(qh) << 4; of element j + 16: hi(qs[j]) | bit_(j+16)(qh) << 4;
/// value = (code - 16) * d.
struct block_q5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22, "Q5_0 block is 22 bytes (formats.md §1.6)");

/// Q5_1 (24 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d`, `[2:4] m` f16, `[4:8] qh` u32 fifth bits, `[8:24] qs[16]`; codes as Q5_0,
/// value = code * d + m.
struct block_q5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24, "Q5_1 block is 24 bytes (formats.md §1.6)");

/// The 32 fifth bits of a Q5_0 / Q5_1 block as one little-endian u32 (bit e is element e's).
inline uint32_t q5_high_bits(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

/// Q8_0 (34 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:34] qs[32]` signed 8-bit codes; value = qs[e] * d.
struct block_q8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes (formats.md §1.6)");

/// Q8_1 (36 bytes, 32 elements; activation format of Q4_1/Q5_1, formats.md §2.2, §2.7).
/// Layout: `[0:2] d` f16 scale, `[2:4] s` f16 = d * sum(qs) (rounded from the f32 d and the
/// integer sum), `[4:36] qs[32]` signed 8-bit codes; value = qs[e] * d.
struct block_q8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(block_q8_1) == 36, "Q8_1 block is 36 bytes (formats.md §1.6)");

/// IQ4_NL (18 bytes, 32 elements; formats.md §2.2).
/// Layout: `[0:2] d` f16 scale, `[2:18] qs[16]` 4-bit codebook indices. Element j < 16 is the
/// low nibble of qs[j], element j + 16 its high nibble; value = d * kValuesIq4nl[index].
struct block_iq4_nl {
  uint16_t d;
  uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(block_iq4_nl) == 18, "IQ4_NL block is 18 bytes (formats.md §1.6)");

/// MXFP4 (17 bytes, 32 elements; formats.md §2.6).
/// Layout: `[0] e` E8M0 shared exponent (scale 2^(e-127)), `[1:17] qs[16]` 4-bit E2M1 codes.
/// Element j < 16 is the low nibble of qs[j], element j + 16 its high nibble;
/// value = FP4(code) * 2^(e-127) = kValuesMxfp4x2[code] * 2^(e-128).
struct block_mxfp4 {
  uint8_t e;
  uint8_t qs[QK_MXFP4 / 2];
};
static_assert(sizeof(block_mxfp4) == 17, "MXFP4 block is 17 bytes (formats.md §1.6)");

/// The IQ4_NL / IQ4_XS codebook `kvalues_iq4nl` (formats.md §2.2), ascending.
inline constexpr int8_t kValuesIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

/// The OCP E2M1 (FP4) values of codes 0..15 times two, as integers (formats.md §2.6):
/// codes 0..7 -> 0, 0.5, 1, 1.5, 2, 3, 4, 6 and codes 8..15 the same negated, doubled. ggml
/// stores this table (`kvalues_mxfp4`) and scales it by 2^(e-128).
inline constexpr int8_t kValuesMxfp4x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/// Half the E8M0 scale of an MXFP4 block: 2^(e-128), exact for every e (2^-128 is an f32
/// subnormal); e = 255, which formats.md §2.6 calls invalid, gives 2^127 (a finite value; the
/// full scale 2^128 would be inf). Multiply kValuesMxfp4x2 by it.
inline float e8m0_to_fp32_half(uint8_t e) { return std::ldexp(1.0f, static_cast<int>(e) - 128); }

/// Q2_K (84 bytes, 256 elements; formats.md §2.3).
/// Layout: `[0:16] scales[16]` (low nibble = 4-bit scale, high nibble = 4-bit min of sub-block
/// e/16), `[16:80] qs[64]` 2-bit codes, `[80:82] d` f16 super-scale, `[82:84] dmin` f16 super-min.
/// With h = e/128, k = (e%128)/32, l = e%32: q = (qs[32h + l] >> 2k) & 3;
/// value = d*lo(scales[e/16])*q - dmin*hi(scales[e/16]).
struct block_q2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(block_q2_K) == 84, "Q2_K block is 84 bytes (formats.md §1.6)");

/// Q3_K (110 bytes, 256 elements; formats.md §2.3).
/// Layout: `[0:32] hmask[32]` high bits, `[32:96] qs[64]` low 2 bits, `[96:108] scales[12]`
/// sixteen 6-bit signed scales (see q3_K_scale), `[108:110] d` f16 super-scale.
/// With h = e/128, k = (e%128)/32, l = e%32: q2 = (qs[32h + l] >> 2k) & 3,
/// hb = bit_(4h+k)(hmask[l]), q = q2 - (hb ? 0 : 4) in [-4, 3]; value = d*q3_K_scale(e/16)*q.
struct block_q3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(block_q3_K) == 110, "Q3_K block is 110 bytes (formats.md §1.6)");

/// Signed 6-bit scale (-32..31) of sub-block j (0..15, 16 elements each) of a Q3_K block from
/// its 12 scale bytes (formats.md §2.3): low4 = lo(scales[j]) for j < 8, hi(scales[j-8]) for
/// j >= 8; high2 = (scales[8 + j%4] >> 2(j/4)) & 3; scale = (low4 | high2 << 4) - 32.
inline int q3_K_scale(const uint8_t* scales, int j) {
  const int low4 = j < 8 ? scales[j] & 0x0F : scales[j - 8] >> 4;
  const int high2 = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low4 | high2 << 4) - 32;
}

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

/// IQ4_XS (136 bytes, 256 elements; formats.md §2.4).
/// Layout: `[0:2] d` f16 super-scale, `[2:4] scales_h` u16 (2 high bits per 32-element block),
/// `[4:8] scales_l[4]` (4 low bits per block, even blocks in the low nibbles), `[8:136] qs[128]`.
/// Block ib (32 elements) has the 6-bit scale ls = iq4_xs_scale(ib) (0..63) and uses
/// qs[16ib .. 16ib+15]: element 32ib + j is the low nibble of qs[16ib + j], element
/// 32ib + 16 + j the high nibble; value = d*(ls - 32)*kValuesIq4nl[index].
struct block_iq4_xs {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[QK_K / 64];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_iq4_xs) == 136, "IQ4_XS block is 136 bytes (formats.md §1.6)");

/// The unsigned 6-bit scale (0..63, value scale is d*(ls - 32)) of block ib (0..7) of an IQ4_XS
/// block (formats.md §2.4): ((scales_l[ib/2] >> 4(ib%2)) & 15) | ((scales_h >> 2ib) & 3) << 4.
inline int iq4_xs_scale(const block_iq4_xs& b, int ib) {
  return ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | ((b.scales_h >> (2 * ib)) & 3) << 4;
}

/// TQ1_0 (54 bytes, 256 elements; formats.md §2.6).
/// Layout: `[0:48] qs[48]` 5 trits per byte, `[48:52] qh[4]` 4 trits per byte, `[52:54] d` f16.
/// Trit n of byte b is tq1_0_trit(b, n); elements 32n + m (m < 32, n < 5) come from qs[m],
/// 160 + 16n + m (m < 16, n < 5) from qs[32 + m], 240 + 4n + j (j < 4, n < 4) from qh[j];
/// value = (trit - 1) * d.
struct block_tq1_0 {
  uint8_t qs[48];
  uint8_t qh[4];
  uint16_t d;
};
static_assert(sizeof(block_tq1_0) == 54, "TQ1_0 block is 54 bytes (formats.md §1.6)");

/// Trit n (0 = most significant) of a TQ1_0 byte b (formats.md §2.6):
/// t = (((b * 3^n) mod 256) * 3) >> 8, in {0, 1, 2}.
inline int tq1_0_trit(uint8_t b, int n) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t q = static_cast<uint8_t>(b * kPow3[n]);  // mod 256
  return (q * 3) >> 8;
}

/// TQ2_0 (66 bytes, 256 elements; formats.md §2.6).
/// Layout: `[0:64] qs[64]` 2-bit codes, `[64:66] d` f16. With h = e/128, k = (e%128)/32,
/// l = e%32: q = (qs[32h + l] >> 2k) & 3; value = (q - 1) * d.
struct block_tq2_0 {
  uint8_t qs[QK_K / 4];
  uint16_t d;
};
static_assert(sizeof(block_tq2_0) == 66, "TQ2_0 block is 66 bytes (formats.md §1.6)");

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

/// All eight 6-bit scales and mins of a Q4_K / Q5_K block at once (unpack_scale_min_k4 for
/// j = 0..7): byte j of `*sc` is sc_j, byte j of `*m` is m_j. With the 12 bytes read as
/// little-endian words w0 | w1 | w2: sc_0..3 = w0 & 63, m_0..3 = w1 & 63 (per byte),
/// sc_4..7 = lo4(w2) | (w0 >> 6) << 4, m_4..7 = hi4(w2) | (w1 >> 6) << 4.
inline void unpack_scales_mins_k4(const uint8_t* scales, uint64_t* sc, uint64_t* m) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, scales, 4);
  std::memcpy(&w1, scales + 4, 4);
  std::memcpy(&w2, scales + 8, 4);
  const uint32_t sc_lo = w0 & 0x3F3F3F3Fu, m_lo = w1 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u);
  const uint32_t m_hi = ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u);
  *sc = sc_lo | static_cast<uint64_t>(sc_hi) << 32;
  *m = m_lo | static_cast<uint64_t>(m_hi) << 32;
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

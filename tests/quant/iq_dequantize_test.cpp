// Dequantizers of the lattice i-quants (quant/convert_lattice.h) against deliberately naive
// references written from formats.md §2.5: one element index e at a time, reading the raw block
// bytes at the byte offsets the spec gives (not the structs of quant/blocks_iq.h), the sign
// parity computed with popcount (not the table). Bit-exact comparison on random blocks; plus
// hand-made blocks whose values are worked out by hand from the formulas.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "quant/blocks_iq.h"
#include "quant/convert_lattice.h"
#include "quant/fp16.h"
#include "quant/iq_grids.h"
#include "quant/types.h"

namespace hearth::quant {
namespace {

using Bytes = std::vector<uint8_t>;

int lo(uint8_t b) { return b & 0x0F; }
int hi(uint8_t b) { return b >> 4; }
uint32_t u16_at(const uint8_t* p) { return p[0] | p[1] << 8; }
uint32_t u32_at(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }
float f16_at(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(u16_at(p))); }
int byte_of(uint64_t v, int k) { return static_cast<int>((v >> (8 * k)) & 0xFF); }
/// Full sign byte from 7 stored bits: the 8th makes the count of negatives even.
int signs7(uint32_t s7) { return static_cast<int>(s7 | (std::popcount(s7) & 1u) << 7); }
float apply_sign(float v, int signs, int k) { return (signs >> k) & 1 ? -v : v; }

// Element e = 32ib + 8g + k.
float ref_iq2_xxs(const uint8_t* b, int e) {  // [0:2] d, [2:66] 8 chunks of 8 bytes
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  const uint8_t* chunk = b + 2 + 8 * ib;
  const uint32_t w = u32_at(chunk + 4);
  const float db = f16_at(b) * (0.5f + static_cast<float>(w >> 28)) * 0.25f;
  const float v = db * static_cast<float>(byte_of(kIq2xxsGrid[chunk[g]], k));
  return apply_sign(v, signs7((w >> (7 * g)) & 127), k);
}

float ref_iq2_xs(const uint8_t* b, int e) {  // [0:2] d, [2:66] u16 q[32], [66:74] scales
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  const uint32_t v = u16_at(b + 2 + 2 * (4 * ib + g));
  const uint8_t sc = b[66 + ib];
  const float db = f16_at(b) * (0.5f + static_cast<float>(g < 2 ? lo(sc) : hi(sc))) * 0.25f;
  return apply_sign(db * static_cast<float>(byte_of(kIq2xsGrid[v & 511], k)), signs7(v >> 9), k);
}

float ref_iq2_s(const uint8_t* b, int e) {  // d, qs[32] @2, signs[32] @34, qh[8] @66, scales @74
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  const int index = b[2 + 4 * ib + g] | ((b[66 + ib] >> (2 * g)) & 3) << 8;
  const uint8_t sc = b[74 + ib];
  const float db = f16_at(b) * (0.5f + static_cast<float>(g < 2 ? lo(sc) : hi(sc))) * 0.25f;
  return apply_sign(db * static_cast<float>(byte_of(kIq2sGrid[index], k)), b[34 + 4 * ib + g], k);
}

float ref_iq3_xxs(const uint8_t* b, int e) {  // d, idx[64] @2, u32 w[8] @66
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  const uint32_t w = u32_at(b + 66 + 4 * ib);
  const float db = f16_at(b) * (0.5f + static_cast<float>(w >> 28)) * 0.5f;
  const uint32_t entry = kIq3xxsGrid[b[2 + 8 * ib + 2 * g + k / 4]];
  return apply_sign(db * static_cast<float>(byte_of(entry, k % 4)), signs7((w >> (7 * g)) & 127), k);
}

float ref_iq3_s(const uint8_t* b, int e) {  // d, qs[64] @2, qh[8] @66, signs[32] @74, scales[4] @106
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  const int j = 2 * g + k / 4;  // which of the group's two indices
  const int index = b[2 + 8 * ib + j] | ((b[66 + ib] >> j) & 1) << 8;
  const int s = ib % 2 == 0 ? lo(b[106 + ib / 2]) : hi(b[106 + ib / 2]);
  const float db = f16_at(b) * static_cast<float>(1 + 2 * s);
  return apply_sign(db * static_cast<float>(byte_of(kIq3sGrid[index], k % 4)), b[74 + 4 * ib + g], k);
}

float ref_iq1_s(const uint8_t* b, int e) {  // d, qs[32] @2, u16 qh[8] @34
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  const uint32_t h = u16_at(b + 34 + 2 * ib);
  const int index = b[2 + 4 * ib + g] | ((h >> (3 * g)) & 7) << 8;
  const float dl = f16_at(b) * static_cast<float>(2 * ((h >> 12) & 7) + 1);
  const float delta = (h & 0x8000) ? -0.125f : 0.125f;
  return dl * (static_cast<float>(static_cast<int8_t>(byte_of(kIq1sGrid[index], k))) + delta);
}

float ref_iq1_m(const uint8_t* b, int e) {  // qs[32] @0, qh[16] @32, u16 sc[4] @48
  const int ib = e / 32, g = (e % 32) / 8, k = e % 8;
  uint32_t sc[4];
  for (int i = 0; i < 4; ++i) sc[i] = u16_at(b + 48 + 2 * i);
  const uint16_t dbits = static_cast<uint16_t>((sc[0] >> 12) | (sc[1] >> 12) << 4 | (sc[2] >> 12) << 8 | (sc[3] >> 12) << 12);
  const float d = fp16_to_fp32(dbits);
  const uint8_t q = b[32 + 2 * ib + g / 2];
  const int nib = g % 2 == 0 ? lo(q) : hi(q);
  const int index = b[4 * ib + g] | (nib & 7) << 8;
  const float delta = (nib & 8) ? -0.125f : 0.125f;
  const int s = (sc[ib / 2] >> (6 * (ib % 2) + 3 * (g / 2))) & 7;
  return d * static_cast<float>(2 * s + 1) * (static_cast<float>(static_cast<int8_t>(byte_of(kIq1sGrid[index], k))) + delta);
}

struct Case {
  GgmlType type;
  size_t block_bytes;
  std::function<float(const uint8_t*, int)> ref;
  std::vector<int> f16_offsets;  // f16 fields made finite in random blocks
};

std::vector<Case> cases() {
  return {{GgmlType::IQ2_XXS, 66, ref_iq2_xxs, {0}}, {GgmlType::IQ2_XS, 74, ref_iq2_xs, {0}},
          {GgmlType::IQ2_S, 82, ref_iq2_s, {0}},     {GgmlType::IQ3_XXS, 98, ref_iq3_xxs, {0}},
          {GgmlType::IQ3_S, 110, ref_iq3_s, {0}},    {GgmlType::IQ1_S, 50, ref_iq1_s, {0}},
          {GgmlType::IQ1_M, 56, ref_iq1_m, {}}};
}

std::vector<float> dequantize(GgmlType type, const Bytes& bytes, int64_t n) {
  const TypeTraits& t = traits(type);
  EXPECT_NE(t.to_float, nullptr) << type_name(type);
  std::vector<float> out(static_cast<size_t>(n));
  t.to_float(bytes.data(), out.data(), n);
  return out;
}

/// A random finite f16 of moderate size (|d| in [2^-10, 2^2]).
uint16_t random_f16(std::mt19937& rng) {
  std::uniform_real_distribution<float> mag(-10.0f, 2.0f);
  const float v = std::ldexp(1.0f, 0) * std::exp2(mag(rng)) * (rng() & 1 ? -1.0f : 1.0f);
  return fp32_to_fp16(v);
}

TEST(IqDequantize, RandomBlocksMatchNaiveReference) {
  std::mt19937 rng(1234);
  for (const Case& c : cases()) {
    ASSERT_EQ(traits(c.type).type_size, c.block_bytes) << type_name(c.type);
    ASSERT_EQ(traits(c.type).blck_size, 256) << type_name(c.type);
    const int nblocks = 64;
    Bytes bytes(c.block_bytes * nblocks);
    for (auto& v : bytes) v = static_cast<uint8_t>(rng());
    for (int i = 0; i < nblocks; ++i) {
      uint8_t* b = bytes.data() + c.block_bytes * i;
      for (int off : c.f16_offsets) {
        const uint16_t d = random_f16(rng);
        b[off] = d & 0xFF;
        b[off + 1] = d >> 8;
      }
      if (c.type == GgmlType::IQ1_M) {  // d lives in the top nibbles of the scale words
        const uint16_t d = random_f16(rng);
        for (int j = 0; j < 4; ++j) b[48 + 2 * j + 1] = static_cast<uint8_t>((b[48 + 2 * j + 1] & 0x0F) | ((d >> (4 * j)) & 0xF) << 4);
      }
    }
    const auto got = dequantize(c.type, bytes, 256 * nblocks);
    for (int i = 0; i < nblocks; ++i)
      for (int e = 0; e < 256; ++e) {
        const float want = c.ref(bytes.data() + c.block_bytes * i, e);
        ASSERT_TRUE(std::isfinite(want));
        ASSERT_EQ(std::bit_cast<uint32_t>(got[256 * i + e]), std::bit_cast<uint32_t>(want))
            << type_name(c.type) << " block " << i << " element " << e << ": " << got[256 * i + e] << " vs " << want;
      }
  }
}

TEST(IqDequantize, RejectsPartialBlocks) {
  for (const Case& c : cases()) {
    Bytes bytes(c.block_bytes * 2);
    std::vector<float> out(512);
    EXPECT_THROW(traits(c.type).to_float(bytes.data(), out.data(), 300), Error) << type_name(c.type);
  }
}

// ---- hand-made blocks (d = 1.0 = f16 0x3C00) ----

TEST(IqDequantize, HandMadeIq2Xxs) {
  Bytes b(66, 0);
  b[0] = 0x00, b[1] = 0x3C;  // d = 1
  // Block 0: group 0 grid index 0 (all 8), group 1 index 1 (43 then seven 8s); sign index of
  // group 0 = 1 (element 0 negative, parity makes element 7 negative); ls = 3:
  // db = 1*(0.5 + 3)*0.25 = 0.875.
  b[2 + 1] = 1;
  const uint32_t w = 1u | 3u << 28;
  for (int k = 0; k < 4; ++k) b[2 + 4 + k] = static_cast<uint8_t>(w >> (8 * k));
  const auto x = dequantize(GgmlType::IQ2_XXS, b, 256);
  EXPECT_EQ(x[0], -7.0f);  // -0.875*8
  for (int k = 1; k < 7; ++k) EXPECT_EQ(x[k], 7.0f);
  EXPECT_EQ(x[7], -7.0f);
  EXPECT_EQ(x[8], 37.625f);  // 0.875*43
  EXPECT_EQ(x[9], 7.0f);
  // Other blocks: ls = 0, db = 0.125, grid entry 0 -> 1.0 everywhere.
  for (int e = 32; e < 256; ++e) EXPECT_EQ(x[e], 1.0f) << e;
}

TEST(IqDequantize, HandMadeIq2XsAndIq2S) {
  {
    Bytes b(74, 0);
    b[0] = 0x00, b[1] = 0x3C;
    // q[0]: grid index 1, sign index 3 (elements 0 and 1 negative, even count: no parity bit).
    const uint16_t v = 1 | 3 << 9;
    b[2] = v & 0xFF, b[3] = v >> 8;
    b[66] = 0x51;  // block 0: groups 0,1 s = 1 (db = 0.375), groups 2,3 s = 5 (db = 1.375)
    const auto x = dequantize(GgmlType::IQ2_XS, b, 256);
    EXPECT_EQ(x[0], -0.375f * 43);
    EXPECT_EQ(x[1], -3.0f);
    EXPECT_EQ(x[2], 3.0f);
    EXPECT_EQ(x[16], 11.0f);  // 1.375*8
    EXPECT_EQ(x[32], 1.0f);   // block 1: db = 0.125, value 8
  }
  {
    Bytes b(82, 0);
    b[0] = 0x00, b[1] = 0x3C;
    b[2] = 1;        // group 0 low index bits = 1
    b[66] = 0;       // qh: high bits 0 -> index 1
    b[34] = 0x80;    // full sign byte: element 7 negative only (no parity rule in IQ2_S)
    b[74] = 0x02;    // s = 2 -> db = 0.625
    const auto x = dequantize(GgmlType::IQ2_S, b, 256);
    EXPECT_EQ(x[0], 0.625f * 43);
    EXPECT_EQ(x[1], 5.0f);
    EXPECT_EQ(x[7], -5.0f);
  }
}

TEST(IqDequantize, HandMadeIq3) {
  {
    Bytes b(98, 0);
    b[0] = 0x00, b[1] = 0x3C;
    // Block 0: w = ls 1 -> db = 1*(1.5)*0.5 = 0.75; grid entry 0 = (4,4,4,4) -> 3.0.
    // Sign index of group 0 = 0x40 (element 6 negative, parity -> element 7 negative).
    const uint32_t w = 0x40u | 1u << 28;
    for (int k = 0; k < 4; ++k) b[66 + k] = static_cast<uint8_t>(w >> (8 * k));
    const auto x = dequantize(GgmlType::IQ3_XXS, b, 256);
    for (int k = 0; k < 6; ++k) EXPECT_EQ(x[k], 3.0f);
    EXPECT_EQ(x[6], -3.0f);
    EXPECT_EQ(x[7], -3.0f);
    EXPECT_EQ(x[32], 1.0f);  // block 1: db = 0.25, value 4
  }
  {
    Bytes b(110, 0);
    b[0] = 0x00, b[1] = 0x3C;
    b[106] = 0x21;  // block 0: s = 1 -> db = 3; block 1: s = 2 -> db = 5
    b[2 + 1] = 1;   // second index of group 0 = 1: grid (3,1,1,1)
    b[74] = 0x10;   // element 4 negative
    const auto x = dequantize(GgmlType::IQ3_S, b, 256);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(x[k], 3.0f);  // grid entry 0 = (1,1,1,1)
    EXPECT_EQ(x[4], -9.0f);
    EXPECT_EQ(x[5], 3.0f);
    EXPECT_EQ(x[32], 5.0f);
    EXPECT_EQ(x[64], 1.0f);  // block 2: s = 0
  }
}

TEST(IqDequantize, HandMadeIq1) {
  {
    Bytes b(50, 0);
    b[0] = 0x00, b[1] = 0x3C;
    // Block 0: qh = 0x8000 | 2 << 12 -> dl = 5, delta = -0.125; grid entry 0 is all -1.
    const uint16_t h = 0x8000 | 2 << 12;
    b[34] = h & 0xFF, b[35] = h >> 8;
    const auto x = dequantize(GgmlType::IQ1_S, b, 256);
    for (int e = 0; e < 32; ++e) EXPECT_EQ(x[e], -5.625f) << e;
    for (int e = 32; e < 256; ++e) EXPECT_EQ(x[e], -0.875f) << e;  // dl = 1, delta = +0.125
  }
  {
    Bytes b(56, 0);
    // d = 1.0 = 0x3C00: nibbles 0, 0, 0xC, 0x3 in the top of sc0..sc3.
    b[48 + 5] = 0xC0;  // sc2 = 0xC000
    b[48 + 7] = 0x30;  // sc3 = 0x3000
    b[48] = 0x01;      // sc0 bits 0..2: block 0 groups 0,1 s = 1 -> 3
    b[32] = 0x08;      // group 0 nibble 8: delta -0.125; group 1 nibble 0: +0.125
    const auto x = dequantize(GgmlType::IQ1_M, b, 256);
    for (int e = 0; e < 8; ++e) EXPECT_EQ(x[e], -3.375f) << e;  // 3*(-1 - 0.125)
    for (int e = 8; e < 16; ++e) EXPECT_EQ(x[e], -2.625f) << e;  // 3*(-1 + 0.125)
    for (int e = 16; e < 32; ++e) EXPECT_EQ(x[e], -0.875f) << e;
  }
}

}  // namespace
}  // namespace hearth::quant

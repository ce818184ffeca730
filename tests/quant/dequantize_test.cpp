// Dequantizers (quant/convert.h) against deliberately naive references written straight from
// formats.md §2.2/§2.3/§2.4/§2.6: one element index e at a time, reading the raw block bytes at
// the byte offsets the spec gives (not the structs of quant/blocks.h). Bit-exact comparison.
// Also: one hand-made block per type with values worked out from the formulas, and the two
// codebooks (IQ4_NL's kvalues, MXFP4's E2M1 table) against their definitions.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::quant {
namespace {

using Bytes = std::vector<uint8_t>;

// ---- spec helpers (formats.md "Notation") ----
int lo(uint8_t b) { return b & 0x0F; }
int hi(uint8_t b) { return b >> 4; }
int bit(unsigned v, int k) { return (v >> k) & 1; }
float f16_at(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(p[0] | p[1] << 8)); }

// ---- naive references: value of element e of one block ----

float ref_q4_0(const uint8_t* b, int e) {  // [0:2] d, [2:18] qs
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  const int q = e < 16 ? lo(qs[e]) : hi(qs[e - 16]);
  return static_cast<float>(q - 8) * d;
}

float ref_q8_0(const uint8_t* b, int e) {  // [0:2] d, [2:34] i8 qs
  return static_cast<float>(static_cast<int8_t>(b[2 + e])) * f16_at(b);
}

// Q4_K table of §2.3: scale and min of sub-block j from the 12 scale bytes.
void ref_scale_min(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = lo(scales[j + 4]) | (scales[j - 4] >> 6) << 4;
    *m = hi(scales[j + 4]) | (scales[j] >> 6) << 4;
  }
}

float ref_q4_K(const uint8_t* b, int e) {  // [0:2] d, [2:4] dmin, [4:16] scales, [16:144] qs
  const int j = e / 32, p = e / 64, l = e % 32;
  int sc, m;
  ref_scale_min(b + 4, j, &sc, &m);
  const uint8_t byte = b[16 + 32 * p + l];
  const int q = (j % 2 == 0) ? lo(byte) : hi(byte);
  return f16_at(b) * sc * q - f16_at(b + 2) * m;
}

float ref_q5_K(const uint8_t* b, int e) {  // [0:2] d, [2:4] dmin, [4:16] scales, [16:48] qh, [48:176] qs
  const int j = e / 32, p = e / 64, l = e % 32;
  int sc, m;
  ref_scale_min(b + 4, j, &sc, &m);
  const uint8_t byte = b[48 + 32 * p + l];
  const int q = ((j % 2 == 0) ? lo(byte) : hi(byte)) | bit(b[16 + l], j) << 4;
  return f16_at(b) * sc * q - f16_at(b + 2) * m;
}

float ref_q6_K(const uint8_t* b, int e) {  // [0:128] ql, [128:192] qh, [192:208] i8 scales, [208:210] d
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const uint8_t lbyte = (g == 0 || g == 2) ? ql[64 * h + l] : ql[64 * h + 32 + l];
  const int low4 = g < 2 ? lo(lbyte) : hi(lbyte);
  const int high2 = (qh[32 * h + l] >> (2 * g)) & 3;
  const int q = (low4 | high2 << 4) - 32;
  const int8_t scale = static_cast<int8_t>(b[192 + e / 16]);
  return f16_at(b + 208) * scale * q;
}

float ref_q8_K(const uint8_t* b, int e) {  // [0:4] d f32, [4:260] i8 qs, [260:292] bsums
  float d;
  std::memcpy(&d, b, 4);
  return d * static_cast<int8_t>(b[4 + e]);
}

uint32_t u32_at(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

float ref_q4_1(const uint8_t* b, int e) {  // [0:2] d, [2:4] m, [4:20] qs
  const uint8_t* qs = b + 4;
  const int q = e < 16 ? lo(qs[e]) : hi(qs[e - 16]);
  return static_cast<float>(q) * f16_at(b) + f16_at(b + 2);
}

// The 5-bit code of Q5_0 / Q5_1 element e from qh (u32) and qs.
int q5_code(uint32_t qh, const uint8_t* qs, int e) {
  return e < 16 ? lo(qs[e]) | bit(qh, e) << 4 : hi(qs[e - 16]) | bit(qh, e) << 4;
}

float ref_q5_0(const uint8_t* b, int e) {  // [0:2] d, [2:6] qh, [6:22] qs
  return static_cast<float>(q5_code(u32_at(b + 2), b + 6, e) - 16) * f16_at(b);
}

float ref_q5_1(const uint8_t* b, int e) {  // [0:2] d, [2:4] m, [4:8] qh, [8:24] qs
  return static_cast<float>(q5_code(u32_at(b + 4), b + 8, e)) * f16_at(b) + f16_at(b + 2);
}

float ref_q8_1(const uint8_t* b, int e) {  // [0:2] d, [2:4] s, [4:36] i8 qs
  return static_cast<float>(static_cast<int8_t>(b[4 + e])) * f16_at(b);
}

float ref_q2_K(const uint8_t* b, int e) {  // [0:16] scales, [16:80] qs, [80:82] d, [82:84] dmin
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  const int q = (b[16 + 32 * h + l] >> (2 * k)) & 3;
  const uint8_t sc = b[e / 16];
  return f16_at(b + 80) * lo(sc) * q - f16_at(b + 82) * hi(sc);
}

float ref_q3_K(const uint8_t* b, int e) {  // [0:32] hmask, [32:96] qs, [96:108] scales, [108:110] d
  const int h = e / 128, k = (e % 128) / 32, l = e % 32, j = e / 16;
  const uint8_t* scales = b + 96;
  const int low4 = j < 8 ? lo(scales[j]) : hi(scales[j - 8]);
  const int high2 = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  const int sc = (low4 | high2 << 4) - 32;
  const int q = (b[32 + 32 * h + l] >> (2 * k)) & 3;
  const int hb = bit(b[l], 4 * h + k);
  return f16_at(b + 108) * sc * (q - (hb ? 0 : 4));
}

// kvalues_iq4nl as formats.md §2.2 lists it.
const int kIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

float ref_iq4_nl(const uint8_t* b, int e) {  // [0:2] d, [2:18] qs
  const uint8_t* qs = b + 2;
  return f16_at(b) * kIq4nl[e < 16 ? lo(qs[e]) : hi(qs[e - 16])];
}

float ref_iq4_xs(const uint8_t* b, int e) {  // [0:2] d, [2:4] scales_h, [4:8] scales_l, [8:136] qs
  const int ib = e / 32, j = e % 32;
  const unsigned scales_h = b[2] | b[3] << 8;
  const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 15) | ((scales_h >> (2 * ib)) & 3) << 4;
  const uint8_t* qs = b + 8 + 16 * ib;
  return f16_at(b) * (ls - 32) * kIq4nl[j < 16 ? lo(qs[j]) : hi(qs[j - 16])];
}

int ref_trit(uint8_t byte, int n) {  // formats.md §2.6: t = (((b * 3^n) mod 256) * 3) >> 8
  int p = 1;
  for (int i = 0; i < n; ++i) p *= 3;
  return (((byte * p) % 256) * 3) >> 8;
}

float ref_tq1_0(const uint8_t* b, int e) {  // [0:48] qs, [48:52] qh, [52:54] d
  int t;
  if (e < 160) t = ref_trit(b[e % 32], e / 32);
  else if (e < 240) t = ref_trit(b[32 + (e - 160) % 16], (e - 160) / 16);
  else t = ref_trit(b[48 + (e - 240) % 4], (e - 240) / 4);
  return static_cast<float>(t - 1) * f16_at(b + 52);
}

float ref_tq2_0(const uint8_t* b, int e) {  // [0:64] qs, [64:66] d
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  return static_cast<float>(((b[32 * h + l] >> (2 * k)) & 3) - 1) * f16_at(b + 64);
}

// OCP E2M1 by its definition: bit 3 sign, bits 2-1 exponent, bit 0 mantissa; exponent 0 is
// subnormal (m * 0.5), otherwise (1 + m/2) * 2^(exp - 1).
float e2m1(int code) {
  const int exp = (code >> 1) & 3, m = code & 1;
  const float mag = exp == 0 ? 0.5f * m : (1.0f + 0.5f * m) * std::ldexp(1.0f, exp - 1);
  return (code & 8) ? -mag : mag;
}

float ref_mxfp4(const uint8_t* b, int e) {  // [0] e, [1:17] qs; x = FP4 * 2^(e-127)
  const uint8_t* qs = b + 1;
  const float v = std::ldexp(e2m1(e < 16 ? lo(qs[e]) : hi(qs[e - 16])), b[0] - 127);
  return v == 0 ? 0.0f : v;  // code 8 ("-0") decodes to +0, as ggml's integer table gives
}

struct Case {
  GgmlType type;
  std::function<float(const uint8_t*, int)> ref;
  std::vector<int> f16_offsets;  // byte offsets of f16 scale fields inside a block
  bool f32_scale_at_0 = false;   // Q8_K
};

std::vector<Case> cases() {
  return {
      {GgmlType::Q4_0, ref_q4_0, {0}},    {GgmlType::Q8_0, ref_q8_0, {0}},
      {GgmlType::Q4_K, ref_q4_K, {0, 2}}, {GgmlType::Q5_K, ref_q5_K, {0, 2}},
      {GgmlType::Q6_K, ref_q6_K, {208}},  {GgmlType::Q8_K, ref_q8_K, {}, true},
      {GgmlType::Q4_1, ref_q4_1, {0, 2}}, {GgmlType::Q5_0, ref_q5_0, {0}},
      {GgmlType::Q5_1, ref_q5_1, {0, 2}}, {GgmlType::Q8_1, ref_q8_1, {0, 2}},
      {GgmlType::Q2_K, ref_q2_K, {80, 82}}, {GgmlType::Q3_K, ref_q3_K, {108}},
      {GgmlType::IQ4_NL, ref_iq4_nl, {0}}, {GgmlType::IQ4_XS, ref_iq4_xs, {0}},
      {GgmlType::TQ1_0, ref_tq1_0, {52}}, {GgmlType::TQ2_0, ref_tq2_0, {64}},
      {GgmlType::MXFP4, ref_mxfp4, {}},  // every e byte 0..255 (255 gives inf for |FP4| > 0.5)
  };
}

uint16_t random_finite_half(std::mt19937& rng) {
  for (;;) {
    const uint16_t h = static_cast<uint16_t>(rng());
    if ((h & 0x7C00u) != 0x7C00u) return h;
  }
}

Bytes dequant_input(const Case& c, int n_blocks, std::mt19937& rng) {
  const TypeTraits& t = traits(c.type);
  Bytes data(t.type_size * n_blocks);
  for (auto& byte : data) byte = static_cast<uint8_t>(rng());
  for (int i = 0; i < n_blocks; ++i) {
    uint8_t* b = data.data() + i * t.type_size;
    for (int off : c.f16_offsets) {
      const uint16_t h = random_finite_half(rng);
      b[off] = static_cast<uint8_t>(h);
      b[off + 1] = static_cast<uint8_t>(h >> 8);
    }
    if (c.f32_scale_at_0) {
      const float d = std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng),
                                 std::uniform_int_distribution<int>(-30, 10)(rng));
      std::memcpy(b, &d, 4);
    }
  }
  return data;
}

TEST(Dequantize, MatchesNaiveReferenceOnRandomBlocks) {
  std::mt19937 rng(42);
  constexpr int kBlocks = 300;
  for (const Case& c : cases()) {
    const TypeTraits& t = traits(c.type);
    ASSERT_NE(t.to_float, nullptr) << t.name;
    const Bytes data = dequant_input(c, kBlocks, rng);
    const int64_t n = kBlocks * t.blck_size;
    std::vector<float> got(n);
    t.to_float(data.data(), got.data(), n);
    size_t mismatches = 0;
    for (int i = 0; i < kBlocks; ++i)
      for (int e = 0; e < t.blck_size; ++e) {
        const float want = c.ref(data.data() + i * t.type_size, e);
        const float g = got[i * t.blck_size + e];
        if (std::bit_cast<uint32_t>(want) != std::bit_cast<uint32_t>(g) && mismatches++ < 5)
          ADD_FAILURE() << t.name << " block " << i << " element " << e << ": got " << g
                        << ", spec says " << want;
      }
    EXPECT_EQ(mismatches, 0u) << t.name;
  }
}

// ---- one hand-made block per type with values worked out by hand from formats.md ----

void put_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  p[0] = static_cast<uint8_t>(h);
  p[1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> dequantize(GgmlType type, const Bytes& block) {
  const TypeTraits& t = traits(type);
  EXPECT_EQ(block.size(), t.type_size);
  std::vector<float> out(t.blck_size);
  t.to_float(block.data(), out.data(), t.blck_size);
  return out;
}

TEST(Dequantize, HandMadeQ4_0) {
  Bytes b(18, 0x88);  // every code 8 -> value 0
  put_f16(b.data(), 0.5f);
  b[2 + 0] = 0x9F;  // element 0: lo 15 -> (15-8)*0.5 = 3.5; element 16: hi 9 -> 0.5
  b[2 + 1] = 0x08;  // element 1: 8 -> 0; element 17: 0 -> -4
  const auto x = dequantize(GgmlType::Q4_0, b);
  EXPECT_EQ(x[0], 3.5f);
  EXPECT_EQ(x[16], 0.5f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[17], -4.0f);
  EXPECT_EQ(x[31], 0.0f);
}

TEST(Dequantize, HandMadeQ8_0) {
  Bytes b(34, 0);
  put_f16(b.data(), 0.25f);
  b[2 + 0] = 0x80;  // -128
  b[2 + 5] = 3;
  b[2 + 31] = 127;
  const auto x = dequantize(GgmlType::Q8_0, b);
  EXPECT_EQ(x[0], -32.0f);
  EXPECT_EQ(x[5], 0.75f);
  EXPECT_EQ(x[31], 31.75f);
  EXPECT_EQ(x[1], 0.0f);
}

// Scales shared by the Q4_K and Q5_K hand-made blocks:
// sc0 = 2, m0 = 4; sc1 = 1, m1 = 3; sc5 = 5 | 2<<4 = 37, m5 = 2 | 3<<4 = 50; others 0.
void put_k4_scales(uint8_t* scales) {
  scales[0] = 2;                 // sc0
  scales[4] = 4;                 // m0
  scales[1] = (2 << 6) | 1;      // sc1 = 1, top bits of sc5 = 2
  scales[5] = (3 << 6) | 3;      // m1 = 3, top bits of m5 = 3
  scales[9] = (2 << 4) | 5;      // low nibbles: sc5 = 5, m5 = 2
}

TEST(Dequantize, HandMadeQ4_K) {
  Bytes b(144, 0);
  put_f16(b.data(), 1.0f);      // d
  put_f16(b.data() + 2, 0.5f);  // dmin
  put_k4_scales(b.data() + 4);
  b[16 + 0] = 0x73;   // element 0 (sub-block 0): 3; element 32 (sub-block 1): 7
  b[16 + 64] = 0xA0;  // element 128 (sub-block 4): 0; element 160 (sub-block 5): 10
  const auto x = dequantize(GgmlType::Q4_K, b);
  EXPECT_EQ(x[0], 1.0f * 2 * 3 - 0.5f * 4);    // 4
  EXPECT_EQ(x[1], -2.0f);                      // q 0 in sub-block 0
  EXPECT_EQ(x[32], 1.0f * 1 * 7 - 0.5f * 3);   // 5.5
  EXPECT_EQ(x[128], 0.0f);                     // sc4 = m4 = 0
  EXPECT_EQ(x[160], 1.0f * 37 * 10 - 0.5f * 50);  // 345
  EXPECT_EQ(x[161], -25.0f);
}

TEST(Dequantize, HandMadeQ5_K) {
  Bytes b(176, 0);
  put_f16(b.data(), 1.0f);
  put_f16(b.data() + 2, 0.5f);
  put_k4_scales(b.data() + 4);
  b[16 + 0] = (1 << 1) | (1 << 5);  // qh[0]: fifth bit for sub-blocks 1 and 5 at l = 0
  b[48 + 0] = 0x73;
  b[48 + 64] = 0xA0;
  const auto x = dequantize(GgmlType::Q5_K, b);
  EXPECT_EQ(x[0], 4.0f);                          // no fifth bit for sub-block 0
  EXPECT_EQ(x[32], 1.0f * 1 * 23 - 0.5f * 3);     // 7 | 16 = 23 -> 21.5
  EXPECT_EQ(x[160], 1.0f * 37 * 26 - 0.5f * 50);  // 10 | 16 = 26 -> 937
  EXPECT_EQ(x[33], -1.5f);                        // l = 1 has no fifth bit
}

TEST(Dequantize, HandMadeQ6_K) {
  Bytes b(210, 0);
  put_f16(b.data() + 208, 2.0f);
  int8_t* scales = reinterpret_cast<int8_t*>(b.data() + 192);
  scales[0] = -3;  // elements 0..15
  scales[4] = 1;   // elements 64..79
  scales[6] = 5;   // elements 96..111
  scales[9] = 7;   // elements 144..159
  b[0] = 0x5A;               // ql[0]: low nibble for e = 0 (10), high nibble for e = 64 (5)
  b[32] = 0xF0;              // ql[32]: high nibble for e = 96 (15)
  b[128 + 0] = 0b11000010;   // qh[0]: e = 0 high2 = 2, e = 64 high2 = 0, e = 96 high2 = 3
  b[64 + 16] = 0x01;         // ql[80]: e = 144 (h 1, g 0, l 16) low4 = 1
  b[128 + 32 + 16] = 0x01;   // qh[48]: e = 144 high2 = 1
  const auto x = dequantize(GgmlType::Q6_K, b);
  EXPECT_EQ(x[0], 2.0f * -3 * ((10 | 2 << 4) - 32));   // -60
  EXPECT_EQ(x[64], 2.0f * 1 * (5 - 32));                // -54
  EXPECT_EQ(x[96], 2.0f * 5 * ((15 | 3 << 4) - 32));   // 310
  EXPECT_EQ(x[144], 2.0f * 7 * ((1 | 1 << 4) - 32));    // -210
  EXPECT_EQ(x[1], 2.0f * -3 * -32);                     // all-zero code = -32 -> 192
  EXPECT_EQ(x[32], 0.0f);                               // scales[2] = 0
}

TEST(Dequantize, HandMadeQ8_K) {
  Bytes b(292, 0);
  const float d = 0.125f;
  std::memcpy(b.data(), &d, 4);
  b[4 + 3] = static_cast<uint8_t>(-7);
  b[4 + 255] = 100;
  const auto x = dequantize(GgmlType::Q8_K, b);
  EXPECT_EQ(x[3], -0.875f);
  EXPECT_EQ(x[255], 12.5f);
  EXPECT_EQ(x[0], 0.0f);
}

TEST(Dequantize, HandMadeQ4_1) {
  Bytes b(20, 0);
  put_f16(b.data(), 0.5f);       // d
  put_f16(b.data() + 2, -1.0f);  // m
  b[4 + 0] = 0x9F;  // element 0: 15*0.5 - 1 = 6.5; element 16: 9*0.5 - 1 = 3.5
  b[4 + 5] = 0x20;  // element 5: 0 -> -1; element 21: 2*0.5 - 1 = 0
  const auto x = dequantize(GgmlType::Q4_1, b);
  EXPECT_EQ(x[0], 6.5f);
  EXPECT_EQ(x[16], 3.5f);
  EXPECT_EQ(x[5], -1.0f);
  EXPECT_EQ(x[21], 0.0f);
  EXPECT_EQ(x[31], -1.0f);
}

TEST(Dequantize, HandMadeQ5_0AndQ5_1) {
  // Codes: element 0 = 10 | 16 = 26, element 16 = 3, element 1 = 0, element 17 = 15 | 16 = 31.
  const auto fill = [](uint8_t* qh, uint8_t* qs) {
    const uint32_t bits = 1u << 0 | 1u << 17;
    for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(bits >> (8 * k));
    qs[0] = 0x3A;
    qs[1] = 0xF0;
  };
  Bytes b0(22, 0);
  put_f16(b0.data(), 0.25f);
  fill(b0.data() + 2, b0.data() + 6);
  const auto x = dequantize(GgmlType::Q5_0, b0);
  EXPECT_EQ(x[0], (26 - 16) * 0.25f);   // 2.5
  EXPECT_EQ(x[16], (3 - 16) * 0.25f);   // -3.25
  EXPECT_EQ(x[1], -4.0f);               // code 0
  EXPECT_EQ(x[17], (31 - 16) * 0.25f);  // 3.75
  EXPECT_EQ(x[31], -4.0f);

  Bytes b1(24, 0);
  put_f16(b1.data(), 1.0f);
  put_f16(b1.data() + 2, 0.5f);
  fill(b1.data() + 4, b1.data() + 8);
  const auto y = dequantize(GgmlType::Q5_1, b1);
  EXPECT_EQ(y[0], 26.5f);
  EXPECT_EQ(y[16], 3.5f);
  EXPECT_EQ(y[1], 0.5f);
  EXPECT_EQ(y[17], 31.5f);
}

TEST(Dequantize, HandMadeQ8_1IgnoresS) {
  Bytes b(36, 0);
  put_f16(b.data(), 0.5f);
  put_f16(b.data() + 2, 1000.0f);  // s plays no part in the values
  b[4 + 0] = static_cast<uint8_t>(-128);
  b[4 + 31] = 7;
  const auto x = dequantize(GgmlType::Q8_1, b);
  EXPECT_EQ(x[0], -64.0f);
  EXPECT_EQ(x[31], 3.5f);
  EXPECT_EQ(x[1], 0.0f);
}

TEST(Dequantize, HandMadeQ2_K) {
  Bytes b(84, 0);
  put_f16(b.data() + 80, 2.0f);  // d
  put_f16(b.data() + 82, 0.5f);  // dmin
  b[0] = 0x31;        // sub-block 0 (elements 0..15): scale 1, min 3
  b[5] = 0x27;        // sub-block 5 (elements 80..95): scale 7, min 2
  b[8] = 0xF2;        // sub-block 8 (elements 128..143): scale 2, min 15
  b[16 + 0] = 0xE4;   // qs[0]: e0 (k 0) = 0, e32 (k 1) = 1, e64 = 2, e96 = 3
  b[16 + 19] = 0x30;  // qs[19]: e83 (k 2, l 19) = 3
  b[16 + 32] = 0x02;  // qs[32]: e128 (h 1, k 0, l 0) = 2
  const auto x = dequantize(GgmlType::Q2_K, b);
  EXPECT_EQ(x[0], 2.0f * 1 * 0 - 0.5f * 3);   // -1.5
  EXPECT_EQ(x[1], -1.5f);
  EXPECT_EQ(x[83], 2.0f * 7 * 3 - 0.5f * 2);  // 41
  EXPECT_EQ(x[84], -1.0f);                    // code 0 in sub-block 5
  EXPECT_EQ(x[128], 2.0f * 2 * 2 - 0.5f * 15);  // 0.5
  EXPECT_EQ(x[32], 0.0f);                     // sub-block 2: scale 0, min 0
}

TEST(Dequantize, HandMadeQ3_K) {
  Bytes b(110, 0);
  put_f16(b.data() + 108, 0.5f);
  uint8_t* scales = b.data() + 96;
  scales[0] = 0x05;  // sub-block 0: low4 5 ...
  scales[8] = 0x02;  // ... high2 2 -> 37 - 32 = 5
  scales[1] = 0xC0;  // sub-block 9: low4 12 (high nibble of scales[1]), high2 0 -> 12 - 32 = -20
  b[32 + 0] = 0x03;  // qs[0]: e0 q2 = 3
  b[0] = 0x01;       // hmask[0] bit 0: e0 high bit set -> q = 3
  b[32 + 54] = 0x01;  // qs[32 + 22]: e150 (h 1, k 0, l 22) q2 = 1
  b[22] = 0x10;       // hmask[22] bit 4 = 4h + k: high bit set -> q = 1
  const auto x = dequantize(GgmlType::Q3_K, b);
  EXPECT_EQ(x[0], 0.5f * 5 * 3);      // 7.5
  EXPECT_EQ(x[1], 0.5f * 5 * -4);     // -10: q2 0, no high bit
  EXPECT_EQ(x[150], 0.5f * -20 * 1);  // -10
  EXPECT_EQ(x[151], 0.5f * -20 * -4);  // 40
  EXPECT_EQ(x[32], 0.5f * -32 * -4);  // sub-block 2: all-zero scale bits mean -32 -> 64
}

TEST(Dequantize, HandMadeIQ4_NL) {
  Bytes b(18, 0x88);  // K[8] = 1
  put_f16(b.data(), 0.5f);
  b[2 + 0] = 0xF0;  // element 0: K[0] = -127; element 16: K[15] = 113
  b[2 + 3] = 0x78;  // element 3: K[8] = 1; element 19: K[7] = -10
  const auto x = dequantize(GgmlType::IQ4_NL, b);
  EXPECT_EQ(x[0], -63.5f);
  EXPECT_EQ(x[16], 56.5f);
  EXPECT_EQ(x[3], 0.5f);
  EXPECT_EQ(x[19], -5.0f);
  EXPECT_EQ(x[31], 0.5f);
}

TEST(Dequantize, HandMadeIQ4_XS) {
  Bytes b(136, 0);
  put_f16(b.data(), 0.25f);
  // ls0 = 1 | 2<<4 = 33 (scale 1); ls3 = 0 (scale -32); ls5 = 15 | 3<<4 = 63 (scale 31).
  const unsigned scales_h = 2u << 0 | 0u << 6 | 3u << 10;
  b[2] = static_cast<uint8_t>(scales_h);
  b[3] = static_cast<uint8_t>(scales_h >> 8);
  b[4 + 0] = 0x01;  // low nibble: ls0; high nibble: ls1
  b[4 + 1] = 0x00;  // high nibble: ls3
  b[4 + 2] = 0xF0;  // high nibble: ls5
  b[8 + 0] = 0x0F;        // block 0: element 0 K[15] = 113, element 16 K[0] = -127
  b[8 + 16 * 3 + 2] = 0x08;  // block 3: element 98 K[8] = 1, element 114 K[0]
  b[8 + 16 * 5] = 0x0B;   // block 5: element 160 K[11] = 38, element 176 K[0]
  const auto x = dequantize(GgmlType::IQ4_XS, b);
  EXPECT_EQ(x[0], 0.25f * 1 * 113);     // 28.25
  EXPECT_EQ(x[16], 0.25f * 1 * -127);   // -31.75
  EXPECT_EQ(x[98], 0.25f * -32 * 1);    // -8
  EXPECT_EQ(x[114], 0.25f * -32 * -127);  // 1016
  EXPECT_EQ(x[160], 0.25f * 31 * 38);   // 294.5
  EXPECT_EQ(x[176], 0.25f * 31 * -127);  // -984.25
}

TEST(Dequantize, HandMadeTQ1_0) {
  Bytes b(54, 0);  // byte 0 holds the trits 0, 0, 0, ... -> every value -d
  put_f16(b.data() + 52, 0.5f);
  // qs[0]: trits (2, 0, 1, 2, 1) of elements 0, 32, 64, 96, 128: v = 162 + 9 + 6 + 1 = 178,
  // stored ceil(178*256/243) = 188.
  b[0] = 188;
  // qh[1]: trits (1, 2, 0, 2) of elements 241, 245, 249, 253 (+ implicit 0): v = 81 + 54 + 6 = 141,
  // stored ceil(141*256/243) = 149.
  b[48 + 1] = 149;
  const auto x = dequantize(GgmlType::TQ1_0, b);
  const float want0[5] = {0.5f, -0.5f, 0.0f, 0.5f, 0.0f};
  for (int n = 0; n < 5; ++n) EXPECT_EQ(x[32 * n], want0[n]) << "element " << 32 * n;
  const float want1[4] = {0.0f, 0.5f, -0.5f, 0.5f};
  for (int n = 0; n < 4; ++n) EXPECT_EQ(x[241 + 4 * n], want1[n]) << "element " << 241 + 4 * n;
  EXPECT_EQ(x[1], -0.5f);
  EXPECT_EQ(x[160], -0.5f);
  EXPECT_EQ(x[240], -0.5f);
}

TEST(Dequantize, HandMadeTQ2_0) {
  Bytes b(66, 0x55);  // every code 1 -> 0
  put_f16(b.data() + 64, 2.0f);
  b[0] = 0x92;        // 0b10'01'00'10: e0 = 2, e32 = 0, e64 = 1, e96 = 2
  b[33] = 0x57;       // e129 (h 1, k 0, l 1) = 3
  const auto x = dequantize(GgmlType::TQ2_0, b);
  EXPECT_EQ(x[0], 2.0f);
  EXPECT_EQ(x[32], -2.0f);
  EXPECT_EQ(x[64], 0.0f);
  EXPECT_EQ(x[96], 2.0f);
  EXPECT_EQ(x[129], 4.0f);
  EXPECT_EQ(x[255], 0.0f);
}

TEST(Dequantize, HandMadeMXFP4) {
  Bytes b(17, 0);
  b[0] = 128;          // scale 2^(128-127) = 2
  b[1 + 0] = 0xF7;     // element 0: code 7 = 6 -> 12; element 16: code 15 = -6 -> -12
  b[1 + 1] = 0x91;     // element 1: 0.5 -> 1; element 17: -0.5 -> -1
  b[1 + 2] = 0x08;     // element 2: code 8 (-0) -> 0; element 18: 0
  b[1 + 3] = 0x5C;     // element 3: code 12 = -2 -> -4; element 19: code 5 = 3 -> 6
  auto x = dequantize(GgmlType::MXFP4, b);
  EXPECT_EQ(x[0], 12.0f);
  EXPECT_EQ(x[16], -12.0f);
  EXPECT_EQ(x[1], 1.0f);
  EXPECT_EQ(x[17], -1.0f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_FALSE(std::signbit(x[2]));  // "-0" decodes to +0 (ggml's table holds the integer 0)
  EXPECT_EQ(x[18], 0.0f);
  EXPECT_EQ(x[3], -4.0f);
  EXPECT_EQ(x[19], 6.0f);
  b[0] = 0;  // the smallest scale 2^-127 (an f32 subnormal): code 2 = 1.0 -> 2^-127
  b[1 + 4] = 0x02;
  x = dequantize(GgmlType::MXFP4, b);
  EXPECT_EQ(x[4], std::ldexp(1.0f, -127));
  EXPECT_EQ(x[0], 6 * std::ldexp(1.0f, -127));
}

// ---- the codebooks against their definitions ----

TEST(Codebooks, Iq4nlValuesAreFormatsMdTable) {
  // formats.md §2.2: K = {-127, -104, ..., 113}, ascending (the quantizer's nearest-value search
  // relies on it), K[0] the value of largest magnitude (the scale search starts from -max/K[0]).
  for (int i = 0; i < 16; ++i) EXPECT_EQ(kValuesIq4nl[i], kIq4nl[i]) << i;
  for (int i = 1; i < 16; ++i) EXPECT_LT(kValuesIq4nl[i - 1], kValuesIq4nl[i]);
  for (int i = 1; i < 16; ++i) EXPECT_LT(std::abs(kValuesIq4nl[i]), -kValuesIq4nl[0]);
}

TEST(Codebooks, Mxfp4TableIsTwiceE2M1) {
  // OCP MX E2M1: codes 0..7 = 0, 0.5, 1, 1.5, 2, 3, 4, 6 and 8..15 their negatives.
  const float listed[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(e2m1(c), (c & 8) ? -listed[c & 7] : listed[c & 7]) << c;
    EXPECT_EQ(kValuesMxfp4x2[c], 2 * e2m1(c)) << c;
  }
  // The half scale times the doubled table is the full scale times E2M1, for every exponent.
  for (int e = 0; e < 255; ++e) {
    EXPECT_EQ(e8m0_to_fp32_half(static_cast<uint8_t>(e)), std::ldexp(1.0f, e - 128)) << e;
    for (int c = 0; c < 16; ++c)
      ASSERT_EQ(kValuesMxfp4x2[c] * e8m0_to_fp32_half(static_cast<uint8_t>(e)), std::ldexp(e2m1(c), e - 127))
          << "e " << e << " code " << c;
  }
}

TEST(Dequantize, PlainTypes) {
  const float src[4] = {1.5f, -2.0f, 65504.0f, 1e-3f};
  const uint16_t f16[4] = {0x3E00, 0xC000, 0x7BFF, 0x1419};  // 0x1419 = 0.0010004
  const uint16_t bf16[4] = {0x3FC0, 0xC000, 0x477F, 0x3A83};
  float out[4];
  traits(GgmlType::F32).to_float(src, out, 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], src[i]);
  traits(GgmlType::F16).to_float(f16, out, 4);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 65504.0f);
  EXPECT_EQ(out[3], std::ldexp(1049.0f, -20));  // (1024 + 25) * 2^(5-15-10)
  traits(GgmlType::BF16).to_float(bf16, out, 4);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 65280.0f);
  EXPECT_EQ(std::bit_cast<uint32_t>(out[3]), 0x3A830000u);
}

TEST(Dequantize, RejectsPartialBlocks) {
  std::vector<uint8_t> data(1024);
  std::vector<float> out(512);
  EXPECT_THROW(to_float_q4_0(data.data(), out.data(), 33), Error);
  EXPECT_THROW(to_float_q6_K(data.data(), out.data(), 100), Error);
  EXPECT_THROW(from_float_q4_K(out.data(), data.data(), 255), Error);
  EXPECT_THROW(to_float_q5_1(data.data(), out.data(), 48), Error);
  EXPECT_THROW(to_float_iq4_xs(data.data(), out.data(), 32), Error);
  EXPECT_THROW(from_float_iq4_nl(out.data(), data.data(), 31), Error);
  EXPECT_THROW(from_float_tq1_0(out.data(), data.data(), 128), Error);
  EXPECT_THROW(from_float_mxfp4(out.data(), data.data(), -32), Error);
  EXPECT_NO_THROW(to_float_q8_0(data.data(), out.data(), 64));
  EXPECT_NO_THROW(to_float_q2_K(data.data(), out.data(), 256));
}

}  // namespace
}  // namespace hearth::quant

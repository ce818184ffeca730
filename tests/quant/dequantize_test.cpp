// Dequantizers (quant/convert.h) against deliberately naive references written straight from
// formats.md §2.2/§2.3: one element index e at a time, reading the raw block bytes at the byte
// offsets the spec gives (not the structs of quant/blocks.h). Bit-exact comparison.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
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
  EXPECT_NO_THROW(to_float_q8_0(data.data(), out.data(), 64));
}

}  // namespace
}  // namespace hearth::quant

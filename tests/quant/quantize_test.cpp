// Reference quantizers (quant/convert.h, formats.md §3): exact codes on hand-made blocks,
// all-zero input, Q8_K bsums, the requantization rule of §3.3 item 4, and round-trip error
// bounds on Gaussian data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::quant {
namespace {

std::vector<uint8_t> quantize(GgmlType type, const std::vector<float>& x) {
  const TypeTraits& t = traits(type);
  std::vector<uint8_t> q(row_size(type, static_cast<int64_t>(x.size())));
  t.from_float(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> dequantize(GgmlType type, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  traits(type).to_float(q.data(), y.data(), static_cast<int64_t>(n));
  return y;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

// ---- exact codes ----

TEST(Quantize, Q8_0HandMadeBlockRoundsHalvesAwayFromZero) {
  // max |x| = 127 -> d = 1, id = 1, q = roundf(x).
  std::vector<float> x(32, 0.0f);
  const float in[] = {127.0f, -63.5f, 2.5f, -2.5f, 0.49f, 1.5f, -126.6f, 0.5f};
  const int8_t want[] = {127, -64, 3, -3, 0, 2, -127, 1};
  std::copy(std::begin(in), std::end(in), x.begin());
  const auto q = quantize(GgmlType::Q8_0, x);
  const auto* b = reinterpret_cast<const block_q8_0*>(q.data());
  EXPECT_EQ(b->d, 0x3C00);  // f16(1.0)
  for (int i = 0; i < 8; ++i) EXPECT_EQ(b->qs[i], want[i]) << "x = " << in[i];
  for (int i = 8; i < 32; ++i) EXPECT_EQ(b->qs[i], 0);
}

TEST(Quantize, Q4_0HandMadeBlock) {
  // Signed max-magnitude element -8 -> d = -8/-8 = 1, id = 1, q = min(15, trunc(x + 8.5)).
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;   // 0
  x[1] = 7.0f;    // trunc(15.5) = 15
  x[2] = 7.4f;    // trunc(15.9) = 15
  x[3] = -0.6f;   // trunc(7.9) = 7
  x[4] = 0.5f;    // trunc(9.0) = 9
  x[5] = -0.5f;   // trunc(8.0) = 8
  x[16] = 3.2f;   // trunc(11.7) = 11 (high nibble of qs[0])
  x[17] = -7.9f;  // trunc(0.6) = 0
  const auto q = quantize(GgmlType::Q4_0, x);
  const auto* b = reinterpret_cast<const block_q4_0*>(q.data());
  EXPECT_EQ(b->d, 0x3C00);
  EXPECT_EQ(b->qs[0], 0x00 | 11 << 4);
  EXPECT_EQ(b->qs[1], 15 | 0 << 4);
  EXPECT_EQ(b->qs[2], 15 | 8 << 4);
  EXPECT_EQ(b->qs[3], 7 | 8 << 4);
  EXPECT_EQ(b->qs[4], 9 | 8 << 4);
  EXPECT_EQ(b->qs[5], 8 | 8 << 4);
  EXPECT_EQ(b->qs[15], 0x88);

  // A positive extreme gives a negative scale: 8 -> d = -1, 8 maps to code 0.
  std::vector<float> y(32, 0.0f);
  y[7] = 8.0f;
  y[8] = -8.0f;  // same magnitude, later: the first one wins
  const auto q2 = quantize(GgmlType::Q4_0, y);
  const auto* b2 = reinterpret_cast<const block_q4_0*>(q2.data());
  EXPECT_EQ(b2->d, fp32_to_fp16(-1.0f));
  EXPECT_EQ(b2->qs[7] & 0x0F, 0);
  EXPECT_EQ(b2->qs[8] & 0x0F, 15);  // -8 * -1 + 8.5 = 16.5 -> clamped to 15
}

TEST(Quantize, PlainTypes) {
  const std::vector<float> x = {1.0f, -0.1f, 70000.0f, 1e-8f};
  const auto f16 = quantize(GgmlType::F16, x);
  const auto* h = reinterpret_cast<const uint16_t*>(f16.data());
  EXPECT_EQ(h[0], 0x3C00);
  EXPECT_EQ(h[1], fp32_to_fp16(-0.1f));
  EXPECT_EQ(h[2], 0x7C00);
  EXPECT_EQ(h[3], 0x0000);
  const auto bf16 = quantize(GgmlType::BF16, x);
  const auto* g = reinterpret_cast<const uint16_t*>(bf16.data());
  EXPECT_EQ(g[0], 0x3F80);
  EXPECT_EQ(g[1], fp32_to_bf16(-0.1f));
  const auto f32 = quantize(GgmlType::F32, x);
  EXPECT_EQ(std::memcmp(f32.data(), x.data(), 16), 0);
}

// ---- all-zero input ----

TEST(Quantize, AllZeroInputGivesAllZeroOutput) {
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K,
                        GgmlType::Q6_K, GgmlType::Q8_K, GgmlType::F16, GgmlType::BF16}) {
    const std::vector<float> x(512, 0.0f);
    const auto y = dequantize(type, quantize(type, x), x.size());
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], 0.0f) << type_name(type) << " element " << i;
  }
  // A zero block next to a non-zero one.
  std::vector<float> x(512, 0.0f);
  for (int i = 256; i < 512; ++i) x[i] = std::sin(0.1f * i);
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K}) {
    const auto y = dequantize(type, quantize(type, x), x.size());
    for (int i = 0; i < 256; ++i) ASSERT_EQ(y[i], 0.0f) << type_name(type) << " element " << i;
    for (int i = 256; i < 512; ++i) ASSERT_TRUE(std::isfinite(y[i])) << type_name(type);
  }
  // Q8_K zero block: d, codes and bsums all zero.
  const auto q = quantize(GgmlType::Q8_K, std::vector<float>(256, 0.0f));
  EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](uint8_t b) { return b == 0; }));
}

// ---- Q8_K (formats.md §3.1) ----

TEST(Quantize, Q8_KBsumsAndScale) {
  const auto x = gaussian(4 * 256, 7);
  const auto q = quantize(GgmlType::Q8_K, x);
  const auto* b = reinterpret_cast<const block_q8_K*>(q.data());
  for (int i = 0; i < 4; ++i) {
    // Signed max-magnitude element maps to -127: d = max/-127.
    int imax = 0;
    for (int j = 1; j < 256; ++j)
      if (std::fabs(x[256 * i + j]) > std::fabs(x[256 * i + imax])) imax = j;
    EXPECT_EQ(b[i].qs[imax], -127);
    EXPECT_EQ(b[i].d, 1 / (-127.f / x[256 * i + imax]));
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * s + l];
      EXPECT_EQ(b[i].bsums[s], sum) << "block " << i << " group " << s;
    }
    for (int j = 0; j < 256; ++j)  // nint(x/d): within half a step
      EXPECT_LE(std::fabs(b[i].d * b[i].qs[j] - x[256 * i + j]), 0.5f * std::fabs(b[i].d) * 1.0001f);
  }
}

TEST(Quantize, Q8_KRoundsHalvesToEven) {
  std::vector<float> x(256, 0.0f);
  x[0] = -127.0f;  // iscale = -127/-127 = 1, d = 1
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -0.5f;
  const auto q = quantize(GgmlType::Q8_K, x);
  const auto* b = reinterpret_cast<const block_q8_K*>(q.data());
  EXPECT_EQ(b->d, 1.0f);
  EXPECT_EQ(b->qs[0], -127);
  EXPECT_EQ(b->qs[1], 2);
  EXPECT_EQ(b->qs[2], 4);
  EXPECT_EQ(b->qs[3], 0);
}

// ---- requantization with the decoded scales (formats.md §3.3 item 4) ----

TEST(Quantize, KQuantCodesAreNearestForDecodedScales) {
  const auto x = gaussian(8 * 256, 11);
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K}) {
    const int nmax = type == GgmlType::Q4_K ? 15 : 31;
    const auto q = quantize(type, x);
    const auto y = dequantize(type, q, x.size());
    for (int i = 0; i < 8; ++i) {
      uint16_t d16, dmin16;
      const uint8_t* scales;
      if (type == GgmlType::Q4_K) {
        const auto& b = reinterpret_cast<const block_q4_K*>(q.data())[i];
        d16 = b.d, dmin16 = b.dmin, scales = b.scales;
      } else {
        const auto& b = reinterpret_cast<const block_q5_K*>(q.data())[i];
        d16 = b.d, dmin16 = b.dmin, scales = b.scales;
      }
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        unpack_scale_min_k4(scales, j, &sc, &m);
        const float d1 = fp16_to_fp32(d16) * sc;
        const float m1 = fp16_to_fp32(dmin16) * m;
        ASSERT_NE(d1, 0.0f);
        for (int l = 0; l < 32; ++l) {
          const int e = 256 * i + 32 * j + l;
          const int want = std::clamp(nint((x[e] + m1) / d1), 0, nmax);
          // The stored code, recovered from the dequantized value.
          const int code = static_cast<int>(std::lround((y[e] + m1) / d1));
          ASSERT_EQ(code, want) << type_name(type) << " element " << e;
        }
      }
    }
  }
  const auto q = quantize(GgmlType::Q6_K, x);
  const auto y = dequantize(GgmlType::Q6_K, q, x.size());
  const auto* b = reinterpret_cast<const block_q6_K*>(q.data());
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(std::any_of(b[i].scales, b[i].scales + 16, [](int8_t s) { return s == -128; }))
        << "the largest sub-block scale maps to -128";
    for (int s = 0; s < 16; ++s) {
      const float d1 = fp16_to_fp32(b[i].d) * b[i].scales[s];
      ASSERT_NE(d1, 0.0f);
      for (int l = 0; l < 16; ++l) {
        const int e = 256 * i + 16 * s + l;
        const int want = std::clamp(nint(x[e] / d1), -32, 31);
        ASSERT_EQ(static_cast<int>(std::lround(y[e] / d1)), want) << "Q6_K element " << e;
      }
    }
  }
}

TEST(Quantize, NintRoundsHalvesToEven) {
  EXPECT_EQ(nint(0.5f), 0);
  EXPECT_EQ(nint(1.5f), 2);
  EXPECT_EQ(nint(2.5f), 2);
  EXPECT_EQ(nint(-0.5f), 0);
  EXPECT_EQ(nint(-1.5f), -2);
  EXPECT_EQ(nint(-2.4999998f), -2);
  EXPECT_EQ(nint(127.0f), 127);
  EXPECT_EQ(nint(-4194303.0f), -4194303);
}

// ---- round-trip error on Gaussian data ----

struct RmseCase {
  GgmlType type;
  double max_relative_rmse;  // bound on sqrt(sum (x - y)^2 / sum x^2)
};

TEST(Quantize, RoundTripErrorOnGaussianData) {
  // Measured on these inputs (64 rows x 4096, N(0,1)): F16 0.021%, BF16 0.166%, Q8_0 0.534%,
  // Q8_K 0.695%, Q6_K 1.77%, Q5_K 3.60%, Q4_K 7.12%, Q4_0 8.58%. The bounds leave 10-20%
  // headroom, so a wrong formula (a dropped min, a mis-ordered nibble) fails. Q8_0 and Q4_0 sit
  // above the round numbers one might expect (0.5%, 8%): with 32-element blocks of Gaussian data
  // max|x| ~ 2.3 sigma, so the step is ~2.3/127 (resp. 2.3/8) sigma and step/sqrt(12) is ~0.52%
  // (resp. ~8.3%).
  const RmseCase cases[] = {
      {GgmlType::F16, 2.4e-4}, {GgmlType::BF16, 1.9e-3}, {GgmlType::Q8_0, 6.0e-3},
      {GgmlType::Q8_K, 7.8e-3}, {GgmlType::Q6_K, 2.0e-2}, {GgmlType::Q5_K, 4.0e-2},
      {GgmlType::Q4_K, 8.0e-2}, {GgmlType::Q4_0, 9.5e-2},
  };
  const auto x = gaussian(64 * 4096, 2024);
  for (const RmseCase& c : cases) {
    const auto y = dequantize(c.type, quantize(c.type, x), x.size());
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
      ref += static_cast<double>(x[i]) * x[i];
    }
    const double rmse = std::sqrt(err / ref);
    std::printf("[ measure  ] %-5s relative RMSE %.5f%%\n", std::string(type_name(c.type)).c_str(), 100 * rmse);
    RecordProperty(std::string("rmse_") + std::string(type_name(c.type)), std::to_string(rmse));
    EXPECT_LT(rmse, c.max_relative_rmse) << type_name(c.type);
  }
}

}  // namespace
}  // namespace hearth::quant

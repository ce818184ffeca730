// Dot-product kernels and activation converters of kernels/dot.h (formats.md §2.7, §3.1).
// Every kernel is compared with the double-precision dot product of the dequantized weight row
// and the dequantized activation row: the same math, so only float rounding may differ.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/dot.h"
#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::kernels {
namespace {

using quant::GgmlType;
using quant::traits;

struct Row {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // the dequantized row
};

Row make_weight_row(GgmlType type, const std::vector<float>& x) {
  const quant::TypeTraits& t = traits(type);
  const auto n = static_cast<int64_t>(x.size());
  Row r{std::vector<uint8_t>(quant::row_size(type, n)), std::vector<float>(x.size())};
  t.from_float(x.data(), r.bytes.data(), n);
  t.to_float(r.bytes.data(), r.values.data(), n);
  return r;
}

Row make_activation_row(GgmlType act_type, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  const ActQuantizeFn quantize = act_quantize_fn(act_type);
  EXPECT_NE(quantize, nullptr) << quant::type_name(act_type);
  Row r{std::vector<uint8_t>(quant::row_size(act_type, n)), std::vector<float>(x.size())};
  quantize(x.data(), r.bytes.data(), n);
  traits(act_type).to_float(r.bytes.data(), r.values.data(), n);
  return r;
}

std::vector<float> random_row(size_t n, std::mt19937& rng, float sigma) {
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

TEST(VecDot, MatchesDoubleDotOfDequantizedRows) {
  // Q4_1 and Q5_1 take their min term from Q8_1's f16 sum s: see MinTypesUseTheActivationSum.
  const GgmlType weight_types[] = {GgmlType::F32,   GgmlType::F16,   GgmlType::BF16,  GgmlType::Q8_0,
                                   GgmlType::Q4_0,  GgmlType::Q4_K,  GgmlType::Q5_K,  GgmlType::Q6_K,
                                   GgmlType::Q5_0,  GgmlType::Q2_K,  GgmlType::Q3_K,  GgmlType::IQ4_NL,
                                   GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::MXFP4};
  std::mt19937 rng(5);
  for (GgmlType wt : weight_types) {
    const VecDotFn dot = vec_dot_fn(wt);
    ASSERT_NE(dot, nullptr) << quant::type_name(wt);
    const GgmlType at = traits(wt).vec_dot_type;
    for (int64_t n : {256, 4096, 11008}) {
      for (int trial = 0; trial < 5; ++trial) {
        // Activations with a mean offset so that the min terms of Q4_K/Q5_K matter.
        auto xa = random_row(n, rng, 2.0f);
        for (float& v : xa) v += 0.5f;
        const Row w = make_weight_row(wt, random_row(n, rng, 0.05f));
        const Row a = make_activation_row(at, xa);
        double want = 0, scale = 0;
        for (int64_t i = 0; i < n; ++i) {
          want += static_cast<double>(w.values[i]) * a.values[i];
          scale += std::fabs(static_cast<double>(w.values[i]) * a.values[i]);
        }
        const float got = dot(n, w.bytes.data(), a.bytes.data());
        EXPECT_NEAR(got, want, 1e-5 * scale)
            << quant::type_name(wt) << " x " << quant::type_name(at) << ", n = " << n << ", trial " << trial;
      }
    }
  }
}

TEST(VecDot, MinTypesUseTheActivationSum) {
  // Q4_1 / Q5_1 x Q8_1 (formats.md §2.7): per block (dw*da)*sum q*qa + m*s. Against the same
  // formula evaluated in double from the blocks: float rounding only. Against the double dot of
  // the dequantized rows: also the f16 rounding of s = f16(da*sum qa), at most
  // |m|*|da*sum qa|*2^-11 per block.
  std::mt19937 rng(6);
  for (GgmlType wt : {GgmlType::Q4_1, GgmlType::Q5_1}) {
    const VecDotFn dot = vec_dot_fn(wt);
    ASSERT_NE(dot, nullptr) << quant::type_name(wt);
    ASSERT_EQ(traits(wt).vec_dot_type, GgmlType::Q8_1);
    for (int64_t n : {256, 4096, 11008}) {
      for (int trial = 0; trial < 5; ++trial) {
        auto xa = random_row(n, rng, 2.0f);
        for (float& v : xa) v += 0.5f;
        auto xw = random_row(n, rng, 0.05f);
        for (float& v : xw) v += 0.03f;  // non-zero mins
        const Row w = make_weight_row(wt, xw);
        const Row a = make_activation_row(GgmlType::Q8_1, xa);
        const auto* ab = reinterpret_cast<const quant::block_q8_1*>(a.bytes.data());
        const size_t wbytes = traits(wt).type_size;
        double want_s = 0, want_plain = 0, scale = 0, s_slack = 0;
        for (int64_t b = 0; b < n / 32; ++b) {
          // d and m are the first two f16 fields of both Q4_1 and Q5_1 blocks.
          uint16_t dm[2];
          std::memcpy(dm, w.bytes.data() + b * wbytes, 4);
          const double m = quant::fp16_to_fp32(dm[1]);
          const double da = quant::fp16_to_fp32(ab[b].d);
          int qsum = 0;
          for (int j = 0; j < 32; ++j) {
            const int64_t i = 32 * b + j;
            const double wq = w.values[i] - m;  // q*dw up to the float rounding of the value
            want_s += wq * a.values[i];
            want_plain += static_cast<double>(w.values[i]) * a.values[i];
            scale += std::fabs(static_cast<double>(w.values[i]) * a.values[i]);
            qsum += ab[b].qs[j];
          }
          want_s += m * quant::fp16_to_fp32(ab[b].s);
          s_slack += std::fabs(m * da * qsum) * std::ldexp(1.0, -11);
        }
        const float got = dot(n, w.bytes.data(), a.bytes.data());
        EXPECT_NEAR(got, want_s, 1e-5 * scale) << quant::type_name(wt) << ", n = " << n << ", trial " << trial;
        EXPECT_NEAR(got, want_plain, 1e-5 * scale + s_slack)
            << quant::type_name(wt) << ", n = " << n << ", trial " << trial;
      }
    }
  }
}

TEST(VecDot, HandMadeQ4_1UsesS) {
  // Weights: d = 0.5, m = -1, every code 4 -> 1.0. Activations: d = 0.25, every code 2 -> 0.5,
  // but s deliberately 10 (not d*sum q = 16): the kernel must use s for the min term.
  quant::block_q4_1 w{};
  w.d = quant::fp32_to_fp16(0.5f);
  w.m = quant::fp32_to_fp16(-1.0f);
  std::memset(w.qs, 0x44, sizeof(w.qs));
  quant::block_q8_1 a{};
  a.d = quant::fp32_to_fp16(0.25f);
  a.s = quant::fp32_to_fp16(10.0f);
  std::memset(a.qs, 2, sizeof(a.qs));
  // (0.5*0.25)*(32*4*2) + (-1)*10 = 32 - 10 = 22 (with s = 16 it would be 16 = 32*1.0*0.5).
  EXPECT_EQ(vec_dot_fn(GgmlType::Q4_1)(32, &w, &a), 22.0f);
}

TEST(VecDot, HandMadeQ2_KUsesMinsWithBsums) {
  // d = 1, dmin = 0.5, every sub-block scale 2 and min 4, every code 3: weight 2*3 - 0.5*4 = 4.
  quant::block_q2_K w{};
  w.d = quant::fp32_to_fp16(1.0f);
  w.dmin = quant::fp32_to_fp16(0.5f);
  std::memset(w.scales, 0x42, sizeof(w.scales));
  std::memset(w.qs, 0xFF, sizeof(w.qs));
  quant::block_q8_K a{};
  a.d = 0.5f;
  std::memset(a.qs, 4, sizeof(a.qs));  // 2.0 each
  for (auto& s : a.bsums) s = 64;
  // isum = 16*2*(16*3*4) = 6144, summins = 16*4*64 = 4096: 0.5*6144 - 0.25*4096 = 2048 = 256*4*2.
  EXPECT_EQ(vec_dot_fn(GgmlType::Q2_K)(256, &w, &a), 2048.0f);
}

TEST(VecDot, HandMadeQ3_KUsesBsumsForTheOffset) {
  // Every scale 1 (stored 33), every code q2 = 1 without high bit -> q = 1 - 4 = -3; d = 2.
  quant::block_q3_K w{};
  w.d = quant::fp32_to_fp16(2.0f);
  for (int j = 0; j < 8; ++j) w.scales[j] = 0x11;  // low4 = 1 for all 16 sub-blocks
  for (int j = 8; j < 12; ++j) w.scales[j] = 0xAA;  // high2 = 2 for all: 1 | 32 = 33 -> 1
  std::memset(w.qs, 0x55, sizeof(w.qs));
  quant::block_q8_K a{};
  a.d = 0.25f;
  std::memset(a.qs, 8, sizeof(a.qs));  // 2.0 each
  for (auto& s : a.bsums) s = 128;
  // Each weight 2*1*(-3) = -6, each activation 2: 256*-12 = -3072.
  EXPECT_EQ(vec_dot_fn(GgmlType::Q3_K)(256, &w, &a), -3072.0f);
}

TEST(VecDot, HandMadeQ8_0) {
  quant::block_q8_0 w[2], a[2];
  for (int b = 0; b < 2; ++b) {
    w[b].d = quant::fp32_to_fp16(0.5f);
    a[b].d = quant::fp32_to_fp16(b == 0 ? 0.25f : -1.0f);
    for (int j = 0; j < 32; ++j) {
      w[b].qs[j] = static_cast<int8_t>(j - 16);
      a[b].qs[j] = 3;
    }
  }
  // Block 0: 0.5*0.25*3*sum(j-16) = 0.375*(-16) = -6; block 1: 0.5*-1*3*(-16) = 24.
  EXPECT_EQ(vec_dot_fn(GgmlType::Q8_0)(64, w, a), 18.0f);
}

TEST(VecDot, HandMadeQ4_KUsesMinsWithBsums) {
  // d = 1, dmin = 1, every sc_j = 1, m_j = 2, every code 3: every weight is 1*1*3 - 1*2 = 1.
  quant::block_q4_K w{};
  w.d = quant::fp32_to_fp16(1.0f);
  w.dmin = quant::fp32_to_fp16(1.0f);
  const uint8_t sc[8] = {1, 1, 1, 1, 1, 1, 1, 1}, m[8] = {2, 2, 2, 2, 2, 2, 2, 2};
  quant::pack_scale_min_k4(sc, m, w.scales);
  std::memset(w.qs, 0x33, sizeof(w.qs));
  // Activations: d = 0.5, every code 4 -> 2.0; bsums = 64.
  quant::block_q8_K a{};
  a.d = 0.5f;
  std::memset(a.qs, 4, sizeof(a.qs));
  for (auto& s : a.bsums) s = 64;
  // isum = 8*32*3*4 = 3072, summins = 8*2*128 = 2048: 0.5*3072 - 0.5*2048 = 512 = 256*1*2.
  EXPECT_EQ(vec_dot_fn(GgmlType::Q4_K)(256, &w, &a), 512.0f);
}

TEST(VecDot, MissingKernelsAreNull) {
  EXPECT_EQ(vec_dot_fn(GgmlType::NVFP4), nullptr);
  EXPECT_EQ(vec_dot_fn(GgmlType::Q1_0), nullptr);
  EXPECT_EQ(vec_dot_fn(GgmlType::Q8_1), nullptr);  // activation-only formats
  EXPECT_EQ(vec_dot_fn(GgmlType::Q8_K), nullptr);
  EXPECT_EQ(vec_dot_fn(static_cast<GgmlType>(4)), nullptr);
  EXPECT_EQ(vec_dot_fn(static_cast<GgmlType>(1000)), nullptr);
  EXPECT_EQ(act_quantize_fn(GgmlType::Q4_0), nullptr);
  EXPECT_EQ(act_quantize_fn(static_cast<GgmlType>(-1)), nullptr);
}

// ---- activation converters (formats.md §3.1) ----

TEST(ActQuantize, Q8_0RoundsHalvesToEven) {
  // max |x| = 127 -> d = 1 and the multiplier 127/127 = 1: q = nearbyint(x).
  std::vector<float> x(32, 0.0f);
  const float in[] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -0.5f, 2.4f};
  const int8_t act_want[] = {127, 2, 4, -2, -4, 0, 2, 0, 2};
  const int8_t file_want[] = {127, 3, 4, -3, -4, 1, 2, -1, 2};  // the file quantizer uses roundf
  std::copy(std::begin(in), std::end(in), x.begin());
  quant::block_q8_0 act, file;
  act_quantize_fn(GgmlType::Q8_0)(x.data(), &act, 32);
  quant::from_float_q8_0(x.data(), &file, 32);
  EXPECT_EQ(act.d, 0x3C00);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(act.qs[i], act_want[i]) << "activation x = " << in[i];
    EXPECT_EQ(file.qs[i], file_want[i]) << "file x = " << in[i];
  }
}

TEST(ActQuantize, Q8_0ScaleAndZeroBlock) {
  std::mt19937 rng(3);
  auto x = random_row(64, rng, 3.0f);
  std::fill(x.begin() + 32, x.end(), 0.0f);
  quant::block_q8_0 b[2];
  act_quantize_fn(GgmlType::Q8_0)(x.data(), b, 64);
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  EXPECT_EQ(b[0].d, quant::fp32_to_fp16(amax / 127));
  for (int j = 0; j < 32; ++j) {
    EXPECT_EQ(b[0].qs[j], static_cast<int>(std::nearbyint(x[j] * (127 / amax))));
    EXPECT_EQ(b[1].qs[j], 0);
  }
  EXPECT_EQ(b[1].d, 0);
}

TEST(ActQuantize, Q8_1IsQ8_0PlusTheScaledSum) {
  std::mt19937 rng(9);
  auto x = random_row(96, rng, 1.5f);
  std::fill(x.begin() + 64, x.end(), 0.0f);
  x[3] = 2.5f * (127 / 3.0f);  // irrelevant magnitudes; just more data
  quant::block_q8_0 b0[3];
  quant::block_q8_1 b1[3];
  act_quantize_fn(GgmlType::Q8_0)(x.data(), b0, 96);
  act_quantize_fn(GgmlType::Q8_1)(x.data(), b1, 96);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(b1[i].d, b0[i].d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      EXPECT_EQ(b1[i].qs[j], b0[i].qs[j]);
      sum += b1[i].qs[j];
    }
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * i + j]));
    EXPECT_EQ(b1[i].s, quant::fp32_to_fp16(amax / 127 * static_cast<float>(sum))) << "block " << i;
  }
  EXPECT_EQ(b1[2].d, 0);
  EXPECT_EQ(b1[2].s, 0);
}

TEST(ActQuantize, OtherFormatsEqualTheFileConverters) {
  std::mt19937 rng(8);
  const auto x = random_row(512, rng, 1.0f);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_K}) {
    std::vector<uint8_t> act(quant::row_size(t, 512)), file(act.size());
    act_quantize_fn(t)(x.data(), act.data(), 512);
    traits(t).from_float(x.data(), file.data(), 512);
    EXPECT_EQ(act, file) << quant::type_name(t);
  }
}

}  // namespace
}  // namespace hearth::kernels

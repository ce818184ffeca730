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
  const GgmlType weight_types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                   GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
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
  EXPECT_EQ(vec_dot_fn(GgmlType::Q2_K), nullptr);
  EXPECT_EQ(vec_dot_fn(GgmlType::IQ4_XS), nullptr);
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

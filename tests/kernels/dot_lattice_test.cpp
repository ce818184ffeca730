// Lattice i-quant x Q8_K dot products (kernels/dot_lattice.h through kernels/dot.h;
// formats.md §2.5, §2.7) against the double-precision dot product of the dequantized weight row
// (quant/convert_lattice.h) and the dequantized Q8_K activation row, on random blocks (random
// bytes for every field, finite f16 scales). Only float rounding may differ: the kernels sum
// exact integers per 256-block and combine blocks in f32, so the tolerance is
// 1e-5 * sum |w_i * a_i| (a few f32 ulps of the largest partial sums).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/dot.h"
#include "kernels/dot_lattice.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::kernels {
namespace {

using quant::GgmlType;
using quant::traits;

/// Random row of n/256 blocks of `type`: random bytes, then finite f16 scales.
std::vector<uint8_t> random_weight_row(GgmlType type, int64_t n, std::mt19937& rng) {
  const size_t bs = traits(type).type_size;
  std::vector<uint8_t> bytes(quant::row_size(type, n));
  for (auto& v : bytes) v = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> exponent(-8.0f, 1.0f);
  for (size_t off = 0; off < bytes.size(); off += bs) {
    const uint16_t d = quant::fp32_to_fp16(std::exp2(exponent(rng)) * (rng() & 1 ? -1.0f : 1.0f));
    if (type == GgmlType::IQ1_M) {  // d = top nibbles of the four u16 scale words at [48:56]
      for (int j = 0; j < 4; ++j)
        bytes[off + 48 + 2 * j + 1] =
            static_cast<uint8_t>((bytes[off + 48 + 2 * j + 1] & 0x0F) | ((d >> (4 * j)) & 0xF) << 4);
    } else {  // d is the first field
      bytes[off] = d & 0xFF;
      bytes[off + 1] = d >> 8;
    }
  }
  return bytes;
}

TEST(VecDotLattice, MatchesDoubleDotOfDequantizedRows) {
  const GgmlType types[] = {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS,
                            GgmlType::IQ3_S,   GgmlType::IQ1_S,  GgmlType::IQ1_M};
  std::mt19937 rng(77);
  for (GgmlType wt : types) {
    ASSERT_EQ(traits(wt).vec_dot_type, GgmlType::Q8_K) << quant::type_name(wt);
    const VecDotFn dot = vec_dot_fn(wt);
    ASSERT_NE(dot, nullptr) << quant::type_name(wt);
    const ActQuantizeFn act = act_quantize_fn(GgmlType::Q8_K);
    ASSERT_NE(act, nullptr);
    for (int64_t n : {256, 4096, 11008}) {
      for (int trial = 0; trial < 5; ++trial) {
        const auto w = random_weight_row(wt, n, rng);
        std::vector<float> wf(n);
        traits(wt).to_float(w.data(), wf.data(), n);
        // Activations with a mean offset so that the IQ1 delta terms (taken from bsums) matter.
        std::normal_distribution<float> dist(0.5f, 2.0f);
        std::vector<float> x(n);
        for (float& v : x) v = dist(rng);
        std::vector<uint8_t> a(quant::row_size(GgmlType::Q8_K, n));
        act(x.data(), a.data(), n);
        std::vector<float> af(n);
        traits(GgmlType::Q8_K).to_float(a.data(), af.data(), n);
        double want = 0, scale = 0;
        for (int64_t i = 0; i < n; ++i) {
          want += static_cast<double>(wf[i]) * af[i];
          scale += std::fabs(static_cast<double>(wf[i]) * af[i]);
        }
        const float got = dot(n, w.data(), a.data());
        EXPECT_NEAR(got, want, 1e-5 * scale) << quant::type_name(wt) << ", n = " << n << ", trial " << trial;
        // The scalar reference itself (the table entry may be a SIMD kernel on some paths).
        const float got_scalar = vec_dot_fn(wt, CpuPath::scalar)(n, w.data(), a.data());
        EXPECT_NEAR(got_scalar, want, 1e-5 * scale) << quant::type_name(wt) << " (scalar), n = " << n;
      }
    }
  }
}

}  // namespace
}  // namespace hearth::kernels

// SIMD kernels (kernels/dot_avx.h) against the scalar reference (kernels/dot_scalar.h), for
// every CPU path this machine runs, and the HEARTH_CPU override (kernels/cpu.h).
//
// Tolerance of the dot products: |simd - scalar| <= 1e-4 * sum_i |w_i * a_i| (w, a: the
// dequantized rows). The kernels differ only in the order of the float additions: the F32,
// F16 and BF16 kernels sum in f32 vector lanes (at least 32 partial sums) where the reference
// sums in double, and the Q8_0/Q4_0 kernels add the exact per-block integer sums, scaled, in
// f32 lanes where the reference adds them one by one (so do Q4_1, Q5_0, Q5_1, IQ4_NL and
// MXFP4, whose Q4_1/Q5_1 min terms m*s are added in four f32 partial sums). For rows of
// <= 16384 elements the worst-case error of such sums is (n/32 + 8) * 2^-24 * sum|terms|
// < 1e-4 * sum|w*a|.
// The kernels of the 256-element super-block types (Q2_K..Q6_K, IQ4_XS, TQ1_0, TQ2_0) are
// tighter still: bit-identical (exact super-block integer sums, combined in the reference's
// order), which SuperBlockDotsAreBitIdentical checks. ExtremeCodesAreExact checks every kernel on
// rows of the largest codes and scales, whose dot products are exact in f32 (no int16
// saturation anywhere).
// Activation converters must be byte-identical to the scalar ones.
//
// This file is also compiled into test_model with HEARTH_CPU_GUARD_ONLY (tests/CMakeLists.txt)
// for the guard below: when HEARTH_CPU names a path this CPU cannot run, every test of the
// program is skipped (GTEST_SKIP, with the reason) instead of failing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "hearth/error.h"
#include "kernels/cpu.h"
#include "kernels/dot.h"
#include "kernels/dot_avx.h"
#include "kernels/dot_scalar.h"
#include "quant/blocks.h"
#include "quant/blocks_iq.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::kernels {

/// gtest prints CpuPath parameters by name (found by argument-dependent lookup).
inline void PrintTo(CpuPath p, std::ostream* os) { *os << cpu_path_name(p); }

namespace {

// ---- HEARTH_CPU guard (test_kernels and test_model) ----

/// Skips every test of the program when HEARTH_CPU names a kernel path this CPU lacks (CI runs
/// the kernel and conformance tests once per path, on whatever machine it has).
class CpuPathGuard : public testing::Environment {
 public:
  void SetUp() override {
    const char* env = std::getenv("HEARTH_CPU");
    if (env == nullptr) return;
    const std::optional<CpuPath> path = parse_cpu_path(env);
    if (path && !cpu_supports(*path))
      GTEST_SKIP() << "kernel path unavailable: HEARTH_CPU=" << env << ", but this CPU cannot run the "
                   << cpu_path_name(*path) << " kernels (it has: " << cpu_feature_names(cpu_features()) << ")";
  }
};

[[maybe_unused]] testing::Environment* const kCpuPathGuard = testing::AddGlobalTestEnvironment(new CpuPathGuard);

}  // namespace
}  // namespace hearth::kernels

#ifndef HEARTH_CPU_GUARD_ONLY

namespace hearth::kernels {
namespace {

using quant::GgmlType;
using quant::traits;

constexpr double kRelTol = 1e-4;

const GgmlType kWeightTypes[] = {GgmlType::F32,    GgmlType::F16,  GgmlType::BF16,  GgmlType::Q8_0,  GgmlType::Q4_0,
                                 GgmlType::Q4_1,   GgmlType::Q5_0, GgmlType::Q5_1,  GgmlType::IQ4_NL, GgmlType::MXFP4,
                                 GgmlType::Q2_K,   GgmlType::Q3_K, GgmlType::Q4_K,  GgmlType::Q5_K,  GgmlType::Q6_K,
                                 GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0,
                                 // Lattice i-quants.
                                 GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS,
                                 GgmlType::IQ3_S, GgmlType::IQ1_S, GgmlType::IQ1_M};

/// The quantized weight types whose partner is Q8_K (256-element super-blocks): their SIMD
/// kernels are bit-identical to the scalar ones.
bool is_super_block(GgmlType t) { return traits(t).is_quantized && traits(t).vec_dot_type == GgmlType::Q8_K; }

/// Activation formats with SIMD converters.
const GgmlType kActTypes[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K};

/// Sets the scale fields (f16 d, and m / dmin where the type has one, MXFP4's exponent e) of
/// block i of a weight row of type t to `d` (for MXFP4: to the E8M0 exponent `e`); returns
/// false for a type without such a layout here.
bool set_block_scales(GgmlType t, uint8_t* row, int64_t i, uint16_t d, uint16_t dmin, uint8_t e) {
  switch (t) {
    case GgmlType::Q8_0:
      reinterpret_cast<quant::block_q8_0*>(row)[i].d = d;
      return true;
    case GgmlType::Q4_0:
      reinterpret_cast<quant::block_q4_0*>(row)[i].d = d;
      return true;
    case GgmlType::Q4_1: {
      auto& b = reinterpret_cast<quant::block_q4_1*>(row)[i];
      b.d = d;
      b.m = dmin;
      return true;
    }
    case GgmlType::Q5_0:
      reinterpret_cast<quant::block_q5_0*>(row)[i].d = d;
      return true;
    case GgmlType::Q5_1: {
      auto& b = reinterpret_cast<quant::block_q5_1*>(row)[i];
      b.d = d;
      b.m = dmin;
      return true;
    }
    case GgmlType::IQ4_NL:
      reinterpret_cast<quant::block_iq4_nl*>(row)[i].d = d;
      return true;
    case GgmlType::MXFP4:
      reinterpret_cast<quant::block_mxfp4*>(row)[i].e = e;
      return true;
    case GgmlType::Q2_K: {
      auto& b = reinterpret_cast<quant::block_q2_K*>(row)[i];
      b.d = d;
      b.dmin = dmin;
      return true;
    }
    case GgmlType::Q3_K:
      reinterpret_cast<quant::block_q3_K*>(row)[i].d = d;
      return true;
    case GgmlType::Q4_K: {
      auto& b = reinterpret_cast<quant::block_q4_K*>(row)[i];
      b.d = d;
      b.dmin = dmin;
      return true;
    }
    case GgmlType::Q5_K: {
      auto& b = reinterpret_cast<quant::block_q5_K*>(row)[i];
      b.d = d;
      b.dmin = dmin;
      return true;
    }
    case GgmlType::Q6_K:
      reinterpret_cast<quant::block_q6_K*>(row)[i].d = d;
      return true;
    case GgmlType::IQ4_XS:
      reinterpret_cast<quant::block_iq4_xs*>(row)[i].d = d;
      return true;
    case GgmlType::TQ1_0:
      reinterpret_cast<quant::block_tq1_0*>(row)[i].d = d;
      return true;
    case GgmlType::TQ2_0:
      reinterpret_cast<quant::block_tq2_0*>(row)[i].d = d;
      return true;
    case GgmlType::IQ2_XXS:
      reinterpret_cast<quant::block_iq2_xxs*>(row)[i].d = d;
      return true;
    case GgmlType::IQ2_XS:
      reinterpret_cast<quant::block_iq2_xs*>(row)[i].d = d;
      return true;
    case GgmlType::IQ2_S:
      reinterpret_cast<quant::block_iq2_s*>(row)[i].d = d;
      return true;
    case GgmlType::IQ3_XXS:
      reinterpret_cast<quant::block_iq3_xxs*>(row)[i].d = d;
      return true;
    case GgmlType::IQ3_S:
      reinterpret_cast<quant::block_iq3_s*>(row)[i].d = d;
      return true;
    case GgmlType::IQ1_S:
      reinterpret_cast<quant::block_iq1_s*>(row)[i].d = d;
      return true;
    case GgmlType::IQ1_M: {
      // d is stored in the top nibbles of the four u16 scale words (quant::iq1_m_d_bits).
      uint8_t* sc = reinterpret_cast<quant::block_iq1_m*>(row)[i].scales;
      for (int k = 0; k < 4; ++k)
        sc[2 * k + 1] = static_cast<uint8_t>((sc[2 * k + 1] & 0x0F) | ((d >> (4 * k)) & 0x0F) << 4);
      return true;
    }
    default:
      return false;
  }
}

/// Row lengths to try: several block counts, odd ones included (the kernels handle blocks in
/// pairs or fours), and for the float types lengths that leave every kind of tail.
std::vector<int64_t> lengths(GgmlType t) {
  switch (traits(t).blck_size) {
    case 1:
      return {1, 3, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 4096, 4099, 11008};
    case 32:
      return {32, 64, 96, 128, 160, 224, 4096, 4128, 11008};
    default:
      return {256, 512, 768, 1024, 1280, 4096, 11008};
  }
}

std::vector<float> random_row(int64_t n, std::mt19937& rng, float sigma, float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(rng);
  return x;
}

/// Weight row of type t: either quantized from Gaussian values, or (random_codes) random bytes
/// with sane scale fields, so that every code (-128 in Q8_0, all 6-bit scales, every IQ4_XS
/// scale, TQ1_0 bytes above 242, ...) occurs.
std::vector<uint8_t> weight_row(GgmlType t, int64_t n, std::mt19937& rng, float sigma, bool random_codes) {
  std::vector<uint8_t> bytes(quant::row_size(t, n));
  if (!random_codes || !traits(t).is_quantized) {
    const std::vector<float> x = random_row(n, rng, sigma);
    traits(t).from_float(x.data(), bytes.data(), n);
    return bytes;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.1f * sigma, sigma);
  const auto f16 = [&] { return quant::fp32_to_fp16(scale(rng) / 16); };
  // MXFP4: 2^(e-127) around sigma/4 (the largest FP4 value is 6), give or take a factor of 8.
  const int e_mid = 127 + static_cast<int>(std::lround(std::log2(sigma / 4)));
  std::uniform_int_distribution<int> exponent(e_mid - 3, e_mid + 3);
  const int64_t nb = n / traits(t).blck_size;
  for (int64_t i = 0; i < nb; ++i) {
    const uint16_t d = f16(), dmin = f16();
    if (!set_block_scales(t, bytes.data(), i, d, dmin, static_cast<uint8_t>(exponent(rng)))) {
      ADD_FAILURE() << "no random-code layout for " << quant::type_name(t);
      break;
    }
  }
  return bytes;
}

std::vector<float> dequantize(GgmlType t, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  traits(t).to_float(bytes.data(), v.data(), n);
  return v;
}

std::string where(GgmlType t, CpuPath p, int64_t n, const char* kind, int trial) {
  return std::string(quant::type_name(t)) + " on " + cpu_path_name(p) + ", n = " + std::to_string(n) + ", " + kind +
         ", trial " + std::to_string(trial);
}

/// Runs `check(t, n, w, a, what)` over random weight/activation rows of every length and
/// several scales; the activations come from the scalar converter (a row every kernel reads).
template <class Check>
void for_random_rows(GgmlType t, CpuPath p, Check check) {
  const GgmlType at = traits(t).vec_dot_type;
  const ActQuantizeFn act = act_quantize_fn(at, CpuPath::scalar);
  std::mt19937 rng(1234 + static_cast<int>(t));
  int trial = 0;
  for (int64_t n : lengths(t)) {
    for (const float sigma : {1e-3f, 0.05f, 30.0f}) {
      for (const bool random_codes : {false, true}) {
        if (random_codes && !traits(t).is_quantized) continue;
        const std::vector<uint8_t> w = weight_row(t, n, rng, sigma, random_codes);
        // Activations with a mean offset, so that the Q4_K/Q5_K mins and Q6_K's offset matter.
        const std::vector<float> x = random_row(n, rng, 2.0f * sigma, 0.5f * sigma);
        std::vector<uint8_t> a(quant::row_size(at, n));
        act(x.data(), a.data(), n);
        check(n, w, a, where(t, p, n, random_codes ? "random codes" : "quantized", trial++));
      }
    }
  }
}

std::vector<CpuPath> simd_paths() { return {CpuPath::avx2, CpuPath::avx512}; }

std::string path_param_name(const testing::TestParamInfo<CpuPath>& info) { return cpu_path_name(info.param); }

class SimdPath : public testing::TestWithParam<CpuPath> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam()))
      GTEST_SKIP() << "this CPU cannot run the " << cpu_path_name(GetParam())
                   << " kernels (it has: " << cpu_feature_names(cpu_features()) << ")";
  }
};

TEST_P(SimdPath, EveryTypeHasItsOwnKernel) {
  for (GgmlType t : kWeightTypes) {
    const VecDotFn simd = vec_dot_fn(t, GetParam());
    ASSERT_NE(simd, nullptr) << quant::type_name(t);
    EXPECT_NE(simd, vec_dot_fn(t, CpuPath::scalar)) << quant::type_name(t) << " falls back to scalar";
  }
  for (GgmlType at : kActTypes)
    EXPECT_NE(act_quantize_fn(at, GetParam()), act_quantize_fn(at, CpuPath::scalar)) << quant::type_name(at);
}

TEST_P(SimdPath, DotProductsMatchScalar) {
  const CpuPath path = GetParam();
  for (GgmlType t : kWeightTypes) {
    const VecDotFn simd = vec_dot_fn(t, path);
    const VecDotFn ref = vec_dot_fn(t, CpuPath::scalar);
    const GgmlType at = traits(t).vec_dot_type;
    for_random_rows(t, path, [&](int64_t n, const std::vector<uint8_t>& w, const std::vector<uint8_t>& a,
                                 const std::string& what) {
      const std::vector<float> wv = dequantize(t, w, n);
      const std::vector<float> av = dequantize(at, a, n);
      double abs_sum = 0;
      for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(static_cast<double>(wv[i]) * av[i]);
      const float want = ref(n, w.data(), a.data());
      const float got = simd(n, w.data(), a.data());
      ASSERT_TRUE(std::isfinite(got)) << what;
      EXPECT_NEAR(got, want, kRelTol * abs_sum) << what;
    });
  }
}

TEST_P(SimdPath, SuperBlockDotsAreBitIdentical) {
  const CpuPath path = GetParam();
  for (GgmlType t : kWeightTypes) {
    if (!is_super_block(t)) continue;
    const VecDotFn simd = vec_dot_fn(t, path);
    const VecDotFn ref = vec_dot_fn(t, CpuPath::scalar);
    for_random_rows(t, path, [&](int64_t n, const std::vector<uint8_t>& w, const std::vector<uint8_t>& a,
                                 const std::string& what) {
      EXPECT_EQ(simd(n, w.data(), a.data()), ref(n, w.data(), a.data())) << what;
    });
  }
}

#if defined(__x86_64__)
TEST_P(SimdPath, Bf16KernelsWithAndWithoutAvx512Bf16MatchScalar) {
  // The avx512 path has two BF16 kernels: VDPBF16PS where the CPU has AVX512_BF16, shifts and
  // FMA elsewhere; vec_dot_fn hands out only one of them, so both are checked here.
  if (GetParam() != CpuPath::avx512) GTEST_SKIP() << "only the avx512 path has two BF16 kernels";
  std::vector<std::pair<const char*, VecDotFn>> kernels = {{"avx512f", avx512::vec_dot_bf16}};
  if (cpu_features().avx512_bf16) kernels.emplace_back("avx512_bf16", avx512::vec_dot_bf16_dpbf16);
  for (const auto& [name, fn] : kernels) {
    for_random_rows(GgmlType::BF16, GetParam(), [&](int64_t n, const std::vector<uint8_t>& w,
                                                    const std::vector<uint8_t>& a, const std::string& what) {
      const std::vector<float> wv = dequantize(GgmlType::BF16, w, n);
      const std::vector<float> av = dequantize(GgmlType::BF16, a, n);
      double abs_sum = 0;
      for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(static_cast<double>(wv[i]) * av[i]);
      EXPECT_NEAR(fn(n, w.data(), a.data()), scalar::vec_dot_bf16(n, w.data(), a.data()), kRelTol * abs_sum)
          << name << ": " << what;
    });
  }
}
#endif

TEST_P(SimdPath, HandMadeDotsAreExact) {
  // Q8_0 with the -128 weight code and every sign combination: w = j - 128 + 4b (so -128..-97
  // and up), a = 127 - 2j: exact in f32.
  quant::block_q8_0 w[3], a[3];
  double want = 0;
  for (int b = 0; b < 3; ++b) {
    w[b].d = quant::fp32_to_fp16(0.5f);
    a[b].d = quant::fp32_to_fp16(b == 1 ? -0.25f : 0.125f);
    int32_t isum = 0;
    for (int j = 0; j < 32; ++j) {
      w[b].qs[j] = static_cast<int8_t>(b == 2 ? 127 - j : j - 128 + 4 * b);
      a[b].qs[j] = static_cast<int8_t>(127 - 2 * j - b);
      isum += w[b].qs[j] * a[b].qs[j];
    }
    want += 0.5 * (b == 1 ? -0.25 : 0.125) * isum;
  }
  EXPECT_EQ(vec_dot_fn(GgmlType::Q8_0, GetParam())(96, w, a), static_cast<float>(want));
}

/// An activation row of n elements in format at (Q8_0, Q8_1 or Q8_K) with scale d (exact in
/// f16 for Q8_0/Q8_1) and codes code(e) in [-127, 127]; Q8_1's s and Q8_K's bsums consistent.
template <class Code>
std::vector<uint8_t> activation_row(GgmlType at, int64_t n, float d, Code code) {
  std::vector<uint8_t> bytes(quant::row_size(at, n));
  if (at == GgmlType::Q8_K) {
    auto* b = reinterpret_cast<quant::block_q8_K*>(bytes.data());
    for (int64_t i = 0; i < n / 256; ++i) {
      b[i].d = d;
      for (int s = 0; s < 16; ++s) {
        int sum = 0;
        for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * s + l] = static_cast<int8_t>(code(256 * i + 16 * s + l));
        b[i].bsums[s] = static_cast<int16_t>(sum);
      }
    }
  } else if (at == GgmlType::Q8_1) {
    auto* b = reinterpret_cast<quant::block_q8_1*>(bytes.data());
    for (int64_t i = 0; i < n / 32; ++i) {
      b[i].d = quant::fp32_to_fp16(d);
      int sum = 0;
      for (int j = 0; j < 32; ++j) sum += b[i].qs[j] = static_cast<int8_t>(code(32 * i + j));
      b[i].s = quant::fp32_to_fp16(d * static_cast<float>(sum));
    }
  } else {
    EXPECT_EQ(at, GgmlType::Q8_0);
    auto* b = reinterpret_cast<quant::block_q8_0*>(bytes.data());
    for (int64_t i = 0; i < n / 32; ++i) {
      b[i].d = quant::fp32_to_fp16(d);
      for (int j = 0; j < 32; ++j) b[i].qs[j] = static_cast<int8_t>(code(32 * i + j));
    }
  }
  return bytes;
}

/// sum_i w[i]*a[i] in double over the dequantized rows.
double dequantized_dot(GgmlType t, const std::vector<uint8_t>& w, const std::vector<uint8_t>& a, int64_t n,
                       double* abs_sum) {
  const std::vector<float> wv = dequantize(t, w, n);
  const std::vector<float> av = dequantize(traits(t).vec_dot_type, a, n);
  double sum = 0;
  *abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += static_cast<double>(wv[i]) * av[i];
    *abs_sum += std::fabs(static_cast<double>(wv[i]) * av[i]);
  }
  return sum;
}

TEST_P(SimdPath, ExtremeCodesAreExact) {
  // Weights of uniform bytes 0x00 / 0xFF (every code and scale field at one end of its range:
  // Q3_K codes -4 with scale -32, IQ4_XS K[0] = -127 with scale -32, TQ1_0 bytes of trits 2, ...)
  // and mixed patterns, scales 1; activations of codes +-127 with scale 1. The 32-element block
  // types then have dot products that are exact in f32 in any summation order; the super-block
  // kernels are bit-identical to the reference anyway. Both must also equal the dot product of
  // the dequantized rows (up to the f32 rounding of the super-block sums).
  const CpuPath path = GetParam();
  const uint16_t one = quant::fp32_to_fp16(1.0f);
  const std::function<int(int64_t)> act_codes[] = {
      [](int64_t) { return 127; },
      [](int64_t) { return -127; },
      [](int64_t e) { return e % 2 ? -127 : 127; },
      [](int64_t e) { return e % 3 == 0 ? -127 : e % 3 == 1 ? 127 : 0; },
  };
  for (GgmlType t : kWeightTypes) {
    if (!traits(t).is_quantized) continue;
    // Seven 32-element blocks (the kernels take four at a time, then one by one) or three
    // super-blocks.
    const int64_t n = traits(t).blck_size == 32 ? 7 * 32 : 3 * 256;
    for (const uint8_t fill : {0x00, 0xFF, 0x0F, 0xF0, 0x55, 0xAA}) {
      std::vector<uint8_t> w(quant::row_size(t, n), fill);
      for (int64_t i = 0; i < n / traits(t).blck_size; ++i)
        ASSERT_TRUE(set_block_scales(t, w.data(), i, one, one, 128));
      for (size_t c = 0; c < std::size(act_codes); ++c) {
        const std::vector<uint8_t> a = activation_row(traits(t).vec_dot_type, n, 1.0f, act_codes[c]);
        const std::string what = std::string(quant::type_name(t)) + " on " + cpu_path_name(path) + ", bytes " +
                                 std::to_string(fill) + ", activation pattern " + std::to_string(c);
        const float want = vec_dot_fn(t, CpuPath::scalar)(n, w.data(), a.data());
        EXPECT_EQ(vec_dot_fn(t, path)(n, w.data(), a.data()), want) << what;
        double abs_sum;
        const double exact = dequantized_dot(t, w, a, n, &abs_sum);
        EXPECT_NEAR(want, exact, 1e-6 * abs_sum) << what;
      }
    }
  }
}

TEST_P(SimdPath, Mxfp4EveryExponentIsExact) {
  // Every E8M0 exponent, the subnormal scales 2^-128 and 2^-127 (e = 0, 1) included, on random
  // codes; the activation scale is a power of two (1024 for e < 128, 2^-16 above), so every
  // product and sum is exact in f32 and equals the exact dot product.
  const CpuPath path = GetParam();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), code(-127, 127);
  constexpr int64_t n = 64;
  for (int e = 0; e < 256; ++e) {
    std::vector<uint8_t> w(quant::row_size(GgmlType::MXFP4, n));
    for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
    for (int64_t i = 0; i < n / 32; ++i) set_block_scales(GgmlType::MXFP4, w.data(), i, 0, 0, static_cast<uint8_t>(e));
    const std::vector<uint8_t> a =
        activation_row(GgmlType::Q8_0, n, e < 128 ? 1024.0f : 1.0f / 65536, [&](int64_t) { return code(rng); });
    // Computed here rather than from the dequantized row, whose values overflow f32 for e >= 254.
    double sum = 0;
    for (int64_t i = 0; i < n / 32; ++i) {
      const auto& wb = reinterpret_cast<const quant::block_mxfp4*>(w.data())[i];
      const auto& ab = reinterpret_cast<const quant::block_q8_0*>(a.data())[i];
      const double scale = std::ldexp(1.0, e - 128) * quant::fp16_to_fp32(ab.d);
      for (int j = 0; j < 16; ++j)
        sum += scale * (quant::kValuesMxfp4x2[wb.qs[j] & 0x0F] * ab.qs[j] +
                        quant::kValuesMxfp4x2[wb.qs[j] >> 4] * ab.qs[j + 16]);
    }
    const auto exact = static_cast<float>(sum);
    EXPECT_EQ(vec_dot_fn(GgmlType::MXFP4, CpuPath::scalar)(n, w.data(), a.data()), exact) << "e = " << e;
    EXPECT_EQ(vec_dot_fn(GgmlType::MXFP4, path)(n, w.data(), a.data()), exact)
        << "e = " << e << " on " << cpu_path_name(path);
  }
}

TEST_P(SimdPath, ActivationConvertersAreByteIdentical) {
  const CpuPath path = GetParam();
  std::mt19937 rng(99);
  for (GgmlType at : kActTypes) {
    const ActQuantizeFn simd = act_quantize_fn(at, path);
    const ActQuantizeFn ref = act_quantize_fn(at, CpuPath::scalar);
    const int64_t blck = traits(at).blck_size;
    std::vector<std::vector<float>> rows;
    for (int64_t n : {blck, 2 * blck, 3 * blck, 7 * blck, int64_t{4096}, int64_t{11008}})
      for (const float sigma : {1e-6f, 1.0f, 1e4f}) rows.push_back(random_row(n, rng, sigma, sigma / 4));
    if (blck == 1)
      for (int64_t n : {1, 5, 9, 17, 33}) rows.push_back(random_row(n, rng, 1.0f));
    // Ties of the rounding (x*127/amax = k + 1/2 exactly: amax = 127, x = k + 0.5), the
    // maximum first, last, repeated with both signs, all-zero and tiny (subnormal) blocks.
    {
      const int64_t n = 4 * std::max<int64_t>(blck, 32);
      std::vector<float> r(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) r[i] = static_cast<float>((i % 40) - 20) + 0.5f;
      for (int64_t i = 0; i < n; i += 32) r[i + 31] = 127.0f;
      rows.push_back(r);
      std::vector<float> ties = r;
      for (int64_t i = 0; i < n; i += 32) ties[i] = -127.0f;  // -max first, +max later
      rows.push_back(ties);
      rows.push_back(std::vector<float>(static_cast<size_t>(n), 0.0f));
      std::vector<float> tiny = random_row(n, rng, 1e-39f);  // subnormal maxima: infinite 127/amax
      rows.push_back(tiny);
      std::vector<float> mixed = random_row(n, rng, 3.0f);
      for (int64_t i = 0; i < n / 2; ++i) mixed[i] = 0.0f;  // a zero block next to normal ones
      rows.push_back(mixed);
    }
    if (at == GgmlType::F16 || at == GgmlType::BF16) {
      // Specials: overflow, infinities, NaN, subnormal results, rounding ties of both formats.
      std::vector<float> s = {65504.0f, 65519.0f, 65520.0f, 1e9f, -1e9f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                              1e-8f, -3e-7f, 6e-8f, 2.98e-8f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
                              1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1e-40f, -0.0f, 3.4e38f, 1.17e-38f};
      s.resize(48, 0.25f);
      rows.push_back(s);
    }
    for (const std::vector<float>& x : rows) {
      const auto n = static_cast<int64_t>(x.size());
      std::vector<uint8_t> want(quant::row_size(at, n), 0xAA), got(quant::row_size(at, n), 0x55);
      ref(x.data(), want.data(), n);
      simd(x.data(), got.data(), n);
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size()))
          << quant::type_name(at) << " on " << cpu_path_name(path) << ", n = " << n << ", x[0] = " << x[0];
    }
    if (blck > 1) {
      std::vector<float> x(static_cast<size_t>(blck + 1), 1.0f);
      std::vector<uint8_t> y(quant::row_size(at, 2 * blck));
      EXPECT_THROW(simd(x.data(), y.data(), blck + 1), Error) << quant::type_name(at);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CpuPaths, SimdPath, testing::ValuesIn(simd_paths()), path_param_name);

// ---- CPU features and HEARTH_CPU ----

CpuFeatures avx2_cpu() {
  CpuFeatures f;
  f.avx = f.avx2 = f.fma = f.f16c = f.os_ymm = true;
  return f;
}

CpuFeatures avx512_cpu() {
  CpuFeatures f = avx2_cpu();
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512_vnni = f.os_zmm = true;
  return f;
}

TEST(CpuPath, NamesRoundTrip) {
  for (int i = 0; i < kCpuPathCount; ++i) {
    const auto p = static_cast<CpuPath>(i);
    EXPECT_EQ(parse_cpu_path(cpu_path_name(p)), p);
  }
  EXPECT_EQ(parse_cpu_path("AVX2"), std::nullopt);
  EXPECT_EQ(parse_cpu_path("avx"), std::nullopt);
  EXPECT_EQ(parse_cpu_path(""), std::nullopt);
}

TEST(CpuPath, BestPathNeedsEveryFeatureAndTheOsState) {
  EXPECT_EQ(best_cpu_path(CpuFeatures{}), CpuPath::scalar);
  EXPECT_EQ(best_cpu_path(avx2_cpu()), CpuPath::avx2);
  EXPECT_EQ(best_cpu_path(avx512_cpu()), CpuPath::avx512);
  CpuFeatures no_f16c = avx2_cpu();
  no_f16c.f16c = false;
  EXPECT_EQ(best_cpu_path(no_f16c), CpuPath::scalar);
  CpuFeatures no_ymm_state = avx512_cpu();
  no_ymm_state.os_ymm = false;
  EXPECT_EQ(best_cpu_path(no_ymm_state), CpuPath::scalar);
  CpuFeatures no_zmm_state = avx512_cpu();
  no_zmm_state.os_zmm = false;  // e.g. an OS that leaves AVX-512 disabled
  EXPECT_EQ(best_cpu_path(no_zmm_state), CpuPath::avx2);
  CpuFeatures no_vnni = avx512_cpu();  // Skylake-X
  no_vnni.avx512_vnni = false;
  EXPECT_EQ(best_cpu_path(no_vnni), CpuPath::avx2);
}

TEST(CpuPath, SelectHonoursHearthCpu) {
  EXPECT_EQ(select_cpu_path(nullptr, avx512_cpu()), CpuPath::avx512);
  EXPECT_EQ(select_cpu_path("", avx2_cpu()), CpuPath::avx2);
  EXPECT_EQ(select_cpu_path("scalar", CpuFeatures{}), CpuPath::scalar);
  EXPECT_EQ(select_cpu_path("scalar", avx512_cpu()), CpuPath::scalar);
  EXPECT_EQ(select_cpu_path("avx2", avx512_cpu()), CpuPath::avx2);
  EXPECT_EQ(select_cpu_path("avx512", avx512_cpu()), CpuPath::avx512);
}

/// The message of the hearth::Error that select_cpu_path throws ("" if none).
std::string select_error(const char* value, const CpuFeatures& f) {
  try {
    select_cpu_path(value, f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CpuPath, UnknownValueIsAnErrorNamingItAndTheFeatures) {
  const std::string msg = select_error("avx1024", avx2_cpu());
  EXPECT_NE(msg.find("HEARTH_CPU=avx1024"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scalar, avx2 or avx512"), std::string::npos) << msg;
  EXPECT_NE(msg.find(cpu_feature_names(avx2_cpu())), std::string::npos) << msg;
  EXPECT_FALSE(select_error("AVX512", avx512_cpu()).empty());
}

TEST(CpuPath, MissingFeaturesAreAnErrorNamingThePathAndTheFeatures) {
  std::string msg = select_error("avx512", avx2_cpu());
  EXPECT_NE(msg.find("HEARTH_CPU=avx512"), std::string::npos) << msg;
  EXPECT_NE(msg.find("avx512_vnni"), std::string::npos) << msg;  // what the path needs
  EXPECT_NE(msg.find("this CPU has: avx avx2 fma f16c os_ymm"), std::string::npos) << msg;
  msg = select_error("avx2", CpuFeatures{});
  EXPECT_NE(msg.find("HEARTH_CPU=avx2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("this CPU has: none"), std::string::npos) << msg;
}

TEST(CpuPath, ActivePathIsTheSelectedOne) {
  // Under CI's per-path runs HEARTH_CPU is set; the guard above has skipped this program if it
  // names a path this CPU lacks.
  const char* env = std::getenv("HEARTH_CPU");
  const CpuPath active = active_cpu_path();
  EXPECT_EQ(active, select_cpu_path(env, cpu_features()));
  EXPECT_TRUE(cpu_supports(active));
  for (GgmlType t : kWeightTypes) EXPECT_EQ(vec_dot_fn(t), vec_dot_fn(t, active)) << quant::type_name(t);
  std::printf("[ cpu      ] active path %s; features: %s\n", cpu_path_name(active),
              cpu_feature_names(cpu_features()).c_str());
}

TEST(CpuPath, AskingForAPathTheCpuLacksThrows) {
  bool any = false;
  for (int i = 0; i < kCpuPathCount; ++i) {
    const auto p = static_cast<CpuPath>(i);
    if (cpu_supports(p)) continue;
    any = true;
    EXPECT_THROW(vec_dot_fn(GgmlType::Q8_0, p), Error) << cpu_path_name(p);
    EXPECT_THROW(act_quantize_fn(GgmlType::Q8_0, p), Error) << cpu_path_name(p);
  }
  if (!any) GTEST_SKIP() << "this CPU runs every path (" << cpu_feature_names(cpu_features()) << ")";
}

}  // namespace
}  // namespace hearth::kernels

#endif  // HEARTH_CPU_GUARD_ONLY

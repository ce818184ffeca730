// SIMD kernels (kernels/dot_avx.h) against the scalar reference (kernels/dot_scalar.h), for
// every CPU path this machine runs, and the HEARTH_CPU override (kernels/cpu.h).
//
// Tolerance of the dot products: |simd - scalar| <= 1e-4 * sum_i |w_i * a_i| (w, a: the
// dequantized rows). The kernels differ only in the order of the float additions: the F32,
// F16 and BF16 kernels sum in f32 vector lanes (at least 32 partial sums) where the reference
// sums in double, and the Q8_0/Q4_0 kernels add the exact per-block integer sums, scaled, in
// f32 lanes where the reference adds them one by one. For rows of <= 16384 elements the
// worst-case error of such sums is (n/32 + 8) * 2^-24 * sum|terms| < 1e-4 * sum|w*a|.
// The K-quant kernels are tighter still: bit-identical (exact super-block integer sums,
// combined in the reference's order), which KQuantDotsAreBitIdentical checks.
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

const GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                 GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

bool is_k_quant(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K; }

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
/// with sane f16 scale fields, so that every code (-128 in Q8_0, all 6-bit scales, ...) occurs.
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
  const int64_t nb = n / traits(t).blck_size;
  for (int64_t i = 0; i < nb; ++i) {
    switch (t) {
      case GgmlType::Q8_0:
        reinterpret_cast<quant::block_q8_0*>(bytes.data())[i].d = f16();
        break;
      case GgmlType::Q4_0:
        reinterpret_cast<quant::block_q4_0*>(bytes.data())[i].d = f16();
        break;
      case GgmlType::Q4_K: {
        auto& b = reinterpret_cast<quant::block_q4_K*>(bytes.data())[i];
        b.d = f16();
        b.dmin = f16();
        break;
      }
      case GgmlType::Q5_K: {
        auto& b = reinterpret_cast<quant::block_q5_K*>(bytes.data())[i];
        b.d = f16();
        b.dmin = f16();
        break;
      }
      case GgmlType::Q6_K:
        reinterpret_cast<quant::block_q6_K*>(bytes.data())[i].d = f16();
        break;
      default:
        ADD_FAILURE() << "no random-code layout for " << quant::type_name(t);
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
  for (GgmlType at : {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q8_K})
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

TEST_P(SimdPath, KQuantDotsAreBitIdentical) {
  const CpuPath path = GetParam();
  for (GgmlType t : kWeightTypes) {
    if (!is_k_quant(t)) continue;
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

TEST_P(SimdPath, ActivationConvertersAreByteIdentical) {
  const CpuPath path = GetParam();
  std::mt19937 rng(99);
  for (GgmlType at : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_K}) {
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

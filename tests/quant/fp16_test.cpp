// Tests of quant/fp16.h: binary16 and bfloat16 conversions (formats.md §2.1).
// fp32 -> fp16 is checked against an independent reference: the F16C instruction VCVTPS2PH
// (round to nearest even) where the CPU has it, else GCC's _Float16 conversion.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "quant/fp16.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HEARTH_TEST_HAVE_F16C 1
#endif

namespace hearth::quant {
namespace {

float bits_to_float(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t float_to_bits(float f) { return std::bit_cast<uint32_t>(f); }

bool is_half_nan(uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0; }

// Value of a finite binary16 pattern computed with ldexp (independent of fp16.h's bit code).
double half_value(uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  const double mag = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024 + mant, exp - 25);
  return sign ? -mag : mag;
}

#ifdef HEARTH_TEST_HAVE_F16C
__attribute__((target("f16c"))) uint16_t f16c_from_float(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
#endif

// The independent fp32 -> fp16 reference, or nullptr if this machine has none.
using RefFn = uint16_t (*)(float);
RefFn reference_fp32_to_fp16() {
#ifdef HEARTH_TEST_HAVE_F16C
  if (__builtin_cpu_supports("f16c")) return f16c_from_float;
#endif
#ifdef __FLT16_MAX__
  return [](float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); };
#else
  return nullptr;
#endif
}

TEST(Fp16, EveryHalfConvertsExactlyAndBack) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    const float f = fp16_to_fp32(half);
    if (is_half_nan(half)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << h;
      const uint16_t back = fp32_to_fp16(f);
      ASSERT_TRUE(is_half_nan(back)) << std::hex << h << " -> " << back;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u);
      continue;
    }
    if ((h & 0x7FFFu) == 0x7C00u) {
      ASSERT_TRUE(std::isinf(f));
    } else {
      ASSERT_EQ(static_cast<double>(f), half_value(half)) << std::hex << h;
    }
    ASSERT_EQ(float_to_bits(f) >> 31, h >> 15) << std::hex << h;  // also -0
    ASSERT_EQ(fp32_to_fp16(f), half) << std::hex << h;
  }
}

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7BFF);       // below the rounding boundary
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);        // tie between 65504 and 65536: even -> inf
  EXPECT_EQ(fp32_to_fp16(-1e9f), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0: even -> 0
  EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp: tie -> even 2
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);       // tie -> even
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);       // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);           // subnormal rounds up to normal
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(float_to_bits(fp16_to_fp32(0x8000)), 0x80000000u);
}

// Inputs that exercise every rounding boundary: each finite half, the midpoints between
// neighbouring halves (exact ties) and the floats just beside those midpoints.
std::vector<float> edge_case_floats() {
  std::vector<float> v;
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                            65504.0f, 65519.0f, 65520.0f, 65536.0f, bits_to_float(0x7FC00000u),
                            bits_to_float(0x7F800001u), bits_to_float(0xFF812345u),
                            bits_to_float(0x7FBFFFFFu), bits_to_float(0x7FFFE000u)};
  v.insert(v.end(), std::begin(specials), std::end(specials));
  for (uint32_t h = 0; h < 0x7C00u; ++h) {  // positive finite halves; negatives by sign flip
    const double a = half_value(static_cast<uint16_t>(h));
    const double b = h + 1 < 0x7C00u ? half_value(static_cast<uint16_t>(h + 1)) : 65536.0;
    const float mid = static_cast<float>((a + b) / 2);  // exact: halves have 11-bit mantissas
    for (float f : {static_cast<float>(a), mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
      v.push_back(f);
      v.push_back(-f);
    }
  }
  return v;
}

TEST(Fp16, Fp32ToFp16MatchesIndependentReference) {
  const RefFn ref = reference_fp32_to_fp16();
  if (ref == nullptr) GTEST_SKIP() << "no F16C and no _Float16 on this machine";

  size_t checked = 0;
  const auto check = [&](float f) {
    const uint16_t got = fp32_to_fp16(f);
    const uint16_t want = ref(f);
    ++checked;
    if (got != want) {
      ADD_FAILURE() << "fp32_to_fp16(" << f << " = 0x" << std::hex << float_to_bits(f) << ") = 0x"
                    << got << ", reference 0x" << want;
      return false;
    }
    return true;
  };
  for (float f : edge_case_floats())
    if (!check(f)) return;

  std::mt19937_64 rng(1234);
  for (int i = 0; i < 5'000'000; ++i)  // arbitrary bit patterns: every exponent, NaN payloads
    if (!check(bits_to_float(static_cast<uint32_t>(rng())))) return;
  for (int i = 0; i < 5'000'000; ++i) {  // exponents in and around the binary16 range
    const uint32_t r = static_cast<uint32_t>(rng());
    const uint32_t exp = 98 + (r >> 24) % 48;  // 2^-29 .. 2^18
    const uint32_t bits = (r & 0x807FFFFFu) | exp << 23;
    if (!check(bits_to_float(bits))) return;
  }
  EXPECT_GT(checked, 10'000'000u);
}

// bf16 reference by exact distance comparison in double: the nearer of the two bf16 values
// bracketing x, the even one on ties.
uint16_t reference_bf16(float x) {
  const uint32_t bits = float_to_bits(x);
  const uint16_t lo = static_cast<uint16_t>(bits >> 16);  // truncation toward zero
  const uint16_t hi = static_cast<uint16_t>(lo + 1);
  const double vx = std::fabs(static_cast<double>(x));
  const double vlo = std::fabs(static_cast<double>(bf16_to_fp32(lo)));
  // The successor of the largest finite bf16 is inf; use its would-be value 2^128.
  const double vhi = (hi & 0x7FFFu) == 0x7F80u ? std::ldexp(1.0, 128)
                                               : std::fabs(static_cast<double>(bf16_to_fp32(hi)));
  const double dlo = vx - vlo;
  const double dhi = vhi - vx;
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1u) ? hi : lo;
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3F808000u)), 0x3F80);  // tie, even below
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3F818000u)), 0x3F82);  // tie, even above
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3F808001u)), 0x3F81);  // just above the tie
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x3F817FFFu)), 0x3F81);  // just below the tie
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0xBF818000u)), 0xBF82);  // negative tie
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to inf
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x00010000u)), 0x0001);  // subnormals are kept
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x00018000u)), 0x0002);  // subnormal tie -> even
  EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);

  std::mt19937_64 rng(99);
  for (int i = 0; i < 2'000'000; ++i) {
    const float x = bits_to_float(static_cast<uint32_t>(rng()));
    if (std::isnan(x)) continue;
    ASSERT_EQ(fp32_to_bf16(x), reference_bf16(x)) << std::hex << float_to_bits(x);
  }
}

TEST(Bf16, NaNsBecomeQuiet) {
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x7F800001u)), 0x7FC0);  // signalling, payload only in low bits
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0xFF800001u)), 0xFFC0);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x7FC00000u)), 0x7FC0);
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x7F810000u)), 0x7FC1);  // payload bits kept
  EXPECT_EQ(fp32_to_bf16(bits_to_float(0x7FFFFFFFu)), 0x7FFF);  // never rounds over into inf/sign
}

TEST(Bf16, EveryBf16RoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    ASSERT_EQ(float_to_bits(f), h << 16);
    const uint16_t back = fp32_to_bf16(f);
    if (std::isnan(f))
      ASSERT_EQ(back, h | 0x40u) << std::hex << h;
    else
      ASSERT_EQ(back, h) << std::hex << h;
  }
}

}  // namespace
}  // namespace hearth::quant

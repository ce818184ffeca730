// AVX2 + FMA + F16C dot products and activation converters (declared in kernels/dot_avx.h).
// Source: ../shared/docs/formats.md §2.2-§2.4, §2.6 (block layouts), §2.7 (partners), §3.1
// (activation quantizers); kernels/dot_scalar.cpp is the reference every function here is
// tested against (tests/kernels/simd_test.cpp). The lattice i-quants are in
// dot_lattice_avx2.cpp.
//
// The program is built for baseline x86-64: only the functions defined between the target
// pragmas below are compiled for AVX2, and they are only called when kernels/cpu.h says the
// CPU runs them. Every header is included before the pragmas, so the inline functions and
// templates they define (emitted as shared COMDAT copies) stay baseline code. This file is
// compiled with -ffp-contract=off (top-level CMakeLists.txt) so that the scalar float
// expressions here round exactly like the reference's.
#include "kernels/dot_avx.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "hearth/error.h"
#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/fp16.h"

namespace hearth::kernels::avx2 {
namespace {

// Baseline code (defined before the target pragma).
[[noreturn]] void throw_bad_row(int64_t n, int64_t blck, const char* type) {
  throw Error(std::string("activation row of ") + std::to_string(n) + " elements is not a multiple of the " + type +
              " block size " + std::to_string(blck));
}

}  // namespace
}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace hearth::kernels::avx2 {
namespace {

using quant::block_q4_0;
using quant::block_q4_K;
using quant::block_q5_K;
using quant::block_q6_K;
using quant::block_q8_0;
using quant::block_q8_K;
using quant::QK8_0;
using quant::QK_K;

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

/// 8 f16 values as floats.
inline __m256 h8(const uint16_t* p) { return _mm256_cvtph_ps(loadu128(p)); }

/// 8 bf16 values as floats (the bf16 bits are the upper half of the float).
inline __m256 b8(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
}

/// 8 int32 lanes, each the sum of 4 products x[k]*y[k] of signed bytes; y must not hold -128
/// (the sign of x moves onto y so that VPMADDUBSW sees |x| as unsigned: |x|*y <= 128*127 and
/// the pair sums fit int16 without saturation).
inline __m256i dot_i8x32(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/// The 32 signed codes (q - 8) of a Q4_0 block: low nibbles (elements 0..15) then high nibbles.
inline __m256i unpack_q4_0(const uint8_t* qs) {
  const __m128i q = loadu128(qs);
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
}

/// sum_j m_j * (bsums[2j] + bsums[2j+1]) for the eight mins in the bytes of `m`.
inline int32_t mins_dot_bsums(uint64_t m, const int16_t* bsums) {
  const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m)));
  const __m256i m_dup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
  return hsum_epi32(_mm256_madd_epi16(loadu256(bsums), m_dup));
}

/// A vector of 16 int16 lanes all equal to lane j of `v8` (8 int16 lanes, repeated in both
/// 128-bit halves).
inline __m256i splat_epi16(__m256i v8, int j) {
  return _mm256_shuffle_epi8(v8, _mm256_set1_epi16(static_cast<int16_t>((2 * j + 1) << 8 | 2 * j)));
}

/// Q4_K (kHigh = false) / Q5_K (kHigh = true) x Q8_K: exact integer sums per super-block,
/// combined like the reference (dot_scalar.cpp dot_scale_min_q8_K).
template <bool kHigh, class WBlock>
float dot_scale_min_q8_K(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const WBlock*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const WBlock& x = xb[i];
    const block_q8_K& y = yb[i];
    uint64_t sc, m;
    quant::unpack_scales_mins_k4(x.scales, &sc, &m);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
    __m256i hv = _mm256_setzero_si256();
    if constexpr (kHigh) hv = loadu256(x.qh);
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m256i q = loadu256(x.qs + 32 * p);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kHigh) {
        // Bit 2p of qh[l] is bit 4 of the even sub-block's code, bit 2p+1 the odd one's; hv
        // holds qh shifted right by 2p (bits entering from the next byte never reach bit 1).
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hv, 4), bit4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hv, 3), bit4));
        hv = _mm256_srli_epi16(hv, 2);
      }
      const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(y.qs + 64 * p));
      const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(y.qs + 64 * p + 32));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, splat_epi16(sc16, 2 * p)));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, splat_epi16(sc16, 2 * p + 1)));
    }
    const int32_t isum = hsum_epi32(acc);
    const int32_t summins = mins_dot_bsums(m, y.bsums);
    const float dw = fp16(x.d);
    const float dminw = fp16(x.dmin);
    sumf += dw * y.d * static_cast<float>(isum) - dminw * y.d * static_cast<float>(summins);
  }
  return sumf;
}

/// Scales of the 16-element sub-blocks s and s+1 of a Q6_K block as 16 int16 lanes
/// (lanes 0..7 = scales[s], 8..15 = scales[s+1]); `sc` holds the 16 int8 scales.
inline __m256i q6_K_scale_pair(__m128i sc, int s) {
  const auto lo = static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(s));
  const auto hi = static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(s + 1));
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_set_epi64x(hi, lo)));
}

/// Packs 32 int32 (i0 = elements 0..7, ..., i3 = 24..31) to 32 int8 in element order,
/// saturating to [-128, 127].
inline __m256i pack_i32x32_to_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i p01 = _mm256_packs_epi32(i0, i1);
  const __m256i p23 = _mm256_packs_epi32(i2, i3);
  const __m256i b = _mm256_packs_epi16(p01, p23);
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline __m256i round_to_i32(__m256 v) {
  return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/// The reference Q8_K quantization of one block (formats.md §3.1) for blocks whose scale is
/// not finite (a subnormal maximum): the rare case where nint's bit trick and the vector
/// conversion disagree.
void q8_K_block_reference(const float* x, block_q8_K* b, float max) {
  const float iscale = -127.f / max;
  for (int j = 0; j < QK_K; ++j) {
    const int32_t q = quant::nint(iscale * x[j]);
    b->qs[j] = static_cast<int8_t>(q < -128 ? -128 : q > 127 ? 127 : q);
  }
  for (int s = 0; s < QK_K / 16; ++s) {
    int sum = 0;
    for (int l = 0; l < 16; ++l) sum += b->qs[16 * s + l];
    b->bsums[s] = static_cast<int16_t>(sum);
  }
  b->d = 1 / iscale;
}

// ---- helpers of the 32-element block types, IQ4_XS, Q2_K/Q3_K and the ternary types ----

using quant::block_iq4_nl;
using quant::block_iq4_xs;
using quant::block_mxfp4;
using quant::block_q2_K;
using quant::block_q3_K;
using quant::block_q4_1;
using quant::block_q5_0;
using quant::block_q5_1;
using quant::block_q8_1;
using quant::block_tq1_0;
using quant::block_tq2_0;

inline __m256i ones_epi16() { return _mm256_set1_epi16(1); }

/// The 32 4-bit codes (0..15) of a 32-element block packed as in Q4_0/Q4_1/IQ4_NL (formats.md
/// §2.2: element j < 16 in the low nibble of qs[j], element j + 16 in its high nibble), one per
/// byte in element order.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = loadu128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

/// 32 bytes: byte e is 0xFF where bit e of `bits` is set, else 0 (the fifth bits of Q5_0/Q5_1).
inline __m256i bits_to_bytes(uint32_t bits) {
  // Byte e takes byte e/8 of `bits` (VPSHUFB stays in each 128-bit half; both hold all 4 bytes),
  // then tests bit e%8.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int32_t>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/// 8 int32 lanes, each the sum of 4 products u[k]*y[k] of unsigned bytes u and signed bytes y,
/// for u*y pair sums that fit int16 (u <= 127, or u <= 31 with any y).
inline __m256i dot_u8i8x32(__m256i u, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), ones_epi16());
}

/// Q8_0-partner (ABlock = block_q8_0) and Q8_1-partner (block_q8_1, kMin) 32-element blocks:
/// sum over blocks of Scale(x, y) * sum(Isum(x, y)) (+ f16(x.m)*f16(y.s) with kMin), where
/// Isum gives 8 int32 lanes whose sum is the block's exact integer dot product. The scaled
/// sums are added in four f32 vector accumulators (the reference adds them one by one).
template <bool kMin, class WBlock, class ABlock, __m256i (*Isum)(const WBlock&, const ABlock&),
          float (*Scale)(const WBlock&, const ABlock&)>
float dot_blocks32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const WBlock*>(w);
  const auto* y = static_cast<const ABlock*>(a);
  const int64_t nb = n / 32;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  float mins[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(Scale(x[i + k], y[i + k])), _mm256_cvtepi32_ps(Isum(x[i + k], y[i + k])),
                               acc[k]);
      if constexpr (kMin) mins[k] += fp16(x[i + k].m) * fp16(y[i + k].s);
    }
  }
  for (; i < nb; ++i) {
    acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(Scale(x[i], y[i])), _mm256_cvtepi32_ps(Isum(x[i], y[i])), acc[0]);
    if constexpr (kMin) mins[0] += fp16(x[i].m) * fp16(y[i].s);
  }
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  if constexpr (kMin) sum += (mins[0] + mins[1]) + (mins[2] + mins[3]);
  return sum;
}

/// 2^(e-128) as quant::e8m0_to_fp32_half computes it (exact; subnormal for e < 2), from the bits.
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e >= 2 ? static_cast<uint32_t>(e - 1) << 23 : 0x00200000u << e;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Per-block pieces of dot_blocks32: the scale f16(dw)*f16(da) of most types.
template <class WBlock, class ABlock>
inline float scale_d_d(const WBlock& x, const ABlock& y) {
  return fp16(x.d) * fp16(y.d);
}

inline float scale_mxfp4(const block_mxfp4& x, const block_q8_0& y) { return fp16(y.d) * e8m0_half(x.e); }

inline __m256i isum_q5_0(const block_q5_0& x, const block_q8_0& y) {
  // q - 16 = nibble - 16 where the fifth bit is clear, the nibble where it is set.
  const __m256i hb = bits_to_bytes(quant::q5_high_bits(x.qh));
  const __m256i q = _mm256_sub_epi8(unpack_nibbles(x.qs), _mm256_andnot_si256(hb, _mm256_set1_epi8(0x10)));
  return dot_i8x32(q, loadu256(y.qs));
}

inline __m256i isum_iq4_nl(const block_iq4_nl& x, const block_q8_0& y) {
  const __m256i table = _mm256_broadcastsi128_si256(loadu128(quant::kValuesIq4nl));
  return dot_i8x32(_mm256_shuffle_epi8(table, unpack_nibbles(x.qs)), loadu256(y.qs));
}

inline __m256i isum_mxfp4(const block_mxfp4& x, const block_q8_0& y) {
  const __m256i table = _mm256_broadcastsi128_si256(loadu128(quant::kValuesMxfp4x2));
  return dot_i8x32(_mm256_shuffle_epi8(table, unpack_nibbles(x.qs)), loadu256(y.qs));
}

inline __m256i isum_q4_1(const block_q4_1& x, const block_q8_1& y) {
  return dot_u8i8x32(unpack_nibbles(x.qs), loadu256(y.qs));
}

inline __m256i isum_q5_1(const block_q5_1& x, const block_q8_1& y) {
  const __m256i hb = bits_to_bytes(quant::q5_high_bits(x.qh));
  const __m256i q = _mm256_or_si256(unpack_nibbles(x.qs), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
  return dot_u8i8x32(q, loadu256(y.qs));
}

/// Byte i of the result = nibble i of `v` (i < 8).
inline uint64_t nibbles_to_bytes(uint32_t v) {
  uint64_t x = v;
  x = (x | x << 16) & 0x0000FFFF0000FFFFull;
  x = (x | x << 8) & 0x00FF00FF00FF00FFull;
  return (x | x << 4) & 0x0F0F0F0F0F0F0F0Full;
}

/// Byte i of the result = bits 2i..2i+1 of `v` (i < 8).
inline uint64_t bit_pairs_to_bytes(uint16_t v) {
  uint64_t x = v;
  x = (x | x << 24) & 0x000000FF000000FFull;
  x = (x | x << 12) & 0x000F000F000F000Full;
  return (x | x << 6) & 0x0303030303030303ull;
}

/// The eight block scales ls - 32 (-32..31) of an IQ4_XS block (formats.md §2.4) as int8.
inline __m128i iq4_xs_scales(const block_iq4_xs& x) {
  uint32_t sl;
  std::memcpy(&sl, x.scales_l, 4);
  const uint64_t ls = nibbles_to_bytes(sl) | bit_pairs_to_bytes(x.scales_h) << 4;
  return _mm_sub_epi8(_mm_cvtsi64_si128(static_cast<int64_t>(ls)), _mm_set1_epi8(32));
}

/// The sixteen 6-bit signed scales of a Q3_K block (formats.md §2.3, quant::q3_K_scale) as int8.
inline __m128i q3_K_scales(const uint8_t* scales) {
  uint32_t a0, a1, t;
  std::memcpy(&a0, scales, 4);
  std::memcpy(&a1, scales + 4, 4);
  std::memcpy(&t, scales + 8, 4);
  const uint32_t lo = 0x0F0F0F0Fu, hi = 0x03030303u;
  const uint32_t s0 = (a0 & lo) | (t & hi) << 4;                 // sub-blocks 0..3
  const uint32_t s1 = (a1 & lo) | ((t >> 2) & hi) << 4;          // 4..7
  const uint32_t s2 = ((a0 >> 4) & lo) | ((t >> 4) & hi) << 4;   // 8..11
  const uint32_t s3 = ((a1 >> 4) & lo) | ((t >> 6) & hi) << 4;   // 12..15
  return _mm_sub_epi8(_mm_setr_epi32(static_cast<int32_t>(s0), static_cast<int32_t>(s1), static_cast<int32_t>(s2),
                                     static_cast<int32_t>(s3)),
                      _mm_set1_epi8(32));
}

/// The trits (0..2) of 32 bytes b, tq1_0_trit(b, 0) = (b*3) >> 8 (formats.md §2.6): 1 from
/// b >= 86, 2 from b >= 171.
inline __m256i trits(__m256i b) {
  const __m256i ge86 = _mm256_cmpeq_epi8(_mm256_max_epu8(b, _mm256_set1_epi8(86)), b);
  const __m256i ge171 = _mm256_cmpeq_epi8(_mm256_max_epu8(b, _mm256_set1_epi8(static_cast<char>(171))), b);
  return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), ge86), ge171);
}

/// 3*b mod 256 per byte (the next trit of a TQ1_0 byte moves to the top).
inline __m256i times3(__m256i b) { return _mm256_add_epi8(b, _mm256_add_epi8(b, b)); }
inline __m128i times3(__m128i b) { return _mm_add_epi8(b, _mm_add_epi8(b, b)); }

/// Q8_1 quantization of one 32-element block (formats.md §3.1; bit-exact with
/// scalar::act_quantize_q8_1).
inline void quantize_block_q8_1(const float* x, block_q8_1* b) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
  const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
  const float amax = hmax_ps(m);
  const float d = amax / 127.f;
  b->d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
  const float id = amax != 0 ? 127.f / amax : 0.0f;
  int32_t sum = 0;
  if (std::isinf(id)) {  // subnormal amax: follow the reference's nint exactly
    for (int j = 0; j < QK8_0; ++j) {
      const int32_t q = quant::nint(x[j] * id);
      b->qs[j] = static_cast<int8_t>(q < -127 ? -127 : q > 127 ? 127 : q);
      sum += b->qs[j];
    }
  } else {
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q = pack_i32x32_to_i8(round_to_i32(_mm256_mul_ps(v0, idv)), round_to_i32(_mm256_mul_ps(v1, idv)),
                                  round_to_i32(_mm256_mul_ps(v2, idv)), round_to_i32(_mm256_mul_ps(v3, idv)));
    q = _mm256_max_epi8(q, _mm256_set1_epi8(-127));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b->qs), q);
    sum = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), ones_epi16()));
  }
  b->s = _cvtss_sh(d * static_cast<float>(sum), _MM_FROUND_TO_NEAREST_INT);
}

}  // namespace

// ---- float types ----

float vec_dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float vec_dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(h8(x + i), h8(y + i), acc0);
    acc1 = _mm256_fmadd_ps(h8(x + i + 8), h8(y + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(h8(x + i + 16), h8(y + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(h8(x + i + 24), h8(y + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(h8(x + i), h8(y + i), acc0);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += fp16(x[i]) * fp16(y[i]);
  return sum;
}

float vec_dot_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(b8(x + i), b8(y + i), acc0);
    acc1 = _mm256_fmadd_ps(b8(x + i + 8), b8(y + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(b8(x + i + 16), b8(y + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(b8(x + i + 24), b8(y + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(b8(x + i), b8(y + i), acc0);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += quant::bf16_to_fp32(x[i]) * quant::bf16_to_fp32(y[i]);
  return sum;
}

// ---- 32-element blocks x Q8_0 ----

float vec_dot_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const block_q8_0*>(w);
  const auto* y = static_cast<const block_q8_0*>(a);
  const int64_t nb = n / QK8_0;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i s = dot_i8x32(loadu256(x[i + k].qs), loadu256(y[i + k].qs));
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[i + k].d) * fp16(y[i + k].d)), _mm256_cvtepi32_ps(s), acc[k]);
    }
  }
  for (; i < nb; ++i) {
    const __m256i s = dot_i8x32(loadu256(x[i].qs), loadu256(y[i].qs));
    acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), _mm256_cvtepi32_ps(s), acc[0]);
  }
  return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

float vec_dot_q4_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const block_q4_0*>(w);
  const auto* y = static_cast<const block_q8_0*>(a);
  const int64_t nb = n / QK8_0;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m256i s = dot_i8x32(unpack_q4_0(x[i + k].qs), loadu256(y[i + k].qs));
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[i + k].d) * fp16(y[i + k].d)), _mm256_cvtepi32_ps(s), acc[k]);
    }
  }
  for (; i < nb; ++i) {
    const __m256i s = dot_i8x32(unpack_q4_0(x[i].qs), loadu256(y[i].qs));
    acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), _mm256_cvtepi32_ps(s), acc[0]);
  }
  return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// ---- K-quants x Q8_K ----

float vec_dot_q4_K(int64_t n, const void* w, const void* a) { return dot_scale_min_q8_K<false, block_q4_K>(n, w, a); }

float vec_dot_q5_K(int64_t n, const void* w, const void* a) { return dot_scale_min_q8_K<true, block_q5_K>(n, w, a); }

float vec_dot_q6_K(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_q6_K*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m2 = _mm256_set1_epi8(0x30);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q6_K& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m128i sc = loadu128(x.scales);
    // Codes are taken unsigned (q + 32, 0..63); the 32*sum(q8) offset comes off at the end:
    // 32 * sum_s scales[s] * bsums[s].
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = loadu256(x.ql + 64 * h);
      const __m256i ql1 = loadu256(x.ql + 64 * h + 32);
      const __m256i qh = loadu256(x.qh + 32 * h);
      // High 2 bits (qh >> 2g) & 3 moved to bits 4..5 (the shifts stay inside each byte).
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)),
      };
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const __m256i p = _mm256_maddubs_epi16(q[g], loadu256(y.qs + 128 * h + 32 * g));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, q6_K_scale_pair(sc, 8 * h + 2 * g)));
      }
    }
    const __m256i offs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), loadu256(y.bsums));
    const int32_t isum = hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(offs, 5)));
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

// ---- more 32-element blocks: x Q8_0 (Q5_0, IQ4_NL, MXFP4) and x Q8_1 (Q4_1, Q5_1) ----

float vec_dot_q5_0(int64_t n, const void* w, const void* a) {
  return dot_blocks32<false, block_q5_0, block_q8_0, isum_q5_0, scale_d_d>(n, w, a);
}

float vec_dot_iq4_nl(int64_t n, const void* w, const void* a) {
  return dot_blocks32<false, block_iq4_nl, block_q8_0, isum_iq4_nl, scale_d_d>(n, w, a);
}

float vec_dot_mxfp4(int64_t n, const void* w, const void* a) {
  return dot_blocks32<false, block_mxfp4, block_q8_0, isum_mxfp4, scale_mxfp4>(n, w, a);
}

float vec_dot_q4_1(int64_t n, const void* w, const void* a) {
  return dot_blocks32<true, block_q4_1, block_q8_1, isum_q4_1, scale_d_d>(n, w, a);
}

float vec_dot_q5_1(int64_t n, const void* w, const void* a) {
  return dot_blocks32<true, block_q5_1, block_q8_1, isum_q5_1, scale_d_d>(n, w, a);
}

// ---- Q2_K, Q3_K, IQ4_XS, TQ1_0, TQ2_0 x Q8_K: exact super-block sums, reference order ----

float vec_dot_q2_K(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_q2_K*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m256i m2 = _mm256_set1_epi8(3);
  const __m128i m4 = _mm_set1_epi8(0x0F);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q2_K& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m128i sc = loadu128(x.scales);
    const __m128i scales = _mm_and_si128(sc, m4);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
    const int32_t summins = hsum_epi32(_mm256_madd_epi16(mins, loadu256(y.bsums)));
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i q = loadu256(x.qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i qk = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2);
        const __m256i p = _mm256_maddubs_epi16(qk, loadu256(y.qs + 128 * h + 32 * k));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, q6_K_scale_pair(scales, 8 * h + 2 * k)));
      }
    }
    const int32_t isum = hsum_epi32(acc);
    const float dall = y.d * fp16(x.d);
    const float dmin = y.d * fp16(x.dmin);
    sumf += dall * static_cast<float>(isum) - dmin * static_cast<float>(summins);
  }
  return sumf;
}

float vec_dot_q3_K(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_q3_K*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m256i m2 = _mm256_set1_epi8(3);
  const __m256i bit2 = _mm256_set1_epi8(4);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q3_K& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m128i sc = q3_K_scales(x.scales);
    const __m256i hm = loadu256(x.hmask);
    // Codes are taken as q2 + 4*hb (0..7); the -4 comes off as 4 * sum_s sc_s * bsums[s].
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i q = loadu256(x.qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        // Bit 4h+k of hmask moved to bit 2 (the 16-bit shifts never carry a neighbour's bit there).
        const int j = 4 * h + k;
        const __m256i hb = j >= 2 ? _mm256_srli_epi16(hm, j - 2) : _mm256_slli_epi16(hm, 2 - j);
        const __m256i qk =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2), _mm256_and_si256(hb, bit2));
        const __m256i p = _mm256_maddubs_epi16(qk, loadu256(y.qs + 128 * h + 32 * k));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, q6_K_scale_pair(sc, 8 * h + 2 * k)));
      }
    }
    const __m256i offs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), loadu256(y.bsums));
    const int32_t isum = hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(offs, 2)));
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_iq4_xs(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_iq4_xs*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m256i table = _mm256_broadcastsi128_si256(loadu128(quant::kValuesIq4nl));
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_iq4_xs& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(iq4_xs_scales(x)));
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int ib = 0; ib < QK_K / 32; ib += 2) {
      // |K| <= 127 and |q8| <= 127: the pair sums of VPMADDUBSW (sign moved onto q8) fit int16.
      const __m256i k0 = _mm256_shuffle_epi8(table, unpack_nibbles(x.qs + 16 * ib));
      const __m256i k1 = _mm256_shuffle_epi8(table, unpack_nibbles(x.qs + 16 * ib + 16));
      const __m256i p0 =
          _mm256_maddubs_epi16(_mm256_sign_epi8(k0, k0), _mm256_sign_epi8(loadu256(y.qs + 32 * ib), k0));
      const __m256i p1 =
          _mm256_maddubs_epi16(_mm256_sign_epi8(k1, k1), _mm256_sign_epi8(loadu256(y.qs + 32 * ib + 32), k1));
      acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(p0, splat_epi16(sc16, ib)));
      acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(p1, splat_epi16(sc16, ib + 1)));
    }
    const int32_t isum = hsum_epi32(_mm256_add_epi32(acc0, acc1));
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_tq1_0(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_tq1_0*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_tq1_0& x = xb[i];
    const block_q8_K& y = yb[i];
    // Trits t (0..2) times q8 summed in int16 (8 terms of |2*2*127| per lane); the -1 comes
    // off as the sum of all q8 (bsums).
    __m256i acc = _mm256_setzero_si256();
    __m256i v = loadu256(x.qs);  // elements 32t + m, m < 32
#pragma GCC unroll 5
    for (int t = 0; t < 5; ++t) {
      acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(trits(v), loadu256(y.qs + 32 * t)));
      v = times3(v);
    }
    // Elements 160 + 16t + m (m < 16) from qs[32..47]: trits t and t + 1 side by side.
    const __m128i q1 = loadu128(x.qs + 32);
    const __m128i q3 = times3(q1), q9 = times3(q3), q27 = times3(q9), q81 = times3(q27);
    acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(trits(_mm256_set_m128i(q3, q1)), loadu256(y.qs + 160)));
    acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(trits(_mm256_set_m128i(q27, q9)), loadu256(y.qs + 192)));
    // Elements 240 + 4t + j from qh[j]: byte 4t + j of [qh, 3qh, 9qh, 27qh].
    uint32_t qh;
    std::memcpy(&qh, x.qh, 4);
    const __m128i h1 = _mm_set1_epi32(static_cast<int32_t>(qh));
    const __m128i h3 = times3(h1), h9 = times3(h3), h27 = times3(h9);
    const __m128i hv = _mm_blend_epi32(_mm_blend_epi32(h1, h3, 0x2), _mm_blend_epi32(h9, h27, 0x8), 0xC);
    acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(trits(_mm256_set_m128i(hv, q81)), loadu256(y.qs + 224)));
    const int32_t isum = hsum_epi32(_mm256_sub_epi32(_mm256_madd_epi16(acc, ones_epi16()),
                                                     _mm256_madd_epi16(loadu256(y.bsums), ones_epi16())));
    sumf += static_cast<float>(isum) * (fp16(x.d) * y.d);
  }
  return sumf;
}

float vec_dot_tq2_0(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_tq2_0*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m256i m2 = _mm256_set1_epi8(3);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_tq2_0& x = xb[i];
    const block_q8_K& y = yb[i];
    // Codes q (0..3) times q8 summed in int16 (8 terms of |2*3*127| per lane); the -1 comes
    // off as the sum of all q8 (bsums).
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i q = loadu256(x.qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k)
        acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2),
                                                         loadu256(y.qs + 128 * h + 32 * k)));
    }
    const int32_t isum = hsum_epi32(_mm256_sub_epi32(_mm256_madd_epi16(acc, ones_epi16()),
                                                     _mm256_madd_epi16(loadu256(y.bsums), ones_epi16())));
    sumf += static_cast<float>(isum) * (fp16(x.d) * y.d);
  }
  return sumf;
}

// ---- activation converters ----

void act_quantize_f16(const float* x, void* y, int64_t n) {
  if (n < 0) throw_bad_row(n, 1, "F16");
  auto* h = static_cast<uint16_t*>(y);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) h[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void act_quantize_bf16(const float* x, void* y, int64_t n) {
  if (n < 0) throw_bad_row(n, 1, "BF16");
  auto* h = static_cast<uint16_t*>(y);
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i inf = _mm256_set1_epi32(0x7F800000);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i half = _mm256_set1_epi32(0x7FFF);
  const __m256i quiet = _mm256_set1_epi32(64);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
    const __m256i top = _mm256_srli_epi32(u, 16);
    const __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    // Round to nearest even: add 0x7FFF plus the lowest kept bit; NaNs: keep the top half, quiet.
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(half, _mm256_and_si256(top, one))), 16);
    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(top, quiet), is_nan);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                     _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  }
  for (; i < n; ++i) h[i] = quant::fp32_to_bf16(x[i]);
}

void act_quantize_q8_0(const float* x, void* y, int64_t n) {
  if (n < 0 || n % QK8_0 != 0) throw_bad_row(n, QK8_0, "Q8_0");
  auto* b = static_cast<block_q8_0*>(y);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    const float amax = hmax_ps(m);
    b[i].d = _cvtss_sh(amax / 127.f, _MM_FROUND_TO_NEAREST_INT);
    const float id = amax != 0 ? 127.f / amax : 0.0f;
    if (std::isinf(id)) {  // subnormal amax: follow the reference's nint exactly
      for (int j = 0; j < QK8_0; ++j) {
        const int32_t q = quant::nint(x[j] * id);
        b[i].qs[j] = static_cast<int8_t>(q < -127 ? -127 : q > 127 ? 127 : q);
      }
      continue;
    }
    const __m256 idv = _mm256_set1_ps(id);
    const __m256i q = pack_i32x32_to_i8(round_to_i32(_mm256_mul_ps(v0, idv)), round_to_i32(_mm256_mul_ps(v1, idv)),
                                        round_to_i32(_mm256_mul_ps(v2, idv)), round_to_i32(_mm256_mul_ps(v3, idv)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), _mm256_max_epi8(q, _mm256_set1_epi8(-127)));
  }
}

void act_quantize_q8_K(const float* x, void* y, int64_t n) {
  if (n < 0 || n % QK_K != 0) throw_bad_row(n, QK_K, "Q8_K");
  auto* b = static_cast<block_q8_K*>(y);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < QK_K; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    const float amax = hmax_ps(m);
    if (amax == 0) {
      std::memset(&b[i], 0, sizeof(block_q8_K));
      continue;
    }
    // The signed element of largest magnitude, the first one on ties (as the reference).
    const __m256 amaxv = _mm256_set1_ps(amax);
    int idx = 0;
    for (int k = 0; k < QK_K; k += 8) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), amaxv, _CMP_EQ_OQ));
      if (hit != 0) {
        idx = k + __builtin_ctz(static_cast<unsigned>(hit));
        break;
      }
    }
    const float max = x[idx];
    const float iscale = -127.f / max;
    if (std::isinf(iscale)) {
      q8_K_block_reference(x, &b[i], max);
      continue;
    }
    const __m256 isv = _mm256_set1_ps(iscale);
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < QK_K; k += 32) {
      const __m256i q = pack_i32x32_to_i8(
          round_to_i32(_mm256_mul_ps(_mm256_loadu_ps(x + k), isv)), round_to_i32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8), isv)),
          round_to_i32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 16), isv)),
          round_to_i32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 24), isv)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs + k), q);
      // bsums: sums of |q + 128| over 8 bytes (VPSADBW), pairs of them minus 16*128.
      const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(q, bias), _mm256_setzero_si256());
      const __m256i s2 = _mm256_add_epi64(s, _mm256_srli_si256(s, 8));
      b[i].bsums[k / 16] = static_cast<int16_t>(_mm256_extract_epi64(s2, 0) - 16 * 128);
      b[i].bsums[k / 16 + 1] = static_cast<int16_t>(_mm256_extract_epi64(s2, 2) - 16 * 128);
    }
    b[i].d = 1 / iscale;
  }
}

void act_quantize_q8_1(const float* x, void* y, int64_t n) {
  if (n < 0 || n % QK8_0 != 0) throw_bad_row(n, QK8_0, "Q8_1");
  auto* b = static_cast<block_q8_1*>(y);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) quantize_block_q8_1(x, &b[i]);
}

// ---- lookup ----

VecDotFn vec_dot_fn(quant::GgmlType weight_type) {
  using quant::GgmlType;
  switch (weight_type) {
    case GgmlType::F32:
      return vec_dot_f32;
    case GgmlType::F16:
      return vec_dot_f16;
    case GgmlType::BF16:
      return vec_dot_bf16;
    case GgmlType::Q8_0:
      return vec_dot_q8_0;
    case GgmlType::Q4_0:
      return vec_dot_q4_0;
    case GgmlType::Q4_K:
      return vec_dot_q4_K;
    case GgmlType::Q5_K:
      return vec_dot_q5_K;
    case GgmlType::Q6_K:
      return vec_dot_q6_K;
    case GgmlType::Q4_1:
      return vec_dot_q4_1;
    case GgmlType::Q5_0:
      return vec_dot_q5_0;
    case GgmlType::Q5_1:
      return vec_dot_q5_1;
    case GgmlType::IQ4_NL:
      return vec_dot_iq4_nl;
    case GgmlType::MXFP4:
      return vec_dot_mxfp4;
    case GgmlType::Q2_K:
      return vec_dot_q2_K;
    case GgmlType::Q3_K:
      return vec_dot_q3_K;
    case GgmlType::IQ4_XS:
      return vec_dot_iq4_xs;
    case GgmlType::TQ1_0:
      return vec_dot_tq1_0;
    case GgmlType::TQ2_0:
      return vec_dot_tq2_0;
    case GgmlType::IQ2_XXS:
      return vec_dot_iq2_xxs;
    case GgmlType::IQ2_XS:
      return vec_dot_iq2_xs;
    case GgmlType::IQ2_S:
      return vec_dot_iq2_s;
    case GgmlType::IQ3_XXS:
      return vec_dot_iq3_xxs;
    case GgmlType::IQ3_S:
      return vec_dot_iq3_s;
    case GgmlType::IQ1_S:
      return vec_dot_iq1_s;
    case GgmlType::IQ1_M:
      return vec_dot_iq1_m;
    default:
      return nullptr;
  }
}

ActQuantizeFn act_quantize_fn(quant::GgmlType act_type) {
  using quant::GgmlType;
  switch (act_type) {
    case GgmlType::F16:
      return act_quantize_f16;
    case GgmlType::BF16:
      return act_quantize_bf16;
    case GgmlType::Q8_0:
      return act_quantize_q8_0;
    case GgmlType::Q8_K:
      return act_quantize_q8_K;
    case GgmlType::Q8_1:
      return act_quantize_q8_1;
    default:
      return nullptr;
  }
}

}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86

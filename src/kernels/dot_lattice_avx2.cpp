// AVX2 + FMA + F16C dot products of the lattice i-quant weights (IQ2_XXS, IQ2_XS, IQ2_S,
// IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) with Q8_K activations (declared in kernels/dot_avx.h).
// Source: ../shared/docs/formats.md §2.5 (layouts), §2.7 (partner Q8_K); kernels/dot_lattice.cpp
// is the reference every function here is tested against (tests/kernels/simd_test.cpp).
//
// Each 32-element block gathers its grid entries with scalar loads into one vector (grid
// magnitudes as unsigned bytes), applies the weight signs to the activation codes, and sums
// the products with VPMADDUBSW (|grid| <= 62, |q8| <= 127: the pair sums fit int16) and
// VPMADDWD by the block scales. The super-block sums are exact and combined in the reference's
// order and float expression, so every kernel is bit-identical to the reference.
// As in dot_avx2.cpp, only the functions between the target pragmas are compiled for AVX2,
// every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/dot_avx.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "quant/blocks_iq.h"
#include "quant/iq_grids.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace hearth::kernels::avx2 {
namespace {

using quant::block_q8_K;
using quant::QK_K;

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

/// 32 bytes: byte e is 0xFF where bit e of `bits` is set, else 0.
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int32_t>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/// The 32 activation codes at q8 with element e negated where bit e of `signs` is set.
inline __m256i signed_q8(const int8_t* q8, uint32_t signs) {
  return _mm256_sign_epi8(loadu256(q8), _mm256_or_si256(bits_to_bytes(signs), _mm256_set1_epi8(1)));
}

/// The sign word of one 32-element block from four 7-bit sign indices in bits 7g..7g+6 of
/// `aux` (formats.md §2.5: byte g = kSignsIq2xs[index g]).
inline uint32_t signs_from_7bit(uint32_t aux) {
  const auto& t = quant::kSignsIq2xs;
  return static_cast<uint32_t>(t[aux & 127]) | static_cast<uint32_t>(t[(aux >> 7) & 127]) << 8 |
         static_cast<uint32_t>(t[(aux >> 14) & 127]) << 16 | static_cast<uint32_t>(t[(aux >> 21) & 127]) << 24;
}

/// Four 8-wide grid entries side by side (32 bytes, group g in bytes 8g..8g+7).
inline __m256i grid8x4(const uint64_t* grid, unsigned i0, unsigned i1, unsigned i2, unsigned i3) {
  return _mm256_set_epi64x(static_cast<int64_t>(grid[i3]), static_cast<int64_t>(grid[i2]),
                           static_cast<int64_t>(grid[i1]), static_cast<int64_t>(grid[i0]));
}

/// Eight 4-wide grid entries side by side (entry j in bytes 4j..4j+3) for indices idx(j).
template <class Index>
inline __m256i grid4x8(const uint32_t* grid, Index idx) {
  return _mm256_setr_epi32(static_cast<int32_t>(grid[idx(0)]), static_cast<int32_t>(grid[idx(1)]),
                           static_cast<int32_t>(grid[idx(2)]), static_cast<int32_t>(grid[idx(3)]),
                           static_cast<int32_t>(grid[idx(4)]), static_cast<int32_t>(grid[idx(5)]),
                           static_cast<int32_t>(grid[idx(6)]), static_cast<int32_t>(grid[idx(7)]));
}

/// 8 int32 lanes summing to sum_e g[e]*y[e]*scale(e): g unsigned grid bytes, y signed codes;
/// `scale` holds 16 int16 lanes, lanes 0..7 the scale of elements 0..15, lanes 8..15 of 16..31.
inline __m256i scaled_dot(__m256i g, __m256i y, __m256i scale) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(g, y), scale);
}

/// The 16 half-block scales 2*s + 1 of IQ2_XS / IQ2_S (s = lo(scales[ib]) for elements 0..15
/// of block ib, hi for 16..31) as int8, in half-block order.
inline __m128i iq2_half_scales(const uint8_t* scales) {
  const __m128i sc = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(scales));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m128i s = _mm_unpacklo_epi8(_mm_and_si128(sc, m4), _mm_and_si128(_mm_srli_epi16(sc, 4), m4));
  return _mm_add_epi8(_mm_add_epi8(s, s), _mm_set1_epi8(1));
}

/// Scales of half-blocks h and h+1 as 16 int16 lanes (lanes 0..7 = sc[h], 8..15 = sc[h+1]).
inline __m256i scale_pair(__m128i sc, int h) {
  const auto lo = static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(h));
  const auto hi = static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(h + 1));
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_set_epi64x(hi, lo)));
}

/// Scale lanes 0..7 = s0, 8..15 = s1.
inline __m256i scale_halves(int s0, int s1) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(s1)), _mm_set1_epi16(static_cast<int16_t>(s0)));
}

/// The exact integer sum over the eight 32-element blocks of a super-block, block(ib) giving
/// 8 int32 lanes for block ib (two accumulators, so that consecutive blocks overlap).
template <class BlockDot>
inline int32_t sum_blocks(BlockDot block) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int ib = 0; ib < QK_K / 32; ib += 2) {
    acc0 = _mm256_add_epi32(acc0, block(ib));
    acc1 = _mm256_add_epi32(acc1, block(ib + 1));
  }
  return hsum_epi32(_mm256_add_epi32(acc0, acc1));
}

/// IQ2_XS / IQ2_S: 16-element scales, 8-wide grids with sign bytes. `group(x, ib, g, &index,
/// &signs)` gives the grid index and full sign byte of group g of block ib.
template <class Block, class Group>
float dot_iq2_half_scaled(int64_t n, const void* w, const void* a, const uint64_t* grid, Group group) {
  const auto* xb = static_cast<const Block*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const Block& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m128i sc = iq2_half_scales(x.scales);
    const int32_t isum = sum_blocks([&](int ib) {
      unsigned idx[4];
      uint32_t signs = 0;
      for (int g = 0; g < 4; ++g) {
        unsigned s;
        group(x, ib, g, &idx[g], &s);
        signs |= s << (8 * g);
      }
      return scaled_dot(grid8x4(grid, idx[0], idx[1], idx[2], idx[3]), signed_q8(y.qs + 32 * ib, signs),
                        scale_pair(sc, 2 * ib));
    });
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

struct Iq2xsGroup {
  void operator()(const quant::block_iq2_xs& x, int ib, int g, unsigned* index, unsigned* signs) const {
    const uint16_t v = x.qs[4 * ib + g];
    *index = v & 511;
    *signs = quant::kSignsIq2xs[v >> 9];
  }
};

struct Iq2sGroup {
  void operator()(const quant::block_iq2_s& x, int ib, int g, unsigned* index, unsigned* signs) const {
    *index = x.qs[4 * ib + g] | ((x.qh[ib] >> (2 * g)) & 3u) << 8;
    *signs = x.signs[4 * ib + g];
  }
};

/// 8 int32 lanes summing to sum_e grid[e]*q8[e] for IQ1 grid bytes (int8 -1/0/+1), weighted by
/// `scale` as in scaled_dot.
inline __m256i iq1_scaled_dot(__m256i grid, const int8_t* q8, __m256i scale) {
  // VPSIGNB with a -1/0/+1 operand is the product itself.
  const __m256i prod = _mm256_sign_epi8(loadu256(q8), grid);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), prod), scale);
}

}  // namespace

float vec_dot_iq2_xxs(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const quant::block_iq2_xxs*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const uint64_t* grid = quant::kIq2xxsGrid.data();
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq2_xxs& x = xb[i];
    const block_q8_K& y = yb[i];
    const int32_t isum = sum_blocks([&](int ib) {
      const uint8_t* chunk = x.qs + 8 * ib;
      const uint32_t aux = load_u32(chunk + 4);
      const int ls = static_cast<int>(2 * (aux >> 28) + 1);
      return scaled_dot(grid8x4(grid, chunk[0], chunk[1], chunk[2], chunk[3]),
                        signed_q8(y.qs + 32 * ib, signs_from_7bit(aux)), scale_halves(ls, ls));
    });
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

float vec_dot_iq2_xs(int64_t n, const void* w, const void* a) {
  return dot_iq2_half_scaled<quant::block_iq2_xs>(n, w, a, quant::kIq2xsGrid.data(), Iq2xsGroup{});
}

float vec_dot_iq2_s(int64_t n, const void* w, const void* a) {
  return dot_iq2_half_scaled<quant::block_iq2_s>(n, w, a, quant::kIq2sGrid.data(), Iq2sGroup{});
}

float vec_dot_iq3_xxs(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const quant::block_iq3_xxs*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const uint32_t* grid = quant::kIq3xxsGrid.data();
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq3_xxs& x = xb[i];
    const block_q8_K& y = yb[i];
    const int32_t isum = sum_blocks([&](int ib) {
      const uint8_t* idx = x.qs + 8 * ib;
      const uint32_t aux = load_u32(x.scales_signs + 4 * ib);
      const int ls = static_cast<int>(2 * (aux >> 28) + 1);
      return scaled_dot(grid4x8(grid, [idx](int j) { return idx[j]; }),
                        signed_q8(y.qs + 32 * ib, signs_from_7bit(aux)), scale_halves(ls, ls));
    });
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return 0.25f * sumf;
}

float vec_dot_iq3_s(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const quant::block_iq3_s*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const uint32_t* grid = quant::kIq3sGrid.data();
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq3_s& x = xb[i];
    const block_q8_K& y = yb[i];
    const int32_t isum = sum_blocks([&](int ib) {
      const uint8_t* qs = x.qs + 8 * ib;
      const unsigned qh = x.qh[ib];
      const int s = ib % 2 == 0 ? x.scales[ib / 2] & 0x0F : x.scales[ib / 2] >> 4;
      const int ls = 1 + 2 * s;
      // Entry j of the block: index qs[j] | bit j of qh << 8.
      return scaled_dot(grid4x8(grid, [qs, qh](int j) { return qs[j] | ((qh >> j) & 1u) << 8; }),
                        signed_q8(y.qs + 32 * ib, load_u32(x.signs + 4 * ib)), scale_halves(ls, ls));
    });
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_iq1_s(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const quant::block_iq1_s*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const uint64_t* grid = quant::kIq1sGrid.data();
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq1_s& x = xb[i];
    const block_q8_K& y = yb[i];
    const int32_t isum = sum_blocks([&](int ib) {
      const unsigned h = x.qh[ib];
      const uint8_t* qs = x.qs + 4 * ib;
      const int ls = static_cast<int>(2 * ((h >> 12) & 7) + 1);
      const __m256i g = grid8x4(grid, qs[0] | (h & 7) << 8, qs[1] | ((h >> 3) & 7) << 8, qs[2] | ((h >> 6) & 7) << 8,
                                qs[3] | ((h >> 9) & 7) << 8);
      return iq1_scaled_dot(g, y.qs + 32 * ib, scale_halves(ls, ls));
    });
    int32_t isum_delta = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const unsigned h = x.qh[ib];
      const int32_t block_sum = y.bsums[2 * ib] + y.bsums[2 * ib + 1];
      isum_delta += static_cast<int32_t>(2 * ((h >> 12) & 7) + 1) * ((h & 0x8000) ? -block_sum : block_sum);
    }
    sumf += fp16(x.d) * y.d * (static_cast<float>(isum) + quant::kIq1Delta * static_cast<float>(isum_delta));
  }
  return sumf;
}

float vec_dot_iq1_m(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const quant::block_iq1_m*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const uint64_t* grid = quant::kIq1sGrid.data();
  // Byte e of a block takes byte e/8 (its group's) of a 4-byte word.
  const __m256i spread_groups =
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq1_m& x = xb[i];
    const block_q8_K& y = yb[i];
    uint16_t sc[4];
    std::memcpy(sc, x.scales, 8);
    __m256i acc = _mm256_setzero_si256(), acc_delta = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const unsigned h = x.qh[2 * ib] | static_cast<unsigned>(x.qh[2 * ib + 1]) << 8;  // nibble g = group g
      const uint8_t* qs = x.qs + 4 * ib;
      const unsigned s = sc[ib / 2] >> (6 * (ib % 2));
      const __m256i scale = scale_halves(static_cast<int>(2 * (s & 7) + 1), static_cast<int>(2 * ((s >> 3) & 7) + 1));
      const __m256i g = grid8x4(grid, qs[0] | (h & 7) << 8, qs[1] | ((h >> 4) & 7) << 8, qs[2] | ((h >> 8) & 7) << 8,
                                qs[3] | ((h >> 12) & 7) << 8);
      const int8_t* q8 = y.qs + 32 * ib;
      acc = _mm256_add_epi32(acc, iq1_scaled_dot(g, q8, scale));
      // Delta: +-1 per group (bit 3 of its nibble set: -1) times the same scales.
      const uint32_t neg = ((h >> 3) & 1) * 0xFFu | ((h >> 7) & 1) * 0xFF00u | ((h >> 11) & 1) * 0xFF0000u |
                           ((h >> 15) & 1) * 0xFF000000u;
      const __m256i delta =
          _mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(neg)), spread_groups),
                          _mm256_set1_epi8(1));
      acc_delta = _mm256_add_epi32(acc_delta, iq1_scaled_dot(delta, q8, scale));
    }
    const int32_t isum = hsum_epi32(acc);
    const int32_t isum_delta = hsum_epi32(acc_delta);
    const float d = fp16(quant::iq1_m_d_bits(x));
    sumf += d * y.d * (static_cast<float>(isum) + quant::kIq1Delta * static_cast<float>(isum_delta));
  }
  return sumf;
}

}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86

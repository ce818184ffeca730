// AVX-512 (F, BW, VL, VNNI; BF16 where present) dot products and activation converters
// (declared in kernels/dot_avx.h).
// Source: ../shared/docs/formats.md §2.2-§2.4, §2.6 (block layouts), §2.7 (partners), §3.1
// (activation quantizers); kernels/dot_scalar.cpp is the reference every function here is
// tested against (tests/kernels/simd_test.cpp). The lattice i-quants are in
// dot_lattice_avx512.cpp.
//
// VNNI: VPDPBUSD (u8 x s8, four products summed into each int32 lane) does the block sums of
// the 32-element types, IQ4_XS (on the codebook plus 128) and TQ1_0/TQ2_0; VPDPWSSD (int16 x
// int16 pairs into int32) applies the K-quant sub-block scales. The fifth bits of Q5_0/Q5_1 and
// the third bit of Q3_K are byte masks (VPTESTMB or the qh word itself).
// Register width per kernel is what measured fastest on Zen 4, which splits every 512-bit
// operation in two (bench/dot_bench.cpp): 512-bit for F32, BF16, Q4_0, Q6_K, IQ4_XS and the
// converters, 256-bit (AVX512VL forms) for Q8_0, Q4_K and Q5_K, where 512-bit steps need extra
// shuffles for the per-block scales; F16 keeps the AVX2 kernel. The other kernels (Q4_1, Q5_0,
// Q5_1, IQ4_NL, MXFP4, Q2_K, Q3_K, TQ1_0, TQ2_0) are 256-bit like their Q8_0 / K-quant
// neighbours; 512-bit versions of them have not been tried.
// As in dot_avx2.cpp, only the functions between the target pragmas are compiled for AVX-512,
// every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/dot_avx.h"

#if defined(__x86_64__)

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers make their "undefined" vectors by self-initialization, which its
// own -Wuninitialized then reports at every inlined use (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "hearth/error.h"
#include "kernels/cpu.h"
#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/fp16.h"

namespace hearth::kernels::avx512 {
namespace {

// Baseline code (defined before the target pragma).
[[noreturn]] void throw_bad_row(int64_t n, int64_t blck, const char* type) {
  throw Error(std::string("activation row of ") + std::to_string(n) + " elements is not a multiple of the " + type +
              " block size " + std::to_string(blck));
}

bool has_avx512_bf16() { return cpu_features().avx512_bf16; }

}  // namespace
}  // namespace hearth::kernels::avx512

// The target of this file (the pragmas below and vec_dot_bf16_dpbf16, which adds avx512bf16).
#define HEARTH_AVX512_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

namespace hearth::kernels::avx512 {
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

inline __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }
inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

/// Two 32-byte halves in one register: `lo` in bytes 0..31, `hi` in bytes 32..63.
inline __m512i load2x256(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(lo)), loadu256(hi), 1);
}

/// 8 int32 lanes, each the sum of 4 products x[k]*y[k] of signed bytes (VPDPBUSD, AVX512VL);
/// y must not hold -128 (|x| goes in as unsigned, the sign of x moves onto y).
inline __m256i dot_i8x32(__m256i x, __m256i y) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/// d0 in lanes 0..7, d1 in lanes 8..15 (the scales of two 32-element blocks side by side).
inline __m512 scale2(float d0, float d1) {
  return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

/// The 32 signed codes (q - 8) of one Q4_0 block: low nibbles then high nibbles.
inline __m256i unpack_q4_0(const uint8_t* qs) {
  const __m128i q = loadu128(qs);
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
}

/// The unsigned codes (0..15) of two Q4_0 blocks in element order: [low(q0), high(q0),
/// low(q1), high(q1)], 16 bytes each.
inline __m512i unpack_q4_0x2(const uint8_t* q0, const uint8_t* q1) {
  const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(loadu128(q0))),
                                       _mm256_broadcastsi128_si256(loadu128(q1)), 1);
  // Shift the second and fourth 16-byte lanes (16-bit lanes 8..15 and 24..31) down a nibble.
  return _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xFF00FF00u, q, 4), _mm512_set1_epi8(0x0F));
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// sum_j m_j * (bsums[2j] + bsums[2j+1]) for the eight mins in the bytes of `m`.
inline int32_t mins_dot_bsums(uint64_t m, const int16_t* bsums) {
  const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m)));
  const __m256i m_dup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
  return hsum_epi32(_mm256_madd_epi16(loadu256(bsums), m_dup));
}

/// Index vectors for VPERMW: 32 int16 lanes.
struct alignas(64) Index32 {
  int16_t v[32];
};

/// Lanes 8k..8k+7 = base + k: the scales of four 16-element Q6_K sub-blocks over the 32 pair
/// sums of one 64-element step.
constexpr Index32 q6_quad_index(int base) {
  Index32 r{};
  for (int i = 0; i < 32; ++i) r.v[i] = static_cast<int16_t>(base + i / 8);
  return r;
}
constexpr Index32 kQ6Index[4] = {q6_quad_index(0), q6_quad_index(4), q6_quad_index(8), q6_quad_index(12)};

inline __m512i load_index(const Index32& idx) { return _mm512_load_si512(idx.v); }

/// A vector of 16 int16 lanes all equal to lane j of `v8` (8 int16 lanes, repeated in both
/// 128-bit halves).
inline __m256i splat_epi16(__m256i v8, int j) {
  return _mm256_shuffle_epi8(v8, _mm256_set1_epi16(static_cast<int16_t>((2 * j + 1) << 8 | 2 * j)));
}

/// Q4_K (kHigh = false) / Q5_K (kHigh = true) x Q8_K: exact integer sums per super-block,
/// combined like the reference (dot_scalar.cpp dot_scale_min_q8_K). 256-bit steps: VPDPWSSD
/// applies the sub-block scales and accumulates in one instruction, and the fifth bit of Q5_K
/// is a VPTESTMB mask. (512-bit steps need a VPERMW per step for the scales and are no faster
/// where 512-bit operations are split in two, e.g. Zen 4.)
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
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kHigh) qh = loadu256(x.qh);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m256i q = loadu256(x.qs + 32 * p);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kHigh) {
        // Bit 4 of the code: bit 2p of qh[l] (even sub-block), bit 2p+1 (odd); codes < 16: add = or.
        lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * p)))), lo, bit4);
        hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(static_cast<char>(1 << (2 * p + 1)))), hi,
                                  bit4);
      }
      const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(y.qs + 64 * p));
      const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(y.qs + 64 * p + 32));
      acc0 = _mm256_dpwssd_epi32(acc0, plo, splat_epi16(sc16, 2 * p));
      acc1 = _mm256_dpwssd_epi32(acc1, phi, splat_epi16(sc16, 2 * p + 1));
    }
    const int32_t isum = hsum_epi32(_mm256_add_epi32(acc0, acc1));
    const int32_t summins = mins_dot_bsums(m, y.bsums);
    const float dw = fp16(x.d);
    const float dminw = fp16(x.dmin);
    sumf += dw * y.d * static_cast<float>(isum) - dminw * y.d * static_cast<float>(summins);
  }
  return sumf;
}

/// Q8_K quantization of one block whose scale is not finite (subnormal maximum), following
/// the reference's nint exactly (see dot_avx2.cpp).
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

/// 16 floats times `scale`, rounded to nearest even, as saturated int8.
inline __m128i quantize16(const float* x, __m512 scale) {
  return _mm512_cvtsepi32_epi8(
      _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline __mmask16 tail_mask16(int64_t r) { return static_cast<__mmask16>((1u << r) - 1); }

/// 16 bf16 values (in `h`) as floats.
inline __m512 b16(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

/// Q4_0 x Q8_0 integer sums of blocks k and k+1 as 16 floats (lanes 0..7: block k):
/// sum (q - 8)*y = dpbusd(q, y) - dpbusd(8, y), q being 0..15, unsigned as VPDPBUSD wants.
inline __m512 q4_0_block_pair(const block_q4_0* x, const block_q8_0* y) {
  const __m512i q = unpack_q4_0x2(x[0].qs, x[1].qs);
  const __m512i yv = load2x256(y[0].qs, y[1].qs);
  const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, yv),
                                     _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), yv));
  return _mm512_cvtepi32_ps(s);
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

/// The 32 4-bit codes (0..15) of a 32-element block packed as in Q4_0 (low nibbles = elements
/// 0..15, high nibbles = 16..31), one per byte in element order.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = loadu128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

/// 8 int32 lanes, each the sum of 4 products u[k]*y[k] of unsigned bytes u and signed bytes y.
inline __m256i dot_u8i8x32(__m256i u, __m256i y) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y); }

/// As dot_avx2.cpp: 32-element blocks x Q8_0 (or Q8_1 with kMin, adding f16(m)*f16(s)), the
/// block sums Scale(x, y) * sum(Isum(x, y)) added in four f32 vector accumulators.
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

template <class WBlock, class ABlock>
inline float scale_d_d(const WBlock& x, const ABlock& y) {
  return fp16(x.d) * fp16(y.d);
}

inline float scale_mxfp4(const block_mxfp4& x, const block_q8_0& y) { return fp16(y.d) * e8m0_half(x.e); }

inline __m256i isum_q5_0(const block_q5_0& x, const block_q8_0& y) {
  // q - 16: subtract 16 from the nibbles whose fifth bit (bit e of qh) is clear.
  uint32_t qh;
  std::memcpy(&qh, x.qh, 4);
  const __m256i nib = unpack_nibbles(x.qs);
  return dot_i8x32(_mm256_mask_sub_epi8(nib, static_cast<__mmask32>(~qh), nib, _mm256_set1_epi8(16)), loadu256(y.qs));
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
  uint32_t qh;
  std::memcpy(&qh, x.qh, 4);
  const __m256i nib = unpack_nibbles(x.qs);
  return dot_u8i8x32(_mm256_mask_add_epi8(nib, static_cast<__mmask32>(qh), nib, _mm256_set1_epi8(16)), loadu256(y.qs));
}

/// As dot_avx2.cpp: byte i of the result = nibble i of `v`, resp. bits 2i..2i+1 of `v` (i < 8).
inline uint64_t nibbles_to_bytes(uint32_t v) {
  uint64_t x = v;
  x = (x | x << 16) & 0x0000FFFF0000FFFFull;
  x = (x | x << 8) & 0x00FF00FF00FF00FFull;
  return (x | x << 4) & 0x0F0F0F0F0F0F0F0Full;
}
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

/// The IQ4_NL codebook plus 128 (1..241), unsigned for VPDPBUSD.
alignas(16) constexpr uint8_t kIq4nlPlus128[16] = {1,   24,  45,  63,  79,  93,  106, 118,
                                                   129, 141, 153, 166, 181, 197, 217, 241};
static_assert(kIq4nlPlus128[0] == quant::kValuesIq4nl[0] + 128 && kIq4nlPlus128[15] == quant::kValuesIq4nl[15] + 128 &&
                  kIq4nlPlus128[7] == quant::kValuesIq4nl[7] + 128 && kIq4nlPlus128[8] == quant::kValuesIq4nl[8] + 128,
              "kIq4nlPlus128 is kValuesIq4nl + 128");

/// The sixteen 6-bit signed scales of a Q3_K block (quant::q3_K_scale) as int8 (as dot_avx2.cpp).
inline __m128i q3_K_scales(const uint8_t* scales) {
  uint32_t a0, a1, t;
  std::memcpy(&a0, scales, 4);
  std::memcpy(&a1, scales + 4, 4);
  std::memcpy(&t, scales + 8, 4);
  const uint32_t lo = 0x0F0F0F0Fu, hi = 0x03030303u;
  const uint32_t s0 = (a0 & lo) | (t & hi) << 4;
  const uint32_t s1 = (a1 & lo) | ((t >> 2) & hi) << 4;
  const uint32_t s2 = ((a0 >> 4) & lo) | ((t >> 4) & hi) << 4;
  const uint32_t s3 = ((a1 >> 4) & lo) | ((t >> 6) & hi) << 4;
  return _mm_sub_epi8(_mm_setr_epi32(static_cast<int32_t>(s0), static_cast<int32_t>(s1), static_cast<int32_t>(s2),
                                     static_cast<int32_t>(s3)),
                      _mm_set1_epi8(32));
}

/// Scales of the 16-element sub-blocks s and s+1 as 16 int16 lanes (lanes 0..7 = sc[s], 8..15 =
/// sc[s+1]); `sc` holds 16 int8 scales.
inline __m256i scale_pair(__m128i sc, int s) {
  const auto lo = static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(s));
  const auto hi = static_cast<int64_t>(0x0101010101010101ull * static_cast<uint64_t>(s + 1));
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, _mm_set_epi64x(hi, lo)));
}

/// The trits t(b) = (b*3) >> 8 (0..2) of 32 bytes: 1 from b >= 86, 2 from b >= 171.
inline __m256i trits(__m256i b) {
  const __m256i one = _mm256_set1_epi8(1);
  const __m256i t = _mm256_maskz_mov_epi8(_mm256_cmpge_epu8_mask(b, _mm256_set1_epi8(86)), one);
  return _mm256_mask_add_epi8(t, _mm256_cmpge_epu8_mask(b, _mm256_set1_epi8(static_cast<char>(171))), t, one);
}

/// 3*b mod 256 per byte.
inline __m256i times3(__m256i b) { return _mm256_add_epi8(b, _mm256_add_epi8(b, b)); }
inline __m128i times3(__m128i b) { return _mm_add_epi8(b, _mm_add_epi8(b, b)); }

/// Sum of the 16 int16 bsums of a Q8_K block.
inline int32_t bsums_total(const int16_t* bsums) {
  return hsum_epi32(_mm256_madd_epi16(loadu256(bsums), _mm256_set1_epi16(1)));
}

}  // namespace

// ---- float types ----

float vec_dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc0);
  if (i < n) {
    const __mmask16 k = tail_mask16(n - i);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

float vec_dot_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(b16(loadu256(x + i)), b16(loadu256(y + i)), acc0);
    acc1 = _mm512_fmadd_ps(b16(loadu256(x + i + 16)), b16(loadu256(y + i + 16)), acc1);
    acc2 = _mm512_fmadd_ps(b16(loadu256(x + i + 32)), b16(loadu256(y + i + 32)), acc2);
    acc3 = _mm512_fmadd_ps(b16(loadu256(x + i + 48)), b16(loadu256(y + i + 48)), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(b16(loadu256(x + i)), b16(loadu256(y + i)), acc0);
  if (i < n) {
    const __mmask16 k = tail_mask16(n - i);
    acc1 = _mm512_fmadd_ps(b16(_mm256_maskz_loadu_epi16(k, x + i)), b16(_mm256_maskz_loadu_epi16(k, y + i)), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

__attribute__((target(HEARTH_AVX512_TARGET ",avx512bf16"))) float vec_dot_bf16_dpbf16(int64_t n, const void* w,
                                                                                    const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  // VDPBF16PS: each f32 lane += x[2k]*y[2k] + x[2k+1]*y[2k+1] (32 bf16 pairs per register).
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)loadu512(x + i), (__m512bh)loadu512(y + i));
    acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)loadu512(x + i + 32), (__m512bh)loadu512(y + i + 32));
  }
  for (; i + 32 <= n; i += 32) acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)loadu512(x + i), (__m512bh)loadu512(y + i));
  if (i < n) {
    const auto k = static_cast<__mmask32>((1u << (n - i)) - 1);  // n - i < 32
    acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(k, x + i), (__m512bh)_mm512_maskz_loadu_epi16(k, y + i));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// ---- 32-element blocks x Q8_0 ----

float vec_dot_q8_0(int64_t n, const void* w, const void* a) {
  // One block per 256-bit register: on CPUs that split 512-bit operations in two (Zen 4) the
  // per-block scale broadcast makes two-block 512-bit steps slower than this.
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
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    acc0 = _mm512_fmadd_ps(scale2(fp16(x[i].d) * fp16(y[i].d), fp16(x[i + 1].d) * fp16(y[i + 1].d)),
                           q4_0_block_pair(x + i, y + i), acc0);
    acc1 = _mm512_fmadd_ps(scale2(fp16(x[i + 2].d) * fp16(y[i + 2].d), fp16(x[i + 3].d) * fp16(y[i + 3].d)),
                           q4_0_block_pair(x + i + 2, y + i + 2), acc1);
  }
  for (; i + 2 <= nb; i += 2)
    acc0 = _mm512_fmadd_ps(scale2(fp16(x[i].d) * fp16(y[i].d), fp16(x[i + 1].d) * fp16(y[i + 1].d)),
                           q4_0_block_pair(x + i, y + i), acc0);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  if (i < nb) {
    const __m256i s = dot_i8x32(unpack_q4_0(x[i].qs), loadu256(y[i].qs));
    sum += hsum_ps(_mm256_mul_ps(_mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), _mm256_cvtepi32_ps(s)));
  }
  return sum;
}

// ---- K-quants x Q8_K ----

float vec_dot_q4_K(int64_t n, const void* w, const void* a) { return dot_scale_min_q8_K<false, block_q4_K>(n, w, a); }

float vec_dot_q5_K(int64_t n, const void* w, const void* a) { return dot_scale_min_q8_K<true, block_q5_K>(n, w, a); }

float vec_dot_q6_K(int64_t n, const void* w, const void* a) {
  const auto* xb = static_cast<const block_q6_K*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m2 = _mm512_set1_epi8(0x30);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q6_K& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(x.scales));
    const __m512i sc16z = _mm512_castsi256_si512(sc16);
    // Codes are taken unsigned (q + 32, 0..63); 32 * sum_s scales[s] * bsums[s] comes off at the end.
    __m512i accA = _mm512_setzero_si512(), accB = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = loadu512(x.ql + 64 * h);  // groups g = 0 | 1 (low nibbles), 2 | 3 (high)
      const __m512i qh = _mm512_broadcast_i64x4(loadu256(x.qh + 32 * h));
      // High 2 bits (qh >> 2g) & 3 to bits 4..5: g = 0: qh << 4, 1: qh << 2, 2: qh, 3: qh >> 2.
      const __m512i hA = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), 0xFFFF0000u, qh, 2);
      const __m512i hB = _mm512_mask_srli_epi16(qh, 0xFFFF0000u, qh, 2);
      const __m512i qA = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(hA, m2));
      const __m512i qB = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(hB, m2));
      const __m512i pA = _mm512_maddubs_epi16(qA, loadu512(y.qs + 128 * h));
      const __m512i pB = _mm512_maddubs_epi16(qB, loadu512(y.qs + 128 * h + 64));
      accA = _mm512_dpwssd_epi32(accA, pA, _mm512_permutexvar_epi16(load_index(kQ6Index[2 * h]), sc16z));
      accB = _mm512_dpwssd_epi32(accB, pB, _mm512_permutexvar_epi16(load_index(kQ6Index[2 * h + 1]), sc16z));
    }
    const __m256i offs = _mm256_madd_epi16(sc16, loadu256(y.bsums));
    const int32_t isum = _mm512_reduce_add_epi32(_mm512_add_epi32(accA, accB)) - 32 * hsum_epi32(offs);
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
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i q = loadu256(x.qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i qk = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2);
        const __m256i p = _mm256_maddubs_epi16(qk, loadu256(y.qs + 128 * h + 32 * k));
        if (k % 2 == 0)
          acc0 = _mm256_dpwssd_epi32(acc0, p, scale_pair(scales, 8 * h + 2 * k));
        else
          acc1 = _mm256_dpwssd_epi32(acc1, p, scale_pair(scales, 8 * h + 2 * k));
      }
    }
    const int32_t isum = hsum_epi32(_mm256_add_epi32(acc0, acc1));
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
    // Codes q2 + 4*hb (0..7); the -4 comes off as 4 * sum_s sc_s * bsums[s].
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i q = loadu256(x.qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        __m256i qk = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2);
        const __mmask32 hb = _mm256_test_epi8_mask(hm, _mm256_set1_epi8(static_cast<char>(1 << (4 * h + k))));
        qk = _mm256_mask_add_epi8(qk, hb, qk, bit2);
        const __m256i p = _mm256_maddubs_epi16(qk, loadu256(y.qs + 128 * h + 32 * k));
        if (k % 2 == 0)
          acc0 = _mm256_dpwssd_epi32(acc0, p, scale_pair(sc, 8 * h + 2 * k));
        else
          acc1 = _mm256_dpwssd_epi32(acc1, p, scale_pair(sc, 8 * h + 2 * k));
      }
    }
    const __m256i offs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), loadu256(y.bsums));
    const int32_t isum = hsum_epi32(_mm256_sub_epi32(_mm256_add_epi32(acc0, acc1), _mm256_slli_epi32(offs, 2)));
    sumf += fp16(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_iq4_xs(int64_t n, const void* w, const void* a) {
  // VPDPBUSD takes the codebook values plus 128 (unsigned); the 128 * sum_ib s_ib * sum q8 this
  // adds comes off per super-block from the bsums. Four blocks per 512-bit step: the low nibbles
  // (elements 0..15 of each block) in one register, the high nibbles in another, each with the
  // matching activation halves, so that int32 lanes 4k..4k+3 hold block 4h+k. (On Zen 4 this
  // measured a few percent faster than two blocks per 256-bit step.)
  const auto* xb = static_cast<const block_iq4_xs*>(w);
  const auto* yb = static_cast<const block_q8_K*>(a);
  const __m512i table = _mm512_broadcast_i32x4(loadu128(kIq4nlPlus128));
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  // Bytes of the eight block scales, each repeated four times: blocks 0..3, 4..7.
  const __m128i rep0 = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m128i rep1 = _mm_setr_epi8(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_iq4_xs& x = xb[i];
    const block_q8_K& y = yb[i];
    const __m128i sc8 = iq4_xs_scales(x);
    // sum_ib s_ib * (bsums[2ib] + bsums[2ib+1]).
    const __m256i offs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_unpacklo_epi8(sc8, sc8)), loadu256(y.bsums));
    const __m512i sc[2] = {_mm512_cvtepi8_epi32(_mm_shuffle_epi8(sc8, rep0)),
                           _mm512_cvtepi8_epi32(_mm_shuffle_epi8(sc8, rep1))};
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i q = loadu512(x.qs + 64 * h);
      const __m512i lo = _mm512_shuffle_epi8(table, _mm512_and_si512(q, m4));
      const __m512i hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(q, 4), m4));
      // y0 = [lo0, hi0, lo1, hi1], y1 = [lo2, hi2, lo3, hi3] (16-byte lanes).
      const __m512i y0 = loadu512(y.qs + 128 * h), y1 = loadu512(y.qs + 128 * h + 64);
      const __m512i ylo = _mm512_shuffle_i64x2(y0, y1, _MM_SHUFFLE(2, 0, 2, 0));
      const __m512i yhi = _mm512_shuffle_i64x2(y0, y1, _MM_SHUFFLE(3, 1, 3, 1));
      const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, ylo), hi, yhi);
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(s, sc[h]));
    }
    const int32_t isum = _mm512_reduce_add_epi32(acc) - 128 * hsum_epi32(offs);
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
    // Trits t (0..2) times q8 (element order as dot_avx2.cpp); the -1 comes off as sum q8.
    __m256i acc = _mm256_setzero_si256();
    __m256i v = loadu256(x.qs);
#pragma GCC unroll 5
    for (int t = 0; t < 5; ++t) {
      acc = _mm256_dpbusd_epi32(acc, trits(v), loadu256(y.qs + 32 * t));
      v = times3(v);
    }
    const __m128i q1 = loadu128(x.qs + 32);
    const __m128i q3 = times3(q1), q9 = times3(q3), q27 = times3(q9), q81 = times3(q27);
    acc = _mm256_dpbusd_epi32(acc, trits(_mm256_set_m128i(q3, q1)), loadu256(y.qs + 160));
    acc = _mm256_dpbusd_epi32(acc, trits(_mm256_set_m128i(q27, q9)), loadu256(y.qs + 192));
    uint32_t qh;
    std::memcpy(&qh, x.qh, 4);
    const __m128i h1 = _mm_set1_epi32(static_cast<int32_t>(qh));
    const __m128i h3 = times3(h1), h9 = times3(h3), h27 = times3(h9);
    const __m128i hv = _mm_blend_epi32(_mm_blend_epi32(h1, h3, 0x2), _mm_blend_epi32(h9, h27, 0x8), 0xC);
    acc = _mm256_dpbusd_epi32(acc, trits(_mm256_set_m128i(hv, q81)), loadu256(y.qs + 224));
    const int32_t isum = hsum_epi32(acc) - bsums_total(y.bsums);
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
    // Codes q (0..3) times q8; the -1 comes off as sum q8.
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i q = loadu256(x.qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; k += 2) {
        acc0 = _mm256_dpbusd_epi32(acc0, _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2),
                                   loadu256(y.qs + 128 * h + 32 * k));
        acc1 = _mm256_dpbusd_epi32(acc1, _mm256_and_si256(_mm256_srli_epi16(q, 2 * k + 2), m2),
                                   loadu256(y.qs + 128 * h + 32 * k + 32));
      }
    }
    const int32_t isum = hsum_epi32(_mm256_add_epi32(acc0, acc1)) - bsums_total(y.bsums);
    sumf += static_cast<float>(isum) * (fp16(x.d) * y.d);
  }
  return sumf;
}

// ---- activation converters ----

void act_quantize_f16(const float* x, void* y, int64_t n) {
  if (n < 0) throw_bad_row(n, 1, "F16");
  auto* h = static_cast<uint16_t*>(y);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  if (i < n) {
    const __mmask16 k = tail_mask16(n - i);
    _mm256_mask_storeu_epi16(h + i, k, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, x + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

void act_quantize_q8_0(const float* x, void* y, int64_t n) {
  if (n < 0 || n % QK8_0 != 0) throw_bad_row(n, QK8_0, "Q8_0");
  auto* b = static_cast<block_q8_0*>(y);
  const __m128i lowest = _mm_set1_epi8(-127);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    b[i].d = _cvtss_sh(amax / 127.f, _MM_FROUND_TO_NEAREST_INT);
    const float id = amax != 0 ? 127.f / amax : 0.0f;
    if (std::isinf(id)) {  // subnormal amax: follow the reference's nint exactly
      for (int j = 0; j < QK8_0; ++j) {
        const int32_t q = quant::nint(x[j] * id);
        b[i].qs[j] = static_cast<int8_t>(q < -127 ? -127 : q > 127 ? 127 : q);
      }
      continue;
    }
    const __m512 idv = _mm512_set1_ps(id);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs), _mm_max_epi8(quantize16(x, idv), lowest));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + 16), _mm_max_epi8(quantize16(x + 16, idv), lowest));
  }
}

void act_quantize_q8_K(const float* x, void* y, int64_t n) {
  if (n < 0 || n % QK_K != 0) throw_bad_row(n, QK_K, "Q8_K");
  auto* b = static_cast<block_q8_K*>(y);
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    __m512 m = _mm512_setzero_ps();
    for (int k = 0; k < QK_K; k += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0) {
      std::memset(&b[i], 0, sizeof(block_q8_K));
      continue;
    }
    // The signed element of largest magnitude, the first one on ties (as the reference).
    const __m512 amaxv = _mm512_set1_ps(amax);
    int idx = 0;
    for (int k = 0; k < QK_K; k += 16) {
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + k)), amaxv, _CMP_EQ_OQ);
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
    const __m512 isv = _mm512_set1_ps(iscale);
    for (int k = 0; k < QK_K; k += 64) {
      const __m512i q = _mm512_inserti32x4(
          _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(quantize16(x + k, isv)), quantize16(x + k + 16, isv), 1),
                             quantize16(x + k + 32, isv), 2),
          quantize16(x + k + 48, isv), 3);
      _mm512_storeu_si512(b[i].qs + k, q);
      // bsums: VPSADBW sums |q + 128| over each 8 bytes; add the pairs, drop 16*128.
      const __m512i s = _mm512_sad_epu8(_mm512_xor_si512(q, bias), _mm512_setzero_si512());
      const __m512i s2 = _mm512_maskz_compress_epi64(0x55, _mm512_add_epi64(s, _mm512_bsrli_epi128(s, 8)));
      const __m128i sums = _mm_sub_epi16(_mm512_cvtepi64_epi16(s2), _mm_set1_epi16(16 * 128));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(b[i].bsums + k / 16), sums);
    }
    b[i].d = 1 / iscale;
  }
}

void act_quantize_q8_1(const float* x, void* y, int64_t n) {
  if (n < 0 || n % QK8_0 != 0) throw_bad_row(n, QK8_0, "Q8_1");
  auto* b = static_cast<block_q8_1*>(y);
  const __m128i lowest = _mm_set1_epi8(-127);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.f;
    b[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const float id = amax != 0 ? 127.f / amax : 0.0f;
    int32_t sum = 0;
    if (std::isinf(id)) {  // subnormal amax: follow the reference's nint exactly
      for (int j = 0; j < QK8_0; ++j) {
        const int32_t q = quant::nint(x[j] * id);
        b[i].qs[j] = static_cast<int8_t>(q < -127 ? -127 : q > 127 ? 127 : q);
        sum += b[i].qs[j];
      }
    } else {
      const __m512 idv = _mm512_set1_ps(id);
      const __m256i q =
          _mm256_set_m128i(_mm_max_epi8(quantize16(x + 16, idv), lowest), _mm_max_epi8(quantize16(x, idv), lowest));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), q);
      sum = hsum_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q));
    }
    b[i].s = _cvtss_sh(d * static_cast<float>(sum), _MM_FROUND_TO_NEAREST_INT);
  }
}

// ---- lookup ----

VecDotFn vec_dot_fn(quant::GgmlType weight_type) {
  using quant::GgmlType;
  // F16: none of its own; the AVX2 kernel is faster where 512-bit VCVTPH2PS is slower per
  // element than two 256-bit ones (Zen 4: 233 vs 142 ns per 4096-element row).
  switch (weight_type) {
    case GgmlType::F32:
      return vec_dot_f32;
    case GgmlType::BF16:
      return has_avx512_bf16() ? vec_dot_bf16_dpbf16 : vec_dot_bf16;
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

}  // namespace hearth::kernels::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#undef HEARTH_AVX512_TARGET

#endif  // x86

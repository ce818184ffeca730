// AVX-512 VNNI kernels for weights in the x16 layout (kernels/gemm.h), tested bit for bit
// against gemm::x16_dot_ref in tests/kernels/gemm_test.cpp (X16KernelsGiveTheReferenceBits).
//
// Lane i of every vector is weight row i of the group. Per 64-byte code record, one VPDPBUSD
// per activation row adds four products of each of the 16 rows against one broadcast
// activation dword; per 32 elements one VPMULLD applies the rows' scales to the exact integer
// sums; per 256-element chunk and activation row two conversions and two FMAs (Q6_K: one). The
// 16 results of an activation row are one vector store: nothing is reduced across lanes.
//
// As in gemm_avx512.cpp, only the functions between the target pragmas are compiled for
// AVX-512, every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/gemm.h"

#if defined(__x86_64__)

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip -Wuninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "quant/blocks.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

namespace hearth::kernels::gemm::avx512 {
namespace {

using quant::block_q8_K;

inline __m512i loadu(const uint8_t* p) { return _mm512_loadu_si512(p); }
/// Four bytes (two int16 activation sums) broadcast to every lane.
inline __m512i bcast(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
/// acc + VPDPBUSD(w, the four activation bytes at p broadcast to every lane), the broadcast
/// folded into the instruction's memory operand ({1to16}: done by the load, no shuffle µop;
/// GCC 12 does not fold _mm512_set1_epi32 of a load into VPDPBUSD by itself).
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const void* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*static_cast<const int32_t*>(p)));
  return acc;
}
/// Group chunks read ahead by software prefetch in the kernels of two or more activation rows.
/// With four rows the kernel computes about as long as DRAM takes to deliver a chunk, and the
/// hardware prefetcher alone did not overlap the two: BM_Gemv/Q4_K/big/t2/rows:4/x16 (151 MB,
/// two threads) took 1.6-1.8x the one-row time without it and 1.0-1.2x with it, alternated in
/// one session; one chunk ahead helped less, four no more. The one-row kernel is left to the
/// hardware prefetcher: prefetching there made `hearth bench` tg64 ~10% slower.
constexpr int64_t kPrefetchChunks = 2;
/// 64-byte lines of a Q6_K group chunk (the last one half used).
constexpr int kQ6KChunkLines = static_cast<int>((kX16ChunkQ6K + 63) / 64);
/// PREFETCHT0 as a volatile asm statement, which GCC's scheduler does not move code across: with
/// _mm_prefetch it gathered a chunk's 36 prefetches at the chunk's start, and the load benchmark
/// (4 slots) gave 38-42 t/s against 49-51 t/s with them interleaved, one per code record.
inline void prefetch(const uint8_t* p) { asm volatile("prefetcht0 %0" : : "m"(*p)); }
inline __m512 f16x16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

template <class F, int... J>
inline void unroll(F&& f, std::integer_sequence<int, J...>) {
  (f(std::integral_constant<int, J>{}), ...);
}

// ---- Q4_K: 2304-byte group chunks (d, dmin, three scale words, 32 code records) ----

template <int NA>
void q4_K_x16(const void* group, int64_t n_chunks, const void* const* act, float* y, int64_t ldy) {
  const auto* base = static_cast<const uint8_t*>(group);
  const block_q8_K* a[NA];
  for (int k = 0; k < NA; ++k) a[k] = static_cast<const block_q8_K*>(act[k]);
  __m512 acc[NA];
  for (int k = 0; k < NA; ++k) acc[k] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), m6 = _mm512_set1_epi32(0x3F), low4 = _mm512_set1_epi32(0x0F),
                high2 = _mm512_set1_epi32(0x30);
  for (int64_t c = 0; c < n_chunks; ++c) {
    const uint8_t* g = base + c * kX16ChunkQ4K;
    const uint8_t* ahead = g + kPrefetchChunks * kX16ChunkQ4K;  // 36 lines: one per code record, four headers
    const __m512 d = f16x16(g), dmin = f16x16(g + 32);
    const __m512i w0 = loadu(g + 64), w1 = loadu(g + 128), w2 = loadu(g + 192);
    __m512i isum[NA], msum[NA];
    for (int k = 0; k < NA; ++k) isum[k] = msum[k] = _mm512_setzero_si512();
    unroll(
        [&](auto jc) {
          constexpr int j = decltype(jc)::value;
          // The 6-bit scale and min of sub-block j (formats.md §2.3, quant::unpack_scale_min_k4)
          // of all 16 rows: bytes j of words w0 / w1 for j < 4, else from w2 and the top bits.
          __m512i sc, mn;
          if constexpr (j < 4) {
            sc = _mm512_and_si512(_mm512_srli_epi32(w0, 8 * j), m6);
            mn = _mm512_and_si512(_mm512_srli_epi32(w1, 8 * j), m6);
          } else {
            constexpr int k = j - 4;
            sc = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 8 * k), low4),
                                 _mm512_and_si512(_mm512_srli_epi32(w0, 8 * k + 2), high2));
            mn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 8 * k + 4), low4),
                                 _mm512_and_si512(_mm512_srli_epi32(w1, 8 * k + 2), high2));
          }
          const __m512i mn2 = _mm512_or_si512(mn, _mm512_slli_epi32(mn, 16));  // (m, m) as int16
          __m512i sub[NA];  // sub-block j's integer sums: low and high nibbles share one chain
          for (int k = 0; k < NA; ++k) sub[k] = _mm512_setzero_si512();
          for (int q = 0; q < 4; ++q) {
            if constexpr (NA >= 2) {
              prefetch(ahead + 256 + 64 * (4 * j + q));
              if (j < 4 && q == 0) prefetch(ahead + 64 * j);
            }
            const __m512i x = loadu(g + 256 + 64 * (4 * j + q));
            const __m512i lo = _mm512_and_si512(x, m4), hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
            for (int k = 0; k < NA; ++k) {
              sub[k] = dpbusd_bcast(sub[k], lo, a[k][c].qs + 32 * j + 4 * q);
              sub[k] = dpbusd_bcast(sub[k], hi, a[k][c].qs + 32 * j + 16 + 4 * q);
            }
          }
          for (int k = 0; k < NA; ++k) {
            isum[k] = _mm512_add_epi32(isum[k], _mm512_mullo_epi32(sub[k], sc));
            msum[k] = _mm512_dpwssd_epi32(msum[k], mn2, bcast(a[k][c].bsums + 2 * j));
          }
        },
        std::make_integer_sequence<int, 8>{});
    for (int k = 0; k < NA; ++k) {
      const __m512 da = _mm512_set1_ps(a[k][c].d);
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k]), _mm512_mul_ps(d, da), acc[k]);
      acc[k] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[k]), _mm512_mul_ps(dmin, da), acc[k]);
    }
  }
  for (int k = 0; k < NA; ++k) _mm512_storeu_ps(y + k * ldy, acc[k]);
}

/// Bits 2q..2q+1 of each byte moved to bits 4..5 (other bits: garbage, masked by the caller).
template <int Q>
inline __m512i high_bits(__m512i h) {
  if constexpr (Q == 3) return _mm512_srli_epi16(h, 2);
  else if constexpr (Q == 2) return h;
  else return _mm512_slli_epi16(h, 4 - 2 * Q);
}

// ---- Q6_K: 3360-byte group chunks (d, scale records, then per run pair its code records) ----

template <int NA>
void q6_K_x16(const void* group, int64_t n_chunks, const void* const* act, float* y, int64_t ldy) {
  const auto* base = static_cast<const uint8_t*>(group);
  const block_q8_K* a[NA];
  for (int k = 0; k < NA; ++k) a[k] = static_cast<const block_q8_K*>(act[k]);
  __m512 acc[NA];
  for (int k = 0; k < NA; ++k) acc[k] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  for (int64_t c = 0; c < n_chunks; ++c) {
    const uint8_t* g = base + c * kX16ChunkQ6K;
    const uint8_t* ahead = g + kPrefetchChunks * kX16ChunkQ6K;  // one or two lines per code record
    __m512i isum[NA];
    for (int k = 0; k < NA; ++k) isum[k] = _mm512_setzero_si512();
    unroll(
        [&](auto pc) {
          constexpr int p = decltype(pc)::value;
          // Runs 2p and 2p+1: lane i's (sc_2p, sc_2p+1) as int16, each alone as int32, and
          // -32 times the pair, which applied to the activation's run sums subtracts the zero
          // point (the integer I of gemm.h in one accumulator).
          const __m512i scp = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 32 + 32 * p)));
          const __m512i sc_even = _mm512_srai_epi32(_mm512_slli_epi32(scp, 16), 16), sc_odd = _mm512_srai_epi32(scp, 16);
          const __m512i zp = _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16(scp, 5));
          const uint8_t* pair = g + 288 + 384 * p;  // four low-bit records, two high-bit records
          const __m512i qh0 = loadu(pair + 256), qh1 = loadu(pair + 320);
          __m512i se[NA], so[NA];
          for (int k = 0; k < NA; ++k) se[k] = so[k] = _mm512_setzero_si512();
          unroll(
              [&](auto qc) {
                constexpr int q = decltype(qc)::value;
                constexpr int line = 4 * p + q;
                if constexpr (NA >= 2) {
                  prefetch(ahead + 64 * line);
                  if constexpr (line + 32 < kQ6KChunkLines) prefetch(ahead + 64 * (line + 32));
                }
                const __m512i x = loadu(pair + 64 * q);
                const __m512i ve = _mm512_or_si512(_mm512_and_si512(x, m4), _mm512_and_si512(high_bits<q>(qh0), m30));
                const __m512i vo = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4), _mm512_and_si512(high_bits<q>(qh1), m30));
                for (int k = 0; k < NA; ++k) {
                  se[k] = dpbusd_bcast(se[k], ve, a[k][c].qs + 32 * p + 4 * q);
                  so[k] = dpbusd_bcast(so[k], vo, a[k][c].qs + 32 * p + 16 + 4 * q);
                }
              },
              std::make_integer_sequence<int, 4>{});
          for (int k = 0; k < NA; ++k) {
            isum[k] = _mm512_add_epi32(isum[k], _mm512_add_epi32(_mm512_mullo_epi32(se[k], sc_even), _mm512_mullo_epi32(so[k], sc_odd)));
            isum[k] = _mm512_dpwssd_epi32(isum[k], zp, bcast(a[k][c].bsums + 2 * p));
          }
        },
        std::make_integer_sequence<int, 8>{});
    const __m512 d = f16x16(g);
    for (int k = 0; k < NA; ++k)
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k]), _mm512_mul_ps(d, _mm512_set1_ps(a[k][c].d)), acc[k]);
  }
  for (int k = 0; k < NA; ++k) _mm512_storeu_ps(y + k * ldy, acc[k]);
}

template <void (*F1)(const void*, int64_t, const void* const*, float*, int64_t),
          void (*F2)(const void*, int64_t, const void* const*, float*, int64_t),
          void (*F3)(const void*, int64_t, const void* const*, float*, int64_t),
          void (*F4)(const void*, int64_t, const void* const*, float*, int64_t)>
void by_n_act(const void* group, int64_t n_chunks, const void* const* act, int n_act, float* y, int64_t ldy) {
  switch (n_act) {
    case 1: F1(group, n_chunks, act, y, ldy); break;
    case 2: F2(group, n_chunks, act, y, ldy); break;
    case 3: F3(group, n_chunks, act, y, ldy); break;
    default: F4(group, n_chunks, act, y, ldy); break;
  }
}

}  // namespace

X16Fn x16_kernel(quant::GgmlType type) {
  switch (type) {
    case quant::GgmlType::Q4_K: return by_n_act<q4_K_x16<1>, q4_K_x16<2>, q4_K_x16<3>, q4_K_x16<4>>;
    case quant::GgmlType::Q6_K: return by_n_act<q6_K_x16<1>, q6_K_x16<2>, q6_K_x16<3>, q6_K_x16<4>>;
    default: return nullptr;
  }
}

}  // namespace hearth::kernels::gemm::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86

// AVX-512 VNNI tile micro-kernels (kernels/gemm.h), tested against gemm::tile_ref in
// tests/kernels/gemm_test.cpp.
//
// Per pair of (weight row, activation row) and 256-element chunk: four VPDPBUSD (u8 weight codes
// x s8 activation codes) leave each 16-element run's exact integer sum in its own int32 lane;
// zero-point types subtract z * C in integers, then one conversion and one FMA with the per-run
// scale product sw * da (scale-min types add ow * asum with a second FMA). The float sums stay in
// 16 lanes until the end of the row. A call handles up to kMaxW x kMaxA pairs, so each weight
// vector is loaded once per kMaxA activation rows and each activation vector once per kMaxW
// weight rows.
//
// As in dot_avx512.cpp, only the functions between the target pragmas are compiled for
// AVX-512, every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/gemm.h"

#if defined(__x86_64__)

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip -Wuninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "quant/fp16.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

namespace hearth::kernels::gemm::avx512 {
namespace {

constexpr int kMaxW = 2;
constexpr int kMaxA = 4;

inline __m512i load512(const void* p) { return _mm512_load_si512(p); }

/// An activation chunk's per-run scales. With a Q8_K partner all 16 are the block's one d
/// (act_to_chunks), so one broadcast replaces the 64-byte load: the same values, one less
/// vector load per pair of rows.
template <bool kUniformDa>
inline __m512 load_da(const AChunk& a) {
  if constexpr (kUniformDa) return _mm512_set1_ps(a.da[0]);
  else return _mm512_load_ps(a.da);
}

template <int NW, int NA, bool kScaleMin, bool kUniformDa>
void tile_fixed(int zero_shift, int64_t n_chunks, const WChunk* const* w, const AChunk* const* a, float* y,
                int64_t ldy) {
  __m512 acc[NW][NA];
  for (int i = 0; i < NW; ++i)
    for (int j = 0; j < NA; ++j) acc[i][j] = _mm512_setzero_ps();
  const __m128i shift = _mm_cvtsi32_si128(zero_shift);
  for (int64_t c = 0; c < n_chunks; ++c) {
    __m512i wv[NW][4];
    for (int i = 0; i < NW; ++i)
      for (int t = 0; t < 4; ++t) wv[i][t] = load512(w[i][c].codes + 64 * t);
    for (int j = 0; j < NA; ++j) {
      const AChunk& ac = a[j][c];
      const __m512i a0 = load512(ac.codes), a1 = load512(ac.codes + 64), a2 = load512(ac.codes + 128),
                    a3 = load512(ac.codes + 192);
      const __m512 da = load_da<kUniformDa>(ac);
      for (int i = 0; i < NW; ++i) {
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[i][0], a0);
        s = _mm512_dpbusd_epi32(s, wv[i][1], a1);
        s = _mm512_dpbusd_epi32(s, wv[i][2], a2);
        s = _mm512_dpbusd_epi32(s, wv[i][3], a3);
        if constexpr (!kScaleMin) s = _mm512_sub_epi32(s, _mm512_sll_epi32(_mm512_load_si512(ac.csum), shift));
        const __m512 scale = _mm512_mul_ps(_mm512_load_ps(w[i][c].sw), da);
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[i][j]);
        if constexpr (kScaleMin) acc[i][j] = _mm512_fmadd_ps(_mm512_load_ps(w[i][c].ow), _mm512_load_ps(ac.asum), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < NW; ++i)
    for (int j = 0; j < NA; ++j) y[i * ldy + j] = _mm512_reduce_add_ps(acc[i][j]);
}

// ---- unpackers: natural-order code vectors, then the lane-order transpose ----

/// Index vectors of the lane-order transpose. Each type's unpacker produces four "natural"
/// vectors A0..A3 of 16 dwords (4 codes each) such that lanes 0..7 of every target vector come
/// from (A0, A1) and lanes 8..15 from (A2, A3) by the same two-source permutation: target t is
/// blend(permutex2var(A0, idx[t], A1), permutex2var(A2, idx[t], A3)).
struct TransposeIndex {
  alignas(64) int32_t idx[4][16];
};

/// Natural vectors hold elements in order (A_k = elements 64k .. 64k+63; Q6_K, Q8_0):
/// dword D = 4L + t of lanes L < 8 is dword D of A0 (D < 16) or dword D-16 of A1.
constexpr TransposeIndex make_natural_index() {
  TransposeIndex ti{};
  for (int t = 0; t < 4; ++t)
    for (int L = 0; L < 16; ++L) {
      const int d = 4 * (L % 8) + t;
      ti.idx[t][L] = d < 16 ? d : 16 + (d - 16);
    }
  return ti;
}

/// Q4_K / Q5_K nibble vectors: A0 = low nibbles of qs[0..63] (dwords 0..7: D 0..7, 8..15:
/// D 16..23), A1 = high nibbles (D 8..15, 24..31); A2, A3 the same for qs[64..127] (+32).
constexpr TransposeIndex make_k4_index() {
  TransposeIndex ti{};
  for (int t = 0; t < 4; ++t)
    for (int L = 0; L < 16; ++L) {
      const int d = 4 * (L % 8) + t;
      ti.idx[t][L] = d < 8 ? d : d < 16 ? 16 + (d - 8) : d < 24 ? 8 + (d - 16) : 24 + (d - 24);
    }
  return ti;
}

/// IQ4_XS / 32-element nibble blocks: A0 = low nibbles of qs[0..63] (dword q: D = 8(q/4) + q%4),
/// A1 = high nibbles (D = 8(q/4) + 4 + q%4); A2, A3 for qs[64..127] (+32).
constexpr TransposeIndex make_block_nibble_index() {
  TransposeIndex ti{};
  for (int t = 0; t < 4; ++t)
    for (int L = 0; L < 16; ++L) {
      const int d = 4 * (L % 8) + t, blk = d / 8, within = d % 8;
      ti.idx[t][L] = within < 4 ? 4 * blk + within : 16 + 4 * blk + within - 4;
    }
  return ti;
}

constexpr TransposeIndex kNaturalIndex = make_natural_index();
constexpr TransposeIndex kK4Index = make_k4_index();
constexpr TransposeIndex kBlockNibbleIndex = make_block_nibble_index();

/// The four natural vectors of a chunk put in lane order (the unpacker's transpose).
inline void transpose_lanes(const __m512i a[4], const TransposeIndex& ti, __m512i w[4]) {
  for (int t = 0; t < 4; ++t) {
    const __m512i idx = _mm512_load_si512(ti.idx[t]);
    w[t] = _mm512_mask_blend_epi32(0xFF00, _mm512_permutex2var_epi32(a[0], idx, a[1]),
                                   _mm512_permutex2var_epi32(a[2], idx, a[3]));
  }
}

inline void transpose_store(const __m512i a[4], const TransposeIndex& ti, uint8_t* codes) {
  __m512i w[4];
  transpose_lanes(a, ti, w);
  for (int t = 0; t < 4; ++t) _mm512_store_si512(codes + 64 * t, w[t]);
}

inline __m512 fp16x16_to_ps(const uint16_t* h) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h))); }

/// Where each lane's scale comes from: lane i of a decoder's sw/ow holds run src[i]. The tile
/// unpackers write lane order (src[i] = i); the single-row kernels take the lanes in the order
/// their run sums come out of the block reduction (NaturalOrder::run_of), so that they need no
/// permutation per chunk.
struct LaneSource {
  alignas(64) int32_t src[16];
};

constexpr LaneSource kLaneOrderSource = [] {
  LaneSource ls{};
  for (int i = 0; i < 16; ++i) ls.src[i] = i;
  return ls;
}();

/// idx[i] = src[i] / 2 (+ `add`): the dword index of a per-32 value in a vector of 8 (or 16).
constexpr LaneSource half_index(const LaneSource& ls, int add) {
  LaneSource out{};
  for (int i = 0; i < 16; ++i) out.src[i] = ls.src[i] / 2 + add;
  return out;
}

/// One chunk decoded into the type's natural vectors (see TransposeIndex) and its per-run
/// scales and offsets, lane i holding run Src.src[i]: exactly the values the scalar unpacker
/// writes for those runs.
struct NaturalChunk {
  __m512i a[4];
  __m512 sw;
  __m512 ow;
};

template <bool kFive, class Block>
struct DecodeK4 {
  static constexpr const TransposeIndex& kIndex = kK4Index;
  static constexpr bool kUniformDa = true;  // Q8_K partner
  static constexpr int64_t kChunkBytes = sizeof(Block);
  template <const LaneSource& Src>
  static void decode(const void* row, int64_t c, NaturalChunk& n) {
    static constexpr LaneSource kSc = half_index(Src, 0), kMin = half_index(Src, 8);
    const Block& b = static_cast<const Block*>(row)[c];
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_loadu_si512(b.qs), hi = _mm512_loadu_si512(b.qs + 64);
    n.a[0] = _mm512_and_si512(lo, m4);
    n.a[1] = _mm512_and_si512(_mm512_srli_epi16(lo, 4), m4);
    n.a[2] = _mm512_and_si512(hi, m4);
    n.a[3] = _mm512_and_si512(_mm512_srli_epi16(hi, 4), m4);
    if constexpr (kFive) {
      // Bit 4 of element 32j + l is bit j of qh[l]: vector k holds sub-blocks j = 4(k/2) + k%2
      // (bytes 0..31) and j + 2 (bytes 32..63).
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh)));
      const __m512i bit4 = _mm512_set1_epi8(0x10);
      for (int k = 0; k < 4; ++k) {
        const int j = 4 * (k / 2) + k % 2;
        const __m512i sel = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi8(static_cast<char>(1 << j)),
                                                    _mm512_set1_epi8(static_cast<char>(1 << (j + 2))));
        n.a[k] = _mm512_or_si512(n.a[k], _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(qh, sel), bit4));
      }
    }
    // The 6-bit scales and mins (formats.md §2.3), with dwords w0, w1, w2 of the 12-byte field:
    // sc_0..3 = w0 & 0x3F, sc_4..7 = (w2 & 0x0F) | (w0 >> 2 & 0x30), m_0..3 = w1 & 0x3F,
    // m_4..7 = (w2 >> 4 & 0x0F) | (w1 >> 2 & 0x30), per byte; quant::unpack_scales_mins_k4 is the
    // scalar form. The field is followed by other block bytes, so a 16-byte load stays inside.
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    const __m128i lowp = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(x, 0x98), _mm_setr_epi32(0, 0, 0, 4)),
                                       _mm_setr_epi32(0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F));
    const __m128i highp = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(x, 0x50), _mm_setr_epi32(0, 2, 0, 2)),
                                        _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    const __m512 scm = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_or_si128(lowp, highp)));  // sc_0..7, m_0..7
    n.sw = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b.d)), _mm512_permutexvar_ps(_mm512_load_si512(kSc.src), scm));
    n.ow = _mm512_mul_ps(_mm512_set1_ps(-_cvtsh_ss(b.dmin)), _mm512_permutexvar_ps(_mm512_load_si512(kMin.src), scm));
  }
};

struct DecodeQ6K {
  static constexpr const TransposeIndex& kIndex = kNaturalIndex;
  static constexpr bool kUniformDa = true;  // Q8_K partner
  static constexpr int64_t kChunkBytes = sizeof(quant::block_q6_K);
  template <const LaneSource& Src>
  static void decode(const void* row, int64_t c, NaturalChunk& n) {
    const quant::block_q6_K& b = static_cast<const quant::block_q6_K*>(row)[c];
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
      // High 2 bits (qh >> 2g) & 3 moved to bits 4..5: g = 0: << 4, 1: << 2, 2: as is, 3: >> 2.
      const __m512i h01 = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), 0xFFFF0000u, qh, 2);
      const __m512i h23 = _mm512_mask_srli_epi16(qh, 0xFFFF0000u, qh, 2);
      n.a[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(h01, m2));  // elements 128h + 0..63
      n.a[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(h23, m2));
    }
    __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    if constexpr (&Src != &kLaneOrderSource) {
      static constexpr auto kBytes = [] {
        struct { alignas(16) int8_t b[16]; } r{};
        for (int i = 0; i < 16; ++i) r.b[i] = static_cast<int8_t>(Src.src[i]);
        return r;
      }();
      sc8 = _mm_shuffle_epi8(sc8, _mm_load_si128(reinterpret_cast<const __m128i*>(kBytes.b)));
    }
    n.sw = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b.d)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc8)));
    n.ow = _mm512_setzero_ps();
  }
};

struct DecodeIq4Xs {
  static constexpr const TransposeIndex& kIndex = kBlockNibbleIndex;
  static constexpr bool kUniformDa = true;  // Q8_K partner
  static constexpr int64_t kChunkBytes = sizeof(quant::block_iq4_xs);
  template <const LaneSource& Src>
  static void decode(const void* row, int64_t c, NaturalChunk& n) {
    static constexpr LaneSource kHalf = half_index(Src, 0);
    const quant::block_iq4_xs& b = static_cast<const quant::block_iq4_xs*>(row)[c];
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    // kValuesIq4nl + 128 (formats.md §2.4), as unsigned codes.
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, static_cast<char>(129),
                                                             static_cast<char>(141), static_cast<char>(153),
                                                             static_cast<char>(166), static_cast<char>(181),
                                                             static_cast<char>(197), static_cast<char>(217),
                                                             static_cast<char>(241)));
    const __m512i lo = _mm512_loadu_si512(b.qs), hi = _mm512_loadu_si512(b.qs + 64);
    n.a[0] = _mm512_shuffle_epi8(lut, _mm512_and_si512(lo, m4));
    n.a[1] = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(lo, 4), m4));
    n.a[2] = _mm512_shuffle_epi8(lut, _mm512_and_si512(hi, m4));
    n.a[3] = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(hi, 4), m4));
    // Eight 6-bit scales: low nibbles in scales_l, high 2 bits in scales_h (formats.md §2.4).
    const uint32_t sl = static_cast<uint32_t>(b.scales_l[0]) | static_cast<uint32_t>(b.scales_l[1]) << 8 |
                        static_cast<uint32_t>(b.scales_l[2]) << 16 | static_cast<uint32_t>(b.scales_l[3]) << 24;
    const __m256i ib = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i nib = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(sl)), _mm256_slli_epi32(ib, 2)),
                                         _mm256_set1_epi32(0x0F));
    const __m256i high = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(b.scales_h), _mm256_slli_epi32(ib, 1)),
                                          _mm256_set1_epi32(3));
    const __m256 ls = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_or_si256(nib, _mm256_slli_epi32(high, 4)),
                                                          _mm256_set1_epi32(32)));
    n.sw = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b.d)),
                         _mm512_permutexvar_ps(_mm512_load_si512(kHalf.src), _mm512_castps256_ps512(ls)));
    n.ow = _mm512_setzero_ps();
  }
};

/// Q8_0 rows whose length is a multiple of 256 (others use the scalar unpacker).
struct DecodeQ8_0 {
  static constexpr const TransposeIndex& kIndex = kNaturalIndex;
  static constexpr bool kUniformDa = false;  // Q8_0 partner: a scale per 32
  static constexpr int64_t kChunkBytes = 8 * sizeof(quant::block_q8_0);
  template <const LaneSource& Src>
  static void decode(const void* row, int64_t c, NaturalChunk& n) {
    static constexpr LaneSource kHalf = half_index(Src, 0);
    const quant::block_q8_0* b = static_cast<const quant::block_q8_0*>(row) + 8 * c;
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < 4; ++k) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[2 * k].qs));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[2 * k + 1].qs));
      n.a[k] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1), flip);
    }
    // The eight F16 block scales (34 bytes apart), converted with F16C.
    const __m128i h = _mm_setr_epi16(static_cast<short>(b[0].d), static_cast<short>(b[1].d),
                                     static_cast<short>(b[2].d), static_cast<short>(b[3].d),
                                     static_cast<short>(b[4].d), static_cast<short>(b[5].d),
                                     static_cast<short>(b[6].d), static_cast<short>(b[7].d));
    n.sw = _mm512_permutexvar_ps(_mm512_load_si512(kHalf.src), _mm512_castps256_ps512(_mm256_cvtph_ps(h)));
    n.ow = _mm512_setzero_ps();
  }
};

/// kLanes: rows in the lane layout (gemm.h), whose decoded vectors are already in lane order.
template <class Decode, bool kLanes = false>
void unpack(const void* row, int64_t n_in, WChunk* out) {
  NaturalChunk n;
  for (int64_t c = 0; c < n_in / kChunk; ++c) {
    Decode::template decode<kLaneOrderSource>(row, c, n);
    if constexpr (kLanes) {
      for (int t = 0; t < 4; ++t) _mm512_store_si512(out[c].codes + 64 * t, n.a[t]);
    } else {
      transpose_store(n.a, Decode::kIndex, out[c].codes);
    }
    _mm512_store_ps(out[c].sw, n.sw);
    _mm512_store_ps(out[c].ow, n.ow);
  }
}

// ---- single-row products (GEMV) with the tile arithmetic ----

/// Where each natural code byte comes from in lane order, and which run each lane of the block
/// reduction below holds, derived from a TransposeIndex.
struct NaturalOrder {
  uint8_t lane_byte[4][64];  ///< natural vector k, byte m <- lane-order byte lane_byte[k][m]
  LaneSource run_of;         ///< lane 4j + k of the block sums holds run run_of.src[4j + k] (block j of vector k)
  LaneSource lane_of;        ///< the inverse: run L is in lane lane_of.src[L]
};

constexpr NaturalOrder make_natural_order(const TransposeIndex& ti) {
  NaturalOrder no{};
  for (int t = 0; t < 4; ++t)
    for (int L = 0; L < 16; ++L) {
      const int v = ti.idx[t][L];
      const int k = (L < 8 ? 0 : 2) + (v >= 16 ? 1 : 0), q = v % 16;
      for (int b = 0; b < 4; ++b) no.lane_byte[k][4 * q + b] = static_cast<uint8_t>(64 * t + 4 * L + b);
      no.run_of.src[4 * (q / 4) + k] = L;  // every dword of block q/4 of vector k belongs to run L
      no.lane_of.src[L] = 4 * (q / 4) + k;
    }
  return no;
}

constexpr NaturalOrder kK4Order = make_natural_order(kK4Index);
constexpr NaturalOrder kNaturalOrder = make_natural_order(kNaturalIndex);
constexpr NaturalOrder kBlockNibbleOrder = make_natural_order(kBlockNibbleIndex);

template <class Decode>
constexpr const NaturalOrder& natural_order() {
  if constexpr (&Decode::kIndex == &kK4Index) return kK4Order;
  else if constexpr (&Decode::kIndex == &kNaturalIndex) return kNaturalOrder;
  else return kBlockNibbleOrder;
}

/// dot(weight row, activation) with exactly the tile kernel's arithmetic: the same exact run
/// sums and the same float operations per run, so a row gives the same bits alone as in any
/// batch. The run sums come out of the block reduction in the order NaturalOrder::run_of, and so
/// do the scales (decoded in that order) and the activation's da/asum/csum (arranged so by the
/// caller); the accumulator is put back in lane order once, before the tile kernel's final sum.
/// One row at a time, without software prefetch: interleaving two rows measured 2.5x slower
/// from DRAM on Zen 4, prefetching 8 chunks ahead up to 1.6x slower (bench/gemv_bench.cpp).
///
/// kNa activation rows at once (a decode step of kNa sequences): each weight chunk is decoded
/// once into registers and multiplied by every activation row, each with its own accumulator
/// and exactly the one-row arithmetic, so y[j * ldy] has the bits of the row alone.
template <class Decode, bool kScaleMin, int kNa>
void gemv_row(const void* row, int64_t n_chunks, int zero_shift, const AChunk* const* ac, float* y, int64_t ldy) {
  static constexpr const NaturalOrder& no = natural_order<Decode>();
  const __m128i shift = _mm_cvtsi32_si128(zero_shift);
  __m512 acc[kNa];
  for (int j = 0; j < kNa; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t c = 0; c < n_chunks; ++c) {
    NaturalChunk n;
    Decode::template decode<no.run_of>(row, c, n);
    for (int j = 0; j < kNa; ++j) {
      const AChunk& a = ac[j][c];
      __m512i p[4];
      for (int k = 0; k < 4; ++k) p[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), n.a[k], load512(a.codes + 64 * k));
      // Sum each 128-bit block: lane 4j + k <- sum of block j of p[k].
      const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
      const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
      __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
      if constexpr (!kScaleMin) s = _mm512_sub_epi32(s, _mm512_sll_epi32(_mm512_load_si512(a.csum), shift));
      const __m512 scale = _mm512_mul_ps(n.sw, load_da<Decode::kUniformDa>(a));
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[j]);
      if constexpr (kScaleMin) acc[j] = _mm512_fmadd_ps(n.ow, _mm512_load_ps(a.asum), acc[j]);
    }
  }
  const __m512i lanes = _mm512_load_si512(no.lane_of.src);
  for (int j = 0; j < kNa; ++j) y[j * ldy] = _mm512_reduce_add_ps(_mm512_permutexvar_ps(lanes, acc[j]));
}

template <class Decode, bool kScaleMin>
void gemv(const void* const* rows, int n_rows_w, int64_t n_chunks, int zero_shift, const AChunk* const* act, int n_act,
          float* y, int64_t ldy) {
  for (int j = 0; j < n_act; ++j)
    for (int i = 0; i < n_rows_w; ++i)
      gemv_row<Decode, kScaleMin, 1>(rows[i], n_chunks, zero_shift, act + j, y + j * ldy + i, ldy);
}

/// kNa activation rows (lane order, as the tile kernel takes them) times one weight row: each
/// chunk is decoded and transposed to lane order in registers (the unpacker's transpose, without
/// the store), then multiplied as tile_fixed<1, kNa> does: four chained VPDPBUSD per activation
/// row give the 16 run sums with no reduction, and the float arithmetic and final sum are the
/// tile kernel's, so every row has the bits it gets in a batch.
constexpr int64_t kPrefetchChunks = 16;

///
/// kLanes: the row is in the lane layout (gemm.h), so the decoded vectors are already in lane
/// order and the transpose is skipped; the arithmetic, and so the bits, are the same.
template <class Decode, bool kScaleMin, int kNa, bool kLanes>
void gemv_lanes_row(const void* row, int64_t n_chunks, int zero_shift, const AChunk* const* ac, float* y, int64_t ldy) {
  const __m128i shift = _mm_cvtsi32_si128(zero_shift);
  __m512 acc[kNa];
  for (int j = 0; j < kNa; ++j) acc[j] = _mm512_setzero_ps();
  const char* bytes = static_cast<const char*>(row);
  for (int64_t c = 0; c < n_chunks; ++c) {
    // The weights come from DRAM at the pace of kNa rows of arithmetic: fetch ahead.
    if constexpr (kNa > 1)
      for (int64_t b = 0; b < Decode::kChunkBytes; b += 64) _mm_prefetch(bytes + (c + kPrefetchChunks) * Decode::kChunkBytes + b, _MM_HINT_T0);
    NaturalChunk n;
    Decode::template decode<kLaneOrderSource>(row, c, n);
    __m512i wv[4];
    if constexpr (kLanes) {
      for (int t = 0; t < 4; ++t) wv[t] = n.a[t];
    } else {
      transpose_lanes(n.a, Decode::kIndex, wv);
    }
    for (int j = 0; j < kNa; ++j) {
      const AChunk& a = ac[j][c];
      // Two chains of two (the integer run sums are exact in any order): half the latency.
      const __m512i s0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[0], load512(a.codes)), wv[2],
                                             load512(a.codes + 128));
      const __m512i s1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[1], load512(a.codes + 64)),
                                             wv[3], load512(a.codes + 192));
      __m512i s = _mm512_add_epi32(s0, s1);
      if constexpr (!kScaleMin) s = _mm512_sub_epi32(s, _mm512_sll_epi32(_mm512_load_si512(a.csum), shift));
      const __m512 scale = _mm512_mul_ps(n.sw, load_da<Decode::kUniformDa>(a));
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[j]);
      if constexpr (kScaleMin) acc[j] = _mm512_fmadd_ps(n.ow, _mm512_load_ps(a.asum), acc[j]);
    }
  }
  for (int j = 0; j < kNa; ++j) y[j * ldy] = _mm512_reduce_add_ps(acc[j]);
}

template <class Decode, bool kScaleMin, bool kLanes>
void gemv_lanes(const void* const* rows, int n_rows_w, int64_t n_chunks, int zero_shift, const AChunk* const* act,
                int n_act, float* y, int64_t ldy) {
  for (int j0 = 0; j0 < n_act; j0 += kMaxGemvAct) {
    const int na = std::min(kMaxGemvAct, n_act - j0);
    const AChunk* const* a = act + j0;
    for (int i = 0; i < n_rows_w; ++i) {
      float* yi = y + j0 * ldy + i;
      switch (na) {
        case 1: gemv_lanes_row<Decode, kScaleMin, 1, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        case 2: gemv_lanes_row<Decode, kScaleMin, 2, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        case 3: gemv_lanes_row<Decode, kScaleMin, 3, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        case 4: gemv_lanes_row<Decode, kScaleMin, 4, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        case 5: gemv_lanes_row<Decode, kScaleMin, 5, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        case 6: gemv_lanes_row<Decode, kScaleMin, 6, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        case 7: gemv_lanes_row<Decode, kScaleMin, 7, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
        default: gemv_lanes_row<Decode, kScaleMin, 8, kLanes>(rows[i], n_chunks, zero_shift, a, yi, ldy); break;
      }
    }
  }
}

template <class Decode, bool kScaleMin>
constexpr GemvKernel make_gemv() {
  return GemvKernel{gemv<Decode, kScaleMin>, &natural_order<Decode>().lane_byte[0][0], natural_order<Decode>().run_of.src,
                    gemv_lanes<Decode, kScaleMin, false>};
}

/// For rows in the lane layout: one kernel for one row and for several, activations in lane order.
template <class Decode, bool kScaleMin>
constexpr GemvKernel make_gemv_lanes() {
  return GemvKernel{gemv_lanes<Decode, kScaleMin, true>, nullptr, nullptr, gemv_lanes<Decode, kScaleMin, true>};
}

UnpackFn fast_unpack(quant::GgmlType type, int64_t n_in) {
  switch (type) {
    case quant::GgmlType::Q4_K:
      return unpack<DecodeK4<false, quant::block_q4_K>>;
    case quant::GgmlType::Q5_K:
      return unpack<DecodeK4<true, quant::block_q5_K>>;
    case quant::GgmlType::Q6_K:
      return unpack<DecodeQ6K>;
    case quant::GgmlType::IQ4_XS:
      return unpack<DecodeIq4Xs>;
    case quant::GgmlType::Q8_0:
      return n_in % kChunk == 0 ? unpack<DecodeQ8_0> : nullptr;
    default:
      return nullptr;
  }
}

constexpr GemvKernel kGemvQ4K = make_gemv<DecodeK4<false, quant::block_q4_K>, true>();
constexpr GemvKernel kGemvQ5K = make_gemv<DecodeK4<true, quant::block_q5_K>, true>();
constexpr GemvKernel kGemvQ6K = make_gemv<DecodeQ6K, false>();
constexpr GemvKernel kGemvIq4Xs = make_gemv<DecodeIq4Xs, false>();
constexpr GemvKernel kGemvQ8_0 = make_gemv<DecodeQ8_0, false>();

const GemvKernel* fast_gemv(quant::GgmlType type, int64_t n_in) {
  switch (type) {
    case quant::GgmlType::Q4_K:
      return &kGemvQ4K;
    case quant::GgmlType::Q5_K:
      return &kGemvQ5K;
    case quant::GgmlType::Q6_K:
      return &kGemvQ6K;
    case quant::GgmlType::IQ4_XS:
      return &kGemvIq4Xs;
    case quant::GgmlType::Q8_0:
      return n_in % kChunk == 0 ? &kGemvQ8_0 : nullptr;
    default:
      return nullptr;
  }
}

constexpr GemvKernel kGemvLanesQ4K = make_gemv_lanes<DecodeK4<false, quant::block_q4_K>, true>();
constexpr GemvKernel kGemvLanesQ5K = make_gemv_lanes<DecodeK4<true, quant::block_q5_K>, true>();
constexpr GemvKernel kGemvLanesQ6K = make_gemv_lanes<DecodeQ6K, false>();
constexpr GemvKernel kGemvLanesIq4Xs = make_gemv_lanes<DecodeIq4Xs, false>();
constexpr GemvKernel kGemvLanesQ8_0 = make_gemv_lanes<DecodeQ8_0, false>();

// Rows in the lane layout (has_lane_layout): the decoders read them as they read the file's
// layout, and what comes out is in lane order.
UnpackFn fast_unpack_lanes(quant::GgmlType type, int64_t n_in) {
  if (!has_lane_layout(type, n_in)) return nullptr;
  switch (type) {
    case quant::GgmlType::Q4_K: return unpack<DecodeK4<false, quant::block_q4_K>, true>;
    case quant::GgmlType::Q5_K: return unpack<DecodeK4<true, quant::block_q5_K>, true>;
    case quant::GgmlType::Q6_K: return unpack<DecodeQ6K, true>;
    case quant::GgmlType::IQ4_XS: return unpack<DecodeIq4Xs, true>;
    case quant::GgmlType::Q8_0: return unpack<DecodeQ8_0, true>;
    default: return nullptr;
  }
}

const GemvKernel* fast_gemv_lanes(quant::GgmlType type, int64_t n_in) {
  if (!has_lane_layout(type, n_in)) return nullptr;
  switch (type) {
    case quant::GgmlType::Q4_K: return &kGemvLanesQ4K;
    case quant::GgmlType::Q5_K: return &kGemvLanesQ5K;
    case quant::GgmlType::Q6_K: return &kGemvLanesQ6K;
    case quant::GgmlType::IQ4_XS: return &kGemvLanesIq4Xs;
    case quant::GgmlType::Q8_0: return &kGemvLanesQ8_0;
    default: return nullptr;
  }
}

// ---- repacking into the lane layout (gemm.h), byte-identical to gemm::to_lane_layout ----

/// Writes the low nibbles of four code vectors into a 128-byte nibble field the way the K4 and
/// IQ4_XS decoders read it back: byte m of vector 2h + s is nibble s of qs[64h + m].
inline void store_nibbles(const __m512i w[4], uint8_t* qs) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int h = 0; h < 2; ++h) {
    const __m512i lo = _mm512_and_si512(w[2 * h], m4), hi = _mm512_and_si512(w[2 * h + 1], m4);
    _mm512_storeu_si512(qs + 64 * h, _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4)));
  }
}

/// The four natural nibble vectors of a 128-byte nibble field (Q4_K, Q5_K low bits, IQ4_XS indices).
inline void load_nibbles(const uint8_t* qs, __m512i a[4]) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int h = 0; h < 2; ++h) {
    const __m512i x = _mm512_loadu_si512(qs + 64 * h);
    a[2 * h] = _mm512_and_si512(x, m4);
    a[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
  }
}

/// Q4_K and IQ4_XS: the codes are the nibble field alone (`qs`), read in the order `kIndex` gives.
template <class Block, const TransposeIndex& kIndex>
void repack_nibbles(uint8_t* chunk) {
  auto& b = *reinterpret_cast<Block*>(chunk);
  __m512i a[4], w[4];
  load_nibbles(b.qs, a);
  transpose_lanes(a, kIndex, w);
  store_nibbles(w, b.qs);
}

void repack_q5_k(uint8_t* chunk) {
  auto& b = *reinterpret_cast<quant::block_q5_K*>(chunk);
  NaturalChunk n;
  DecodeK4<true, quant::block_q5_K>::decode<kLaneOrderSource>(chunk, 0, n);
  __m512i w[4];
  transpose_lanes(n.a, kK4Index, w);
  store_nibbles(w, b.qs);
  // Bit 4 of vector k byte m goes to bit j = 4(k/2) + k%2 + 2(m/32) of qh[m % 32] (DecodeK4).
  __m256i qh = _mm256_setzero_si256();
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  for (int k = 0; k < 4; ++k) {
    const uint64_t mask = _mm512_test_epi8_mask(w[k], bit4);
    for (int half = 0; half < 2; ++half) {
      const int j = 4 * (k / 2) + k % 2 + 2 * half;
      qh = _mm256_or_si256(qh, _mm256_maskz_mov_epi8(static_cast<__mmask32>(mask >> (32 * half)),
                                                     _mm256_set1_epi8(static_cast<char>(1 << j))));
    }
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qh), qh);
}

void repack_q6_k(uint8_t* chunk) {
  auto& b = *reinterpret_cast<quant::block_q6_K*>(chunk);
  NaturalChunk n;
  DecodeQ6K::decode<kLaneOrderSource>(chunk, 0, n);
  __m512i w[4];
  transpose_lanes(n.a, kNaturalIndex, w);
  store_nibbles(w, b.ql);
  // High 2 bits of vector 2h + s byte m go to bits 2(2s + m/32) of qh[32h + m % 32] (DecodeQ6K).
  const __m512i m3 = _mm512_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m512i x0 = _mm512_and_si512(_mm512_srli_epi16(w[2 * h], 4), m3);
    const __m512i x1 = _mm512_and_si512(_mm512_srli_epi16(w[2 * h + 1], 4), m3);
    const __m512i y = _mm512_or_si512(x0, _mm512_slli_epi16(x1, 4));  // bits 0-1: s = 0, bits 4-5: s = 1
    const __m256i q = _mm256_or_si256(_mm512_castsi512_si256(y), _mm256_slli_epi16(_mm512_extracti64x4_epi64(y, 1), 2));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qh + 32 * h), q);
  }
}

void repack_q8_0(uint8_t* chunk) {
  auto* b = reinterpret_cast<quant::block_q8_0*>(chunk);
  NaturalChunk n;
  DecodeQ8_0::decode<kLaneOrderSource>(chunk, 0, n);
  __m512i w[4];
  transpose_lanes(n.a, kNaturalIndex, w);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int k = 0; k < 4; ++k) {
    const __m512i x = _mm512_xor_si512(w[k], flip);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[2 * k].qs), _mm512_castsi512_si256(x));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[2 * k + 1].qs), _mm512_extracti64x4_epi64(x, 1));
  }
}

/// Rewrites `n_rows` rows of `n_in` elements, `row_bytes` apart, into the lane layout in place.
template <void (*kRepack)(uint8_t*), size_t kChunkBytes>
void repack_rows(uint8_t* data, int64_t n_rows, int64_t n_in, size_t row_bytes) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t c = 0; c < n_in / kChunk; ++c) kRepack(data + static_cast<size_t>(r) * row_bytes + c * kChunkBytes);
}

RepackFn fast_repack(quant::GgmlType type, int64_t n_in) {
  if (!has_lane_layout(type, n_in)) return nullptr;
  switch (type) {
    case quant::GgmlType::Q4_K: return repack_rows<repack_nibbles<quant::block_q4_K, kK4Index>, sizeof(quant::block_q4_K)>;
    case quant::GgmlType::Q5_K: return repack_rows<repack_q5_k, sizeof(quant::block_q5_K)>;
    case quant::GgmlType::Q6_K: return repack_rows<repack_q6_k, sizeof(quant::block_q6_K)>;
    case quant::GgmlType::IQ4_XS: return repack_rows<repack_nibbles<quant::block_iq4_xs, kBlockNibbleIndex>, sizeof(quant::block_iq4_xs)>;
    case quant::GgmlType::Q8_0: return repack_rows<repack_q8_0, 8 * sizeof(quant::block_q8_0)>;
    default: return nullptr;
  }
}

using FixedFn = void (*)(int, int64_t, const WChunk* const*, const AChunk* const*, float*, int64_t);

template <bool kScaleMin, bool kU>
constexpr FixedFn kTable[kMaxW][kMaxA] = {
    {tile_fixed<1, 1, kScaleMin, kU>, tile_fixed<1, 2, kScaleMin, kU>, tile_fixed<1, 3, kScaleMin, kU>,
     tile_fixed<1, 4, kScaleMin, kU>},
    {tile_fixed<2, 1, kScaleMin, kU>, tile_fixed<2, 2, kScaleMin, kU>, tile_fixed<2, 3, kScaleMin, kU>,
     tile_fixed<2, 4, kScaleMin, kU>},
};

void tile(const WeightFormat& fmt, int64_t n_chunks, const WChunk* const* w, int n_w, const AChunk* const* a, int n_a,
          float* y, int64_t ldy) {
  const bool uniform = fmt.act_type == quant::GgmlType::Q8_K;
  const FixedFn fn = fmt.scale_min ? (uniform ? kTable<true, true> : kTable<true, false>)[n_w - 1][n_a - 1]
                                   : (uniform ? kTable<false, true> : kTable<false, false>)[n_w - 1][n_a - 1];
  fn(fmt.zero_shift, n_chunks, w, a, y, ldy);
}

}  // namespace

X16Fn x16_kernel(quant::GgmlType type);  // gemm_x16_avx512.cpp

extern const TileKernels kTileKernels;
const TileKernels kTileKernels{tile,      kMaxW,           kMaxA,           fast_unpack, fast_gemv, fast_unpack_lanes,
                               fast_gemv_lanes, fast_repack, x16_kernel};

}  // namespace hearth::kernels::gemm::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86

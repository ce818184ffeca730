// Tiled matrix multiplication for prompt batches (GEMM): weights and activations are unpacked
// into a common 8-bit "lane order" tile format, and one micro-kernel multiplies tiles of every
// weight type.
//
// Why: a row-by-row dot product (kernels/dot.h) decodes a weight block for every activation row
// it meets. For a batch of many rows, hearth decodes each weight row once into codes laid out so
// that one VPDPBUSD (u8 x s8, four products summed per int32 lane) accumulates each 16-element
// run of the row in its own lane; the per-run scales then apply as one float vector per
// 256-element chunk, and the same decoded row serves every activation row of the batch.
//
// Lane order (kLaneOrder): within a chunk of 256 elements, code byte 64t + 4L + b (t < 4, L < 16,
// b < 4) holds element 16L + 4t + b, so lane L of each of the four 64-byte vectors covers run L
// (elements 16L .. 16L+15) and the integer sum over the four vectors is that run's dot product.
//
// Arithmetic (source: formats.md §2 for each type's value formula, §2.7 for the partners): a
// weight row is w_e = sw[L] * (u_e - z) (zero-point types: z = 2^zero_shift) or
// w_e = sw[L] * u_e + ow[L] (scale-min types: Q4_K, Q5_K, Q2_K), with u_e the unsigned code; an
// activation row is a_e = da[L] * c_e with c_e the partner format's signed code (Q8_K or Q8_0,
// exactly as act_quantize_fn writes them). Per run:
//   zero point: sw*da * (S - z*C),   scale-min: sw*da * S + ow * (da*C),
// where S = sum u_e c_e and C = sum c_e over the run are exact integers. The result equals the
// scalar vec_dot reference up to float summation order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/threadpool.h"
#include "quant/types.h"

namespace hearth::kernels::gemm {

/// Elements per chunk (the K-quant super-block; 32-element formats use 8 blocks per chunk).
inline constexpr int64_t kChunk = 256;
/// Runs (lanes) per chunk: one per 16 elements.
inline constexpr int kLanes = 16;

/// One 256-element chunk of a weight row in lane order (384 bytes, 64-byte aligned).
struct alignas(64) WChunk {
  uint8_t codes[kChunk];  ///< unsigned codes u, lane order
  float sw[kLanes];       ///< per-run scale
  float ow[kLanes];       ///< per-run offset (scale-min types; 0 for zero-point types)
};
static_assert(sizeof(WChunk) == 384);

/// One 256-element chunk of an activation row in lane order (448 bytes, 64-byte aligned).
struct alignas(64) AChunk {
  int8_t codes[kChunk];  ///< signed codes c, lane order (0 past the end of the row)
  float da[kLanes];      ///< per-run activation scale (0 past the end of the row)
  float asum[kLanes];    ///< da * C (C: sum of the run's codes)
  int32_t csum[kLanes];  ///< C
};
static_assert(sizeof(AChunk) == 448);

/// Unpacks the chunks of one weight row (`n_in` elements) into `out` (n_chunks(n_in) chunks).
using UnpackFn = void (*)(const void* row, int64_t n_in, WChunk* out);

/// How a weight type maps to tiles.
struct WeightFormat {
  quant::GgmlType act_type = quant::GgmlType::Q8_K;  ///< partner format of the activations (Q8_K or Q8_0)
  bool scale_min = false;                            ///< w = sw*u + ow (else w = sw*(u - 2^zero_shift))
  int zero_shift = 0;                                ///< log2 of the zero point z (zero-point types)
  /// Unpacks `n_chunks` chunks of one weight row (`n_in` elements, n_in <= 256 n_chunks) into
  /// `out`; elements past n_in get code 0 and scale 0.
  UnpackFn unpack = nullptr;
};

/// The tile format of weights of `type` with the scalar unpacker, or nullptr if hearth has no
/// tiled path for that type (callers then use row-by-row dot products).
/// Types: Q4_0, Q5_0, Q8_0, IQ4_NL (Q8_0 partner); Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS (Q8_K).
const WeightFormat* weight_format(quant::GgmlType type);

/// Number of chunks of a row of `n_in` elements.
inline int64_t n_chunks(int64_t n_in) { return (n_in + kChunk - 1) / kChunk; }

/// Scalar reference: converts one activation row already quantized to `act_type` (Q8_K or
/// Q8_0; `n_in` elements, a multiple of that type's block size) into n_chunks(n_in) chunks.
void act_to_chunks(quant::GgmlType act_type, const void* act_row, int64_t n_in, AChunk* out);

/// Scalar reference micro-kernel: y[i*ldy + j] = dot(weight row w[i], activation row a[j]) for
/// i < n_w, j < n_a, each row `n_chunks` chunks long; `fmt` gives the arithmetic.
void tile_ref(const WeightFormat& fmt, int64_t n_chunks, const WChunk* const* w, int n_w, const AChunk* const* a,
              int n_a, float* y, int64_t ldy);

/// Most activation rows a GEMV kernel multiplies per pass over the weights (decode steps of up
/// to this many sequences read each weight once).
inline constexpr int kMaxGemvAct = 8;

/// Products of one or a few activation rows (GEMV, decode steps) with the tile arithmetic:
/// y[j * ldy + i] = dot(rows[i], activation j) for n_rows_w weight rows of n_chunks chunks and
/// n_act activation rows, bit-identical to the tile kernel for the same pair, each weight chunk
/// decoded straight into registers (no tile buffer).
struct GemvKernel {
  /// For one activation row: the weights stay in the type's natural order and `act[j]` is
  /// activation j's chunks rearranged for this kernel: codes in natural order (codes[p] =
  /// lane-order code natural_from_lane[p] of the same chunk) and the per-run da, asum and csum
  /// in the order the kernel's run sums come out (lane i holds run run_of[i]).
  void (*fn)(const void* const* rows, int n_rows_w, int64_t n_chunks, int zero_shift, const AChunk* const* act,
             int n_act, float* y, int64_t ldy) = nullptr;
  const uint8_t* natural_from_lane = nullptr;  ///< 256 byte positions within a chunk
  const int32_t* run_of = nullptr;             ///< 16 runs
  /// For 2 .. kMaxGemvAct activation rows: each weight chunk is decoded once, transposed to lane
  /// order in registers and multiplied by every row; `act[j]` in lane order (act_to_chunks).
  void (*multi)(const void* const* rows, int n_rows_w, int64_t n_chunks, int zero_shift, const AChunk* const* act,
                int n_act, float* y, int64_t ldy) = nullptr;
};

/// The lane layout ("repacked" weights): a weight row whose every 256-element chunk holds the
/// same bytes as the file's block(s) except that the quantized codes are permuted, so that the
/// type's SIMD decoder, reading the block as if it were in the file's layout, produces the four
/// 64-code vectors already in lane order (kLaneOrder above) and needs no transpose. Scales,
/// mins and block headers stay where they are (they belong to runs, not to code positions), so
/// a row keeps its size and a chunk its bytes. Precisely: if the decoder's natural vector k
/// (k < 4) byte m (m < 64) holds element vec_elem(k, m) of the chunk, the lane layout stores at
/// element position vec_elem(k, m) the code of element lane_elem(64k + m), where
/// lane_elem(64t + 4L + b) = 16L + 4t + b. Types: Q4_K, Q5_K, Q6_K, IQ4_XS, Q8_0, in rows whose
/// length is a multiple of 256.
bool has_lane_layout(quant::GgmlType type, int64_t n_in);

/// Rewrites one weight row of `n_in` elements from the file's layout to the lane layout
/// (`in` == `out` is allowed). Throws Error if !has_lane_layout(type, n_in).
void to_lane_layout(quant::GgmlType type, const void* in, void* out, int64_t n_in);

/// The inverse of to_lane_layout (`in` == `out` is allowed). Throws as to_lane_layout.
void from_lane_layout(quant::GgmlType type, const void* in, void* out, int64_t n_in);

/// Whether weights of `type` in rows of `n_in` elements are multiplied faster in the lane
/// layout on the active CPU path (its tile kernels have a lane-layout GEMV and a repacker for
/// the type).
bool prefers_lane_layout(quant::GgmlType type, int64_t n_in);

/// Rewrites a whole weight (`w.n_out` rows) into the lane layout in place, with the active
/// path's repacker split over `pool` (the scalar to_lane_layout where it has none). `data` is
/// w.data made writable by the caller. Throws Error if !has_lane_layout(w.type, w.n_in).
void repack_to_lanes(const MatrixView& w, uint8_t* data, const ThreadPool& pool);

/// The x16 layout (16 rows interleaved; repacked weights): the rows of a weight in groups of
/// kX16Rows, each group stored as its 256-element chunks one after the other, chunk c holding
/// the 16 rows' chunk c (the same bytes in total: a group is 16 rows long). Within a group chunk
/// every 64-byte code record holds four consecutive codes of each row (lane i = row i), so one
/// VPDPBUSD against a broadcast activation dword advances all 16 dot products and a row's
/// result stays in its lane to the end: no per-chunk float vector per row and no horizontal
/// sums. Types Q4_K and Q6_K (the Q4_K_M mix), n_in a multiple of 256, n_out of 16.
///
/// Group chunk bytes (u_i(e): unsigned code of element e of row i; Q6_K: its code + 32):
///   Q4_K (2304 bytes): [0,32) d of rows 0..15 (f16), [32,64) dmin, [64,256) the 12 scale bytes
///     as three words: word w of row i at 64 + 64w + 4i; [256,2304) 32 code records.
///   Q6_K (3360 bytes): [0,32) d, [32,288) scales: sc_{2p+s} of row i at 32 + 32p + 2i + s;
///     then for each run pair p at 288 + 384p: its four code records of the low 4 bits and two
///     records of the high 2 bits: record h byte 4i+b, bits 2q..2q+1 = u_i(32p + 16h + 4q + b) >> 4.
///   Code record q (q < 4) of run pair p (p < 8; Q4_K: at 256 + 256p + 64q), byte 4i+b: low
///     nibble u_i(32p + 4q + b) & 15, high nibble u_i(32p + 16 + 4q + b) & 15.
///   A kernel reads a group chunk from its first byte to its last.
///
/// Arithmetic (one float per row and activation row, chunk after chunk; the activation is the
/// Q8_K row act_quantize_fn writes, with codes a_e, scale da and 16-element sums bsums[r]; the
/// scale formulas are formats.md §2.3's): S_r = sum of u_e a_e over run r (16 elements),
///   Q4_K: I = sum_j sc_j (S_2j + S_2j+1), M = sum_j m_j (bsums[2j] + bsums[2j+1]),
///         acc = fma(I, d*da, acc), then acc = fma(-M, dmin*da, acc);
///   Q6_K: I = sum_r sc_r S_r - 32 sum_r sc_r bsums[r], acc = fma(I, d*da, acc);
/// exact integers (int32) converted to float once per chunk, as llama.cpp's K-quant dots do.
/// Every x16 kernel (one activation row, a few, a prompt batch) computes exactly this, so a
/// row's result does not depend on the batch it is in.
inline constexpr int kX16Rows = 16;
/// Bytes of one group chunk (16 rows x 256 elements) of Q4_K and of Q6_K in the x16 layout.
inline constexpr size_t kX16ChunkQ4K = 2304, kX16ChunkQ6K = 3360;

/// Whether weights of `type`, `n_out` rows of `n_in` elements, have the x16 layout.
bool has_x16_layout(quant::GgmlType type, int64_t n_in, int64_t n_out);

/// Bytes of one group chunk (16 rows x 256 elements) of `type` in the x16 layout.
size_t x16_chunk_bytes(quant::GgmlType type);

/// Rewrites 16 rows of `n_in` elements (the file's layout, contiguous: row_size(type, n_in)
/// apart) into one x16 group at `group` (`rows` == `group` is allowed). Throws Error if the
/// type has no x16 layout or n_in is not a positive multiple of 256.
void to_x16(quant::GgmlType type, const void* rows, void* group, int64_t n_in);

/// Row `i` (< 16) of an x16 group, written in the file's layout to `row` (row_size bytes).
/// Throws as to_x16.
void x16_row(quant::GgmlType type, const void* group, int i, void* row, int64_t n_in);

/// Scalar reference of the x16 arithmetic above for one row in the file's layout and one Q8_K
/// activation row of `n_in` elements.
float x16_dot_ref(quant::GgmlType type, const void* row, const void* act_q8_K, int64_t n_in);

/// y[j*ldy + i] = x16 product of row i of `group` (i < 16) and Q8_K activation row act[j]
/// (j < n_act, 1 <= n_act <= kX16MaxAct), both `n_chunks` chunks long.
using X16Fn = void (*)(const void* group, int64_t n_chunks, const void* const* act, int n_act, float* y, int64_t ldy);
inline constexpr int kX16MaxAct = 4;

/// Whether the active CPU path has an x16 kernel for `type` and a weight of that shape.
bool prefers_x16_layout(quant::GgmlType type, int64_t n_in, int64_t n_out);

/// Rewrites a whole weight (w.n_out rows, natural layout) into the x16 layout in place, groups
/// split over `pool`. `data` is w.data made writable. Throws Error if !has_x16_layout.
void repack_to_x16(const MatrixView& w, uint8_t* data, const ThreadPool& pool);

/// matmul_tiled for weights in the x16 layout: activations quantized to Q8_K, then the active
/// path's x16 kernel over every group and every kX16MaxAct activation rows. Returns false,
/// doing nothing, where the path has no x16 kernel for the type.
bool matmul_x16(const MatrixView& w, const float* x, int64_t n_rows, float* y, int64_t ldy, const ThreadPool& pool,
                MatmulScratch& scratch);

/// Rewrites `n_rows` weight rows of `n_in` elements, `row_bytes` apart, into the lane layout in
/// place; byte-identical to to_lane_layout on each row.
using RepackFn = void (*)(uint8_t* data, int64_t n_rows, int64_t n_in, size_t row_bytes);

/// Fast paths of the tile pipeline for one CPU path (nullptr members: use the scalar ones).
struct TileKernels {
  /// Multiplies up to kMaxW weight rows by up to kMaxA activation rows, as tile_ref.
  void (*tile)(const WeightFormat& fmt, int64_t n_chunks, const WChunk* const* w, int n_w, const AChunk* const* a,
               int n_a, float* y, int64_t ldy) = nullptr;
  int max_w = 0;  ///< most weight rows per call
  int max_a = 0;  ///< most activation rows per call
  /// This path's unpacker for weights of `type` in rows of `n_in` elements, byte-identical to
  /// WeightFormat::unpack, or nullptr where it has none.
  UnpackFn (*unpack)(quant::GgmlType type, int64_t n_in) = nullptr;
  /// This path's GEMV for weights of `type` in rows of `n_in` elements, or nullptr.
  const GemvKernel* (*gemv)(quant::GgmlType type, int64_t n_in) = nullptr;
  /// As unpack and gemv, for rows in the lane layout (has_lane_layout); the GEMV's `fn` then
  /// takes activations in lane order too (natural_from_lane is nullptr), as `multi` does.
  UnpackFn (*unpack_lanes)(quant::GgmlType type, int64_t n_in) = nullptr;
  const GemvKernel* (*gemv_lanes)(quant::GgmlType type, int64_t n_in) = nullptr;
  /// This path's repacker for rows of `type` and `n_in` elements, or nullptr.
  RepackFn (*repack)(quant::GgmlType type, int64_t n_in) = nullptr;
  /// This path's kernel for weights of `type` in the x16 layout, or nullptr.
  X16Fn (*x16)(quant::GgmlType type) = nullptr;
};

/// The tile kernels of `path` (avx512: VNNI), or nullptr where the path has none (scalar, avx2).
const TileKernels* tile_kernels(CpuPath path);

/// Y = X · Wᵀ for a batch of rows through tiles on the active CPU path (same contract as
/// kernels::matmul). Returns false, doing nothing, when there is no tiled path for this weight
/// type or CPU path; the caller then uses row-by-row dot products. Throws Error as matmul does.
bool matmul_tiled(const MatrixView& w, const float* x, int64_t n_rows, float* y, int64_t ldy, const ThreadPool& pool,
                  MatmulScratch& scratch);

}  // namespace hearth::kernels::gemm

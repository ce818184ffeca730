// Scaled dot-product attention of query rows over the cells of an F16 KV cache.
// Source: ../shared/docs/architectures.md §1.4. Numerics follow llama.cpp's non-flash CPU
// path: Q is rounded to F16 for the Q·K dot (K is F16), the scores are scaled and
// soft-maxed in F32 (sum in double), and the probabilities are rounded to F16 for P·V.
//
// Paths (kernels/cpu.h): the scalar reference (attention_f16_scalar) computes one (token, head)
// at a time. The AVX2 and AVX-512 kernels (kernels/attention_avx2.cpp, attention_avx512.cpp)
// take the query heads of one GQA group and a block of query tokens together, so each K and V
// row is read once per block; they keep the reference's order of operations (see
// attention_f16_path for how close they are).
//
// attention_flash (below) is the tiled, online-softmax ("flash") attention over a cache whose K
// and V rows are stored in f16, bf16, q8_0 or q4_0 (llama.cpp's KV cache types): it reads the
// stored rows directly, a tile of keys at a time, with the numerics of llama.cpp's CPU
// flash_attn_ext (Q converted to K's dot-product partner type, V accumulated in f32).
#pragma once

#include <cstdint>

#include "kernels/cpu.h"
#include "kernels/threadpool.h"
#include "quant/types.h"

namespace hearth::kernels {

/// One layer of an F16 KV cache: cell c holds K for all KV heads at k + c·k_stride
/// (n_head_kv · head_dim_k halves, head-major) and V at v + c·v_stride.
struct KvLayerF16 {
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  int64_t k_stride = 0;  ///< halves between consecutive cells
  int64_t v_stride = 0;
};

/// The cache cells one query token attends to (causal and window masks already applied).
struct AttnSpan {
  const int32_t* cells = nullptr;
  int32_t n = 0;
};

/// Shapes of one attention call.
struct AttnShape {
  int n_head = 0;      ///< query heads H
  int n_head_kv = 0;   ///< KV heads H_kv; query head h reads KV head h / (H / H_kv)
  int head_dim_k = 0;  ///< Q/K head dim
  int head_dim_v = 0;  ///< V head dim
  float scale = 1.0f;  ///< multiplier on Q·K (1/sqrt(head_dim_k) unless the arch says otherwise)
};

/// out[t][h·hd_v + d] = Σ_j softmax_j(scale · q_t,h · K_j) · V_j[d] over the cells of
/// spans[t]. q is [n_tokens][n_head·hd_k] f32, out is [n_tokens][n_head·hd_v] f32.
/// A token with an empty span gets zeros. Runs the kernels of active_cpu_path().
/// Throws hearth::Error for a bad shape (non-positive sizes, n_head not a multiple of
/// n_head_kv), a negative span length, or null pointers where data is needed; the cells
/// themselves are trusted (the KV cache made them).
void attention_f16(const float* q, int64_t n_tokens, const AttnShape& shape, const KvLayerF16& kv,
                   const AttnSpan* spans, float* out, const ThreadPool& pool);

/// attention_f16 on the kernels of `path` (throws hearth::Error if this CPU cannot run them).
/// The SIMD paths need head_dim_k and head_dim_v to be multiples of 8 and use the scalar
/// reference otherwise. They compute the reference's expression with the same additions in the
/// same order: the Q·K dots add the exact F16×F16 products over d in order, the softmax sums
/// in double in key order, P·V adds over the keys in order. Only the exponential differs: a
/// vector polynomial (attention_exp_f32, within 1 ulp of std::exp), so a probability may round
/// to a neighbouring F16 value: |out - reference| <= 2^-10 · Σ_j p_j·|V_j[d]| (plus
/// 2^-24·Σ_j|V_j[d]| for probabilities in the F16 subnormal range), and most outputs are
/// bit-identical (tests/kernels/attention_test.cpp). Every output row is a function of its own
/// query row and span only: bit-identical whatever the batch, its grouping and the thread
/// count, and identical between the AVX2 and AVX-512 paths.
/// Cells inside a prompt block's shared key list but outside a token's span enter its P·V
/// with probability 0 (0·V: a non-finite V there would still propagate).
void attention_f16_path(CpuPath path, const float* q, int64_t n_tokens, const AttnShape& shape,
                        const KvLayerF16& kv, const AttnSpan* spans, float* out, const ThreadPool& pool);

/// The scalar reference: one (token, head) at a time, parallel over (token, head).
void attention_f16_scalar(const float* q, int64_t n_tokens, const AttnShape& shape, const KvLayerF16& kv,
                          const AttnSpan* spans, float* out, const ThreadPool& pool);

/// One layer of a KV cache whose rows are stored in a ggml type (formats.md §2.1 F16/BF16,
/// §2.2 Q8_0/Q4_0): cell c holds the K row of all KV heads at k + c·k_stride bytes, n_head_kv
/// heads of head_dim_k values each, head-major (ggml order {head_dim_k, n_head_kv}); KV head g
/// starts row_size(k_type, g·head_dim_k) bytes into the row. V likewise with v_type, v_stride,
/// head_dim_v.
struct KvLayerView {
  quant::GgmlType k_type = quant::GgmlType::F16;
  quant::GgmlType v_type = quant::GgmlType::F16;
  const uint8_t* k = nullptr;
  const uint8_t* v = nullptr;
  int64_t k_stride = 0;  ///< bytes between consecutive cells
  int64_t v_stride = 0;
};

/// Keys per tile of attention_flash: the online softmax updates its running max once per tile.
inline constexpr int kFlashTileKeys = 32;

/// True for the cache types attention_flash reads: F16, BF16, Q8_0, Q4_0.
bool attention_flash_supports(quant::GgmlType type);

/// Flash attention: the same result as attention_f16 (out[t][h·hd_v + d] = Σ_j softmax_j(scale ·
/// q_t,h · K_j) · V_j[d] over the cells of spans[t]; q [n_tokens][n_head·hd_k] f32, out
/// [n_tokens][n_head·hd_v] f32; an empty span gives zeros) computed the way llama.cpp's CPU
/// flash_attn_ext does:
/// * Q of each head is converted to the dot-product partner of K's type (quant::traits
///   vec_dot_type, formats.md §2.7): F16 for F16 K, BF16 for BF16 K, Q8_0 (the activation
///   quantizer, kernels/dot.h) for Q8_0 and Q4_0 K. A score is scale · dot(K_j, q'): for F16
///   and BF16 the exact products summed in f32 over d in order; for Q8_0/Q4_0 Σ over the
///   32-element blocks, in order, of (d_K·d_q)·isum in f32 (isum the exact integer dot of the
///   block's codes, Q4_0 codes minus 8).
/// * Keys are taken in tiles of kFlashTileKeys in span order with an online softmax: per tile
///   the running max M rises to the tile's max, the running sum S and the f32 accumulator of
///   V rows (each row converted to f32 by its type's dequantizer) are scaled by e^(M_old -
///   M_new), then each key adds p = e^(s - M) to S and p·V_j to the accumulator; out = acc·(1/S).
/// No copy of the cache is made: each tile's K and V rows are read from their cells.
/// Runs the kernels of active_cpu_path(). Throws hearth::Error as attention_f16 does, and for a
/// type attention_flash_supports() rejects or a head dim that is not a multiple of its type's
/// block size (naming both numbers).
void attention_flash(const float* q, int64_t n_tokens, const AttnShape& shape, const KvLayerView& kv,
                     const AttnSpan* spans, float* out, const ThreadPool& pool);

/// attention_flash on the kernels of `path` (throws hearth::Error if this CPU cannot run them).
/// The AVX2 kernel (kernels/attention_avx2.cpp; the avx512 path uses it too) needs head dims
/// that are multiples of 8 and uses the scalar reference otherwise. Its scores are the
/// reference's bit for bit (the same sums in the same order); it differs from the reference in
/// the exponential (attention_exp_f32, within 1 ulp), in fusing P·V's multiply-adds, and in
/// where tiles start for a span that does not start where its block's key list starts (tiles
/// run over the key list shared by a block of query tokens). tests/kernels/
/// attention_flash_test.cpp bounds |out - reference| by 2^-24·Σ_j p_j·|V_j[d]|·(8·A + 4·n + 64),
/// A the largest scale·Σ_d|K_j[d]·q'[d]| and n the span length (measured: at most 4 units).
/// A token whose span starts at its block's first key gets the same bits whatever the batch,
/// its grouping and the thread count (the decode and block layouts add in the same order).
void attention_flash_path(CpuPath path, const float* q, int64_t n_tokens, const AttnShape& shape,
                          const KvLayerView& kv, const AttnSpan* spans, float* out, const ThreadPool& pool);

/// The scalar reference of attention_flash: one (token, head) at a time, tiles starting at
/// the span's first cell, parallel over (token, head).
void attention_flash_scalar(const float* q, int64_t n_tokens, const AttnShape& shape, const KvLayerView& kv,
                            const AttnSpan* spans, float* out, const ThreadPool& pool);

/// y[i] = e^x[i] with the exponential the softmax of `path` uses (std::exp for scalar), for
/// tests. Throws hearth::Error if this CPU cannot run `path`.
void attention_exp_f32(CpuPath path, const float* x, float* y, int64_t n);

// ---- Internal to kernels/: the interface between the driver (attention.cpp) and the SIMD
// kernels (attention_avx2.cpp, attention_avx512.cpp). ----

/// One unit of work: query heads [head0, head0 + n_heads) of GQA group kv_head (query head
/// kv_head·(H/H_kv) + head0 + i) for n_tokens tokens whose spans are all sub-ranges of one key
/// list: token i (tokens[i]) attends cells[lo[i] .. hi[i]), 0 <= lo[i] < hi[i] <= n_cells.
struct AttnJob {
  const float* q = nullptr;  ///< as attention_f16
  float* out = nullptr;      ///< as attention_f16
  const AttnShape* shape = nullptr;
  const KvLayerF16* kv = nullptr;      ///< attention_f16 jobs
  const KvLayerView* view = nullptr;   ///< attention_flash jobs
  int kv_head = 0;
  int head0 = 0;
  int n_heads = 0;
  const int32_t* cells = nullptr;
  int32_t n_cells = 0;
  const int64_t* tokens = nullptr;
  const int32_t* lo = nullptr;
  const int32_t* hi = nullptr;
  int n_tokens = 0;
};

#if defined(__x86_64__)
namespace avx2 {
/// Runs one job (head dims multiples of 8). Needs cpu_supports(CpuPath::avx2).
void attention_job(const AttnJob& job);
/// Runs one attention_flash job (job.view set; head dims multiples of 8 and of the types'
/// block sizes). Needs cpu_supports(CpuPath::avx2).
void flash_job(const AttnJob& job);
/// attention_exp_f32 of this path.
void exp_f32(const float* x, float* y, int64_t n);
/// swiglu_path (kernels/ops.h) of this path, with its exponential.
void swiglu_f32(const float* gate, const float* up, float* out, int64_t n);
}  // namespace avx2
namespace avx512 {
/// Runs one job (head dims multiples of 8). Needs cpu_supports(CpuPath::avx512).
void attention_job(const AttnJob& job);
/// attention_exp_f32 of this path.
void exp_f32(const float* x, float* y, int64_t n);
/// swiglu_path (kernels/ops.h) of this path, with its exponential.
void swiglu_f32(const float* gate, const float* up, float* out, int64_t n);
}  // namespace avx512
#endif

}  // namespace hearth::kernels

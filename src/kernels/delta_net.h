// Gated DeltaNet (the linear attention of qwen3next, qwen35, qwen35moe): the short causal
// depthwise convolution with SiLU, the L2 norm of the q/k heads, and the gated delta rule
// recurrence, token by token (decode) and in its chunked (WY) form for prompt batches.
// Source: ../shared/docs/architectures.md §7.3 (per-token computation), §7.4 (state), §7.5
// (decode step vs prompt chunk; chunk size 64 as llama.cpp's non-fused path).
//
// Layouts (ours; any consistent layout works, §7.4):
// * conv state of one sequence: [K-1][C] floats, the last K-1 pre-conv input rows of the
//   sequence, oldest first (zeros at sequence start);
// * recurrent state of one sequence: per v-head j a d_k × d_v matrix S_j stored row-major with
//   the value index innermost: S_j[i][c] at state + (j·d_k + i)·d_v + c (llama.cpp keeps the
//   transpose; every product here runs along contiguous value rows).
//
// Paths (kernels/cpu.h): the scalar reference of every function here, and for the chunked
// form an AVX2+FMA path whose matrix products use a register-blocked micro-kernel. Both are
// exact reformulations of the token-by-token rule and agree with it up to float rounding
// (tests/kernels/delta_net_test.cpp).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu.h"
#include "kernels/threadpool.h"

namespace hearth::kernels {

/// Head layout of one Gated DeltaNet layer (architectures.md §7.1).
struct DeltaNetShape {
  int n_k_heads = 0;  ///< H_k: q/k heads (ssm.group_count)
  int n_v_heads = 0;  ///< H_v: v heads (ssm.time_step_rank), a multiple of H_k
  int d_k = 0;        ///< key head dimension (ssm.state_size)
  int d_v = 0;        ///< value head dimension (ssm.inner_size / H_v)
  /// v-head j reads q/k head j mod H_k (tiled order, qwen35/qwen35moe GGUFs) or
  /// j / (H_v / H_k) (grouped order, qwen3next) (§7.2 "Head mapping").
  bool tiled = true;

  int k_head(int j) const { return tiled ? j % n_k_heads : j / (n_v_heads / n_k_heads); }
  /// Floats of the recurrent state of one sequence: H_v · d_k · d_v.
  int64_t state_floats() const { return int64_t{n_v_heads} * d_k * d_v; }
};

/// The tokens of one sequence as the recurrence reads them. Token i of the sequence is batch
/// row rows[i]; its k-head h query is q + rows[i]·ld_qk + h·d_k (already L2-normalised and
/// scaled by 1/sqrt(d_k)), its key k + rows[i]·ld_qk + h·d_k (L2-normalised), its v-head j
/// value v + rows[i]·ld_v + j·d_v; g (log decay, <= 0) and beta (in [0, 1]) of v-head j are at
/// g + rows[i]·ld_gb + j and beta + rows[i]·ld_gb + j. The output o of v-head j is written to
/// out + rows[i]·ld_out + j·d_v. `state` is the sequence's recurrent state (layout above),
/// updated in place.
struct DeltaNetSeq {
  const float* q = nullptr;
  const float* k = nullptr;
  int64_t ld_qk = 0;
  const float* v = nullptr;
  int64_t ld_v = 0;
  const float* g = nullptr;
  const float* beta = nullptr;
  int64_t ld_gb = 0;
  float* out = nullptr;
  int64_t ld_out = 0;
  const int32_t* rows = nullptr;
  int64_t n_tokens = 0;
  float* state = nullptr;
};

/// Chunk length of the chunked form (llama.cpp's chunk size for scalar decay).
inline constexpr int kDeltaNetChunk = 64;

/// The gated delta rule of §7.3 for v-head `head` of `seq`, one token after the other:
///   S ← e^g·S;  δ = β·(v − Sᵀk);  S ← S + k·δᵀ;  o = Sᵀq.
/// The scalar reference of both forms.
void delta_net_head_steps(const DeltaNetShape& shape, const DeltaNetSeq& seq, int head);

/// The same result in the chunked form of §7.5 (chunks of `chunk` tokens, the last one
/// shorter): per chunk, with G the within-chunk cumulative sum of g,
///   A = strictly lower (β_t·e^{G_t−G_s}·⟨k_t,k_s⟩),  T = (I + A)^{-1},
///   U = T·(β ⊙ V),  W = T·(β·e^G ⊙ K),  V_new = U − W·S,
///   O = (e^G ⊙ Q)·S + P·V_new with P = lower incl. diagonal (e^{G_t−G_s}·⟨q_t,k_s⟩),
///   S ← e^{G_L}·S + Σ_s e^{G_L−G_s}·k_s·V_new[s]ᵀ,
/// every product a matrix product, on the kernels of `path` (scalar: the reference loops).
/// Throws hearth::Error if this CPU cannot run `path` or chunk < 1.
void delta_net_head_chunked(const DeltaNetShape& shape, const DeltaNetSeq& seq, int head, CpuPath path,
                            int chunk = kDeltaNetChunk);

/// Runs every v-head of every sequence in `seqs` (a sequence of one token: the step form, else
/// the chunked form on the active CPU path), in parallel over (sequence, head).
/// Throws hearth::Error for a bad shape (non-positive sizes, H_v not a multiple of H_k).
void delta_net(const DeltaNetShape& shape, std::span<const DeltaNetSeq> seqs, const ThreadPool& pool);

/// Short causal depthwise convolution with SiLU (§7.3) over the tokens of one sequence:
/// for channel c and token i (batch row rows[i]),
///   y[rows[i]·ldy + c] = silu( Σ_{k<K} w_t[k·C + c] · x_{i−(K−1)+k}[c] )
/// where x_m for m < 0 is row m + K−1 of `state` ([K-1][C], see above) and else the pre-conv
/// input x + rows[m]·ldx; the taps add in order k = 0 … K−1 (as ggml's ssm_conv). `w_t` is the
/// kernel transposed to [K][C] (GGUF's ssm_conv1d is {K, C}: C rows of K taps). Afterwards
/// `state` holds the last K−1 input rows of [state | x]. Parallel over channel blocks.
void conv1d_silu(const float* w_t, int kernel, int64_t channels, float* state, const float* x, int64_t ldx,
                 const int32_t* rows, int64_t n_tokens, float* y, int64_t ldy, const ThreadPool& pool);

/// In-place L2 norm of `n` vectors of `dim` floats (stride `ld` between vectors' starts):
/// x ← x · (scale / max(‖x‖₂, eps)), the sum of squares accumulated in double as ggml's
/// l2_norm; `scale` = 1 leaves the plain L2 norm (§1.1 L2Norm), 1/sqrt(d_k) gives DeltaNet's q.
void l2_norm_scaled(float* x, int64_t n, int dim, int64_t ld, float eps, float scale);

/// C[i·ldc + j] += Σ_p A[i·lda + p] · B[p·ldb + j] for i < m, j < n, p < k (row-major, no
/// aliasing of C with A or B), the products of `path` (scalar: adds in order of p; AVX2: a
/// 4×16 FMA micro-kernel, same order of p per element). Exposed for tests.
void delta_net_gemm(CpuPath path, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float* c, int64_t ldc);

#if defined(__x86_64__)
namespace avx2 {
/// delta_net_gemm of the AVX2 path. Needs cpu_supports(CpuPath::avx2).
void delta_net_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                    int64_t ldc);
}  // namespace avx2
#endif

}  // namespace hearth::kernels

// Mixture-of-experts dispatch: routing (softmax, top-k, renormalisation), grouping of the
// (token, slot) pairs of a batch by expert, gathering the rows each expert reads, running the
// experts' matrix products, and the weighted sum of the experts' outputs per token.
// Source: ../shared/docs/architectures.md §1.5 (mixture of experts) and §0.1 (ggml order of the
// 3-D expert stacks {n_in, n_out, n_expert}).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/threadpool.h"

namespace hearth::kernels {

/// Smallest sum the renormalised top-k weights are divided by (architectures.md §1.5, as
/// llama.cpp clamps it).
constexpr float kMoeMinWeightSum = 6.103515625e-5f;

/// The routing of a batch of n_tokens tokens to n_used experts each, grouped by expert.
/// Entry i = t·n_used + s is slot s of token t.
struct MoeRouting {
  int n_expert = 0;
  int n_used = 0;
  int64_t n_tokens = 0;
  std::vector<int32_t> ids;      ///< [n_tokens][n_used] chosen experts, best first
  std::vector<float> weights;    ///< [n_tokens][n_used] their gate weights
  std::vector<int32_t> offsets;  ///< [n_expert + 1]: entries of expert e are order[offsets[e] .. offsets[e+1])
  std::vector<int32_t> order;    ///< [n_tokens·n_used] entries grouped by expert, ascending within an expert

  /// Rows (entries) routed to expert e.
  int64_t count(int e) const { return offsets[static_cast<size_t>(e) + 1] - offsets[static_cast<size_t>(e)]; }
  /// The entries of expert e (count(e) of them).
  const int32_t* entries(int e) const { return order.data() + offsets[static_cast<size_t>(e)]; }
};

/// Softmax gating with top-k (architectures.md §1.5, gating "softmax"): for each token t,
/// p = softmax(logits[t]) over n_expert values (max-subtracted, sum accumulated in double as
/// ggml does); the n_used largest p (ties: lower expert id first, best first) are chosen with
/// weights p_e, divided by max(Σ chosen p, kMoeMinWeightSum) when `renormalize`.
/// logits is [n_tokens][n_expert] f32. Fills ids, weights and the grouping of `out`.
/// Throws Error unless 0 < n_used <= n_expert.
void moe_route_softmax(const float* logits, int64_t n_tokens, int n_expert, int n_used, bool renormalize,
                       MoeRouting& out);

/// Sigmoid gating with top-k chosen on the logits (architectures.md §1.5 and §3, llama.cpp's
/// LLM_ARCH_LLAMA4 branch of build_moe_ffn: the experts are selected on the raw router logits,
/// and the weight of a chosen expert is σ(logit) = 1 / (1 + e^-logit), never renormalised).
/// logits is [n_tokens][n_expert] f32; ties pick the lower expert id first, best first.
/// Fills ids, weights and the grouping of `out`. Throws Error unless 0 < n_used <= n_expert.
void moe_route_sigmoid(const float* logits, int64_t n_tokens, int n_expert, int n_used, MoeRouting& out);

/// Fills out.offsets / out.order from out.ids (out.n_tokens, n_expert, n_used set): a
/// counting sort of the entries by expert, stable in entry order. Throws Error for an id
/// outside [0, n_expert).
void moe_group(MoeRouting& out);

/// dst[i] = src[entries[i] / n_used] for i < n (rows of `width` floats): the input rows of the
/// tokens routed to one expert, in the order of its entries.
void moe_gather(const float* src, int64_t width, const int32_t* entries, int64_t n, int n_used, float* dst);

/// position[entry] = index of `entry` in `order` (the inverse of the grouping): row
/// position[t·n_used + s] of a buffer laid out in `order` holds slot s of token t.
void moe_positions(const MoeRouting& r, std::vector<int32_t>& position);

/// y[t] = Σ_s weights[t·n_used + s] · src[position[t·n_used + s]] for t < n_tokens, summed in slot
/// order (best expert first, as llama.cpp adds the experts' outputs), rows of `width` floats;
/// src is laid out in the grouping's order. Parallel over tokens. With `weighted` false the
/// rows are summed without the weights (they were applied to the experts' inputs, §3 llama4).
void moe_combine(const MoeRouting& r, const std::vector<int32_t>& position, const float* src, int64_t width,
                 float* y, const ThreadPool& pool, bool weighted = true);

/// One matrix product of a MoE stage: y[r·ldy + o] = Σ_i w[o][i] · x[r·w.n_in + i], r < n_rows.
struct MoeMatmul {
  MatrixView w;
  const float* x = nullptr;
  int64_t n_rows = 0;
  float* y = nullptr;
  int64_t ldy = 0;
};

/// How moe_matmuls spreads the products over the threads.
enum class MoeSchedule {
  kPerMatrix,  ///< one kernels::matmul per product, each split over output rows on all threads
  kUnits,      ///< products cut into blocks of output rows, the blocks handed out to the threads as
               ///< they become free, each one kernels::matmul on one thread (one parallel region)
};

/// Runs every product of `jobs` with kernels::matmul (so each stays what matmul computes:
/// identical results under both schedules). `scratch` is resized to one per thread.
void moe_matmuls(std::span<const MoeMatmul> jobs, MoeSchedule schedule, const ThreadPool& pool,
                 std::vector<MatmulScratch>& scratch);

/// The matrix of expert e of a 3-D stack {n_in, n_out, n_expert} viewed as a 2-D matrix of
/// n_out · n_expert rows (`stack.n_out` = n_out · n_expert): rows e·n_out .. (e+1)·n_out − 1,
/// i.e. data offset e · n_out · row_bytes. Throws Error if e is outside the stack.
MatrixView expert_matrix(const MatrixView& stack, int64_t n_out, int64_t e);

}  // namespace hearth::kernels

// The steps of a decoder forward pass over one micro-batch, shared by the architecture
// files: each step applies an op of kernels/ to all rows of the batch.
// Formulas: ../shared/docs/architectures.md §1 (shared building blocks).
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/arch.h"

namespace hearth::model {

/// The RoPE settings of `hp` with the architecture's pairing `mode` and optional per-pair
/// frequency divisors (`rope_freqs.weight`). YaRN scaling turns on the ramp (ext_factor 1)
/// with β_fast 32 and β_slow 1, as llama.cpp's defaults (architectures.md §1.3).
kernels::RopeConfig make_rope_config(const HParams& hp, kernels::RopeMode mode, const float* freq_factors);

/// Scratch buffer slots used by the decoder architectures.
enum Slot : int {
  kSlotX, kSlotH, kSlotQ, kSlotK, kSlotV, kSlotAttn, kSlotOut, kSlotGate, kSlotUp,
  kSlotRouter, kSlotMoeIn, kSlotMoeOut  // mixture of experts (Compute::moe_ffn)
};

/// Gating function of a mixture-of-experts router (architectures.md §1.5, table 1.7).
enum class MoeGating {
  kSoftmax,  ///< top-k of softmax(logits), weights p_e (optionally renormalised)
  kSigmoid,  ///< top-k of the logits, weights σ(logit_e), never renormalised (llama4)
};

/// The weights of one mixture-of-experts feed-forward block (architectures.md §1.5) with
/// softmax (or sigmoid) gating and SwiGLU (or GeGLU) experts.
struct MoeFfn {
  kernels::MatrixView router;  ///< ffn_gate_inp {n_embd, n_expert}
  kernels::MatrixView gate;    ///< ffn_gate_exps {n_embd, n_ff, n_expert} as n_ff·n_expert rows
  kernels::MatrixView up;      ///< ffn_up_exps {n_embd, n_ff, n_expert}
  kernels::MatrixView down;    ///< ffn_down_exps {n_ff, n_embd, n_expert} as n_embd·n_expert rows
  /// Or, when gate.data is null: ffn_gate_up_exps {n_embd, 2·n_ff, n_expert}, whose expert slab
  /// has the gate rows [0, n_ff) then the up rows [n_ff, 2·n_ff) (§1.5, Gemma 4).
  kernels::MatrixView gate_up;
  int n_expert = 0;
  int n_used = 0;              ///< experts per token (top-k)
  int64_t n_ff = 0;            ///< expert feed-forward width
  bool renormalize = true;     ///< divide the chosen weights by their sum (kSoftmax only)
  MoeGating gating = MoeGating::kSoftmax;
  /// Multiply each expert's input row by its gate weight and sum the experts' outputs
  /// unweighted: y = Σ_e FFN_e(w_e · x) (llama4, §3), instead of y = Σ_e w_e · FFN_e(x).
  bool weight_input = false;
  bool gelu = false;           ///< GeGLU experts (kernels::geglu) instead of SwiGLU
  /// [n_expert] multiplier of each expert's output before its gate weight (ffn_down_exps.scale,
  /// Gemma 4 §11), or null.
  const float* down_scale = nullptr;
};
/// Helper bound to one forward call: owns nothing, borrows buffers from ForwardState.
class Compute {
 public:
  Compute(const UBatch& batch, ForwardState& state);

  /// Tokens in the batch.
  int64_t n() const { return batch_.n_tokens; }
  const UBatch& batch() const { return batch_; }

  /// Scratch buffer `slot` resized to [n][width] floats (contents unspecified). Different
  /// slots never alias; the same slot is reused by later calls.
  float* buffer(int slot, int64_t width);

  /// x[t] = row tokens[t] of the embedding table, for every token (ggml get_rows).
  void embed(const kernels::MatrixView& table, float* x);

  /// y = RMSNorm(x; w, eps) applied to `rows` rows of `width` (w may be null).
  void rms_norm(const float* x, const float* w, int64_t width, float eps, float* y, int64_t rows);

  /// Per-head RMSNorm with a shared weight: each of the n·n_heads vectors of `head_dim`
  /// values in x is normalised in place (QK-norm).
  void rms_norm_heads(float* x, int n_heads, int head_dim, const float* w, float eps);

  /// y[t] = W x[t] (+ bias) for `rows` rows (default: all tokens); y has width w.n_out.
  void matmul(const kernels::MatrixView& w, const float* x, float* y, const float* bias = nullptr,
              int64_t rows = -1);

  /// Rotates every token's `n_heads` head vectors (width head_dim) at its position.
  void rope(float* x, int n_heads, int head_dim, const kernels::RopeConfig& cfg);

  /// Stores K and V ([n][n_head_kv·hd]) of every token in its KV cell of layer `il` (in the
  /// layer's cache types, KvLayer), then computes attention of q over each token's span of that
  /// layer (its AttnWindow applied, UBatch::layer_spans) into out ([n][n_head·hd_v]): with
  /// kernels::attention_f16 for an F16 cache, with kernels::attention_flash for the other cache
  /// types or when ForwardState::flash_attn is set.
  void attention(int il, const float* q, const float* k, const float* v, const kernels::AttnShape& shape,
                 float* out);

  /// Attention over the KV cache of an earlier layer `src` (KV sharing, Gemma 4 §11): stores
  /// nothing; each token attends to its span of layer src, so the calling layer must have src's
  /// AttnWindow. The tokens' own K/V are already there (src ran before in this forward pass).
  void attention_shared(int src, const float* q, const kernels::AttnShape& shape, float* out);

  /// x[t] += y[t] for `rows` rows of `width`.
  void add(float* x, const float* y, int64_t width, int64_t rows = -1);

  /// fn(r0, r1) over blocks of [0, rows) of rows `width` floats wide, split over the pool in
  /// blocks of at least 4096 elements (one block runs on the calling thread). For the
  /// row-wise steps between matmuls (norms, RoPE, KV stores, residual adds), which ran on one
  /// thread while the others waited: ~3.5% of a four-sequence decode step's samples.
  void rows_parallel(int64_t rows, int64_t width, const std::function<void(int64_t, int64_t)>& fn);

  /// SwiGLU feed-forward (§1.2) on all rows: out = W_down (silu(W_gate h) ⊙ W_up h).
  void swiglu_ffn(const float* h, const kernels::MatrixView& gate, const kernels::MatrixView& up,
                  const kernels::MatrixView& down, float* out, int slot_gate, int slot_up);

  /// GeGLU feed-forward (§1.2) on all rows: out = W_down (gelu(W_gate h) ⊙ W_up h), gelu as
  /// kernels::gelu (ggml's F16-table GELU).
  void geglu_ffn(const float* h, const kernels::MatrixView& gate, const kernels::MatrixView& up,
                 const kernels::MatrixView& down, float* out, int slot_gate, int slot_up);

  /// Mixture-of-experts feed-forward (§1.5) on all rows of h ([n][n_embd]) into out
  /// ([n][n_embd]): router logits (of router_in's rows when given, [n][n_embd], else of h's),
  /// softmax, top-n_used, optional renormalisation (or the sigmoid gating and input-side weights
  /// of MoeFfn::gating / weight_input); the rows of
  /// the batch are gathered grouped by expert, then each expert that received rows multiplies
  /// all of them at once (one kernels::matmul per expert matrix, so its weights are read once
  /// per batch; experts without rows are not read, so a single token reads only its chosen
  /// ones), SwiGLU or GeGLU (one product with the fused gate_up slab when given), each expert's
  /// rows times its down_scale if set, and each token's output is the gate-weighted sum of its
  /// experts' rows. Calls on_matmul for the router and on_matmul_id for every expert product.
  void moe_ffn(const float* h, const MoeFfn& m, float* out, const float* router_in = nullptr);

  /// Final norm and output head for the rows in out_ids: logits[i] = W_out RMSNorm(x[out_ids[i]]).
  /// With ForwardState::embeddings set, the normed rows RMSNorm(x[out_ids[i]]) are also copied
  /// there; if `logits` is null then, only those are written (no output head).
  void output_head(const float* x, const float* norm, float eps, const kernels::MatrixView& w_out, float* logits);

  const kernels::ThreadPool& pool() const { return *state_.pool; }

 private:
  /// Attention of q over `spans` of the cached layer `kv`: the F16 reference-order kernel for F16
  /// caches (unless ForwardState::flash_attn), the flash kernel for the other cache types.
  void attend(const KvLayer& kv, const kernels::AttnSpan* spans, const float* q, const kernels::AttnShape& shape,
              float* out);

  const UBatch& batch_;
  ForwardState& state_;
};

}  // namespace hearth::model

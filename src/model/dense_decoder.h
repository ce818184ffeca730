// The pre-norm decoder shared by `llama`, `qwen3` and `qwen3moe` (architectures.md §2, §5, §6):
//   h = RMSNorm(x; attn_norm);  Q,K,V = W h (+b);  [per-head QK RMSNorm];  RoPE(Q), RoPE(K)
//   x += W_o · Attn(Q, K, V; 1/sqrt(hd), causal)
//   x += W_down (silu(W_gate h2) ⊙ W_up h2),  h2 = RMSNorm(x; ffn_norm)
//        or, with experts, x += MoE(h2) (§1.5: softmax router, top-k, renormalised, SwiGLU experts)
//   logits = W_out RMSNorm(x; output_norm)     (W_out = token_embd when output.weight is absent)
#pragma once

#include <vector>

#include "kernels/ops.h"
#include "model/arch.h"
#include "model/compute.h"

namespace hearth::model {

/// What distinguishes the architectures built on DenseDecoder.
struct DenseOptions {
  kernels::RopeMode rope_mode = kernels::RopeMode::kNorm;
  bool qk_norm = false;        ///< attn_q_norm / attn_k_norm {hd} before RoPE (qwen3)
  bool rope_freqs = false;     ///< divide RoPE angles by rope_freqs.weight when present (llama3)
  bool moe = false;            ///< every layer's FFN is a mixture of experts (qwen3moe)
};

/// A dense decoder bound to one file's weights.
class DenseDecoder final : public Architecture {
 public:
  /// Binds every tensor; throws Error naming a missing or mis-shaped tensor, or a missing
  /// width (heads, feed-forward, experts).
  DenseDecoder(const HParams& hp, Weights& w, const DenseOptions& opt);

  std::vector<KvLayerSpec> kv_layers() const override;
  void forward(const UBatch& b, ForwardState& st, float* logits) const override;

 private:
  struct Layer {
    const float* attn_norm = nullptr;
    kernels::MatrixView wq, wk, wv, wo;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
    const float *q_norm = nullptr, *k_norm = nullptr;
    const float* ffn_norm = nullptr;
    kernels::MatrixView gate, up, down;  // dense FFN
    MoeFfn moe;                          // or experts (DenseOptions::moe)
  };
  HParams hp_;
  DenseOptions opt_;
  kernels::MatrixView tok_embd_, output_;
  const float* output_norm_ = nullptr;
  kernels::RopeConfig rope_;
  std::vector<Layer> layers_;
};

}  // namespace hearth::model

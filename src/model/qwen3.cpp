// Architecture `qwen3` (Qwen3 dense 0.6B-32B): architectures.md §5. A dense decoder with
// per-head RMSNorm on Q and K (attn_q_norm / attn_k_norm, before RoPE), half-split (NEOX)
// RoPE, head_dim from attention.key_length (H·hd may differ from n_embd), often tied
// embeddings.
#include "model/arch.h"
#include "model/dense_decoder.h"

namespace hearth::model {

std::unique_ptr<Architecture> make_qwen3(const HParams& hp, Weights& w) {
  DenseOptions opt;
  opt.rope_mode = kernels::RopeMode::kNeox;
  opt.qk_norm = true;
  return std::make_unique<DenseDecoder>(hp, w, opt);
}

}  // namespace hearth::model

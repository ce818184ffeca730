// Architecture `qwen3moe` (Qwen3-30B-A3B, Qwen3-235B-A22B): architectures.md §6. Attention as
// `qwen3` (per-head QK RMSNorm before NEOX RoPE, head_dim from attention.key_length); every
// layer's FFN is a mixture of experts: F32 router ffn_gate_inp, softmax over expert_count
// experts, top expert_used_count, weights always renormalised to sum 1 (llama.cpp ignores
// norm_topk_prob), SwiGLU experts of width expert_feed_forward_length, no shared expert.
#include "model/arch.h"
#include "model/dense_decoder.h"

namespace hearth::model {

std::unique_ptr<Architecture> make_qwen3moe(const HParams& hp, Weights& w) {
  DenseOptions opt;
  opt.rope_mode = kernels::RopeMode::kNeox;
  opt.qk_norm = true;
  opt.moe = true;
  return std::make_unique<DenseDecoder>(hp, w, opt);
}

}  // namespace hearth::model

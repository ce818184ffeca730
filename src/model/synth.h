// Synthesis of random-weight GGUF models with the shapes of real ones (and tiny ones for
// tests): deterministic from a seed, streamed to disk so multi-GB files need little memory.
// Shapes: ../shared/docs/architectures.md §12. Tensor names and metadata keys as llama.cpp's
// converter writes them (§2 llama, §3 llama4, §5 qwen3, §6 qwen3moe, §7-§9 qwen35 / qwen35moe /
// qwen3next without the MTP block, §10 gemma3, §11 gemma4).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/types.h"

namespace hearth::model {

/// The hyper-parameters of a model to synthesize.
struct SynthShape {
  std::string name;        ///< "llama3.2-1b", "qwen3-1.7b", "tiny-llama", ...
  std::string arch;  ///< "llama", "llama4", "qwen3", "qwen3moe", "qwen35", "qwen35moe", "qwen3next", "gemma3", "gemma4"
  uint32_t n_layer = 0;
  uint32_t n_embd = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;
  uint32_t n_ff = 0;       ///< dense FFN width (qwen3moe: written to the metadata but unused)
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_embeddings = true;
  /// llama3 RoPE frequency factors (rope_freqs.weight); factor 0 = none.
  float rope_factor = 0.0f, rope_low_freq = 1.0f, rope_high_freq = 4.0f;
  uint32_t rope_orig_ctx = 8192;
  /// Mixture of experts (qwen3moe, llama4, qwen35moe, gemma4): experts per layer, used per token,
  /// expert FFN width.
  uint32_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;
  /// qwen35moe: width of the shared expert (expert_shared_feed_forward_length).
  uint32_t n_ff_shexp = 0;
  /// Gated DeltaNet (qwen35, qwen35moe, qwen3next; architectures.md §7.1): q/k heads H_k, v heads H_v, head
  /// dimension d_k = d_v, conv kernel K, and every full_attention_interval-th layer is full
  /// attention; n_rot rotated dims of the attention heads (partial RoPE; 0 = head_dim).
  uint32_t ssm_n_k_heads = 0, ssm_n_v_heads = 0, ssm_head_dim = 0, ssm_conv_kernel = 4;
  uint32_t full_attention_interval = 4, n_rot = 0;

  /// Whether layer il is a Gated DeltaNet layer (qwen35, qwen35moe, qwen3next).
  bool recurrent_layer(uint32_t il) const;
  /// llama4: layer il is a MoE layer (routed experts + a shared expert of width n_ff_exp) when
  /// (il + 1) % moe_step == 0, else dense of width n_ff (interleave_moe_layer_step).
  uint32_t moe_step = 0;
  // Gemma fields last: the positional shape tables above fill the fields before them.
  /// Gemma (gemma3 §10, gemma4 §11): sliding window W (0: every layer global) and its period P
  /// (layer il is global iff il % P == P - 1), RoPE base of the sliding layers, gemma3's linear
  /// RoPE factor on the global layers (0: none), final logit soft-capping (0: none).
  uint32_t n_swa = 0, swa_period = 0;
  float rope_freq_base_swa = 10000.0f, rope_linear_factor = 0.0f, softcap = 0.0f;
  /// gemma4 global layers: KV heads, head dim, K = V (no attn_v), and the rotated share of
  /// their head (rope_freqs: 1 on the first head_dim_global·partial_rotary/2 pairs, 1e30 after).
  uint32_t n_head_kv_global = 0, head_dim_global = 0;
  bool global_k_eq_v = false;
  float partial_rotary = 0.25f;
  /// gemma4 E2B/E4B: per-layer-embedding width (0: none), the last n_kv_shared layers read an
  /// earlier layer's KV cache, and their FFN width when it differs (double-wide MLP; 0: n_ff).
  uint32_t n_embd_per_layer = 0, n_kv_shared = 0, n_ff_shared = 0;

  /// Gemma: FFN width of layer il.
  uint32_t layer_n_ff(uint32_t il) const {
    return n_ff_shared > 0 && il + n_kv_shared >= n_layer ? n_ff_shared : n_ff;
  }
  /// Gemma: whether layer il is a global (full-attention) layer.
  bool is_global(uint32_t il) const { return n_swa == 0 || (swa_period > 0 && il % swa_period == swa_period - 1); }

  /// Number of weights the file will hold.
  uint64_t n_params() const;
  /// Weights one token multiplies with (n_params() with only n_expert_used experts per layer).
  uint64_t n_active_params() const;
};

/// The named shapes `hearth synth` knows (real models first, then the tiny test models).
const std::vector<SynthShape>& synth_shapes();

/// The shape called `name`; throws Error listing the known names.
const SynthShape& find_synth_shape(const std::string& name);

/// `shape` cut to its first `n_layers` layers (everything else unchanged, the name says how many
/// of how many), e.g. to benchmark a few layers of a large model. Throws Error unless
/// 1 <= n_layers <= shape.n_layer.
SynthShape first_layers(const SynthShape& shape, uint32_t n_layers);

/// Options of a synthesis run.
struct SynthOptions {
  quant::GgmlType type = quant::GgmlType::F16;  ///< type of the 2-D weights (norms stay F32)
  uint64_t seed = 1;
  int n_threads = 0;  ///< 0: all cores
  /// Called after each tensor with (bytes written so far, total bytes).
  std::function<void(uint64_t, uint64_t)> progress;
};

/// Writes a GGUF model of `shape` with random weights to `path`: matrices N(0, 1/sqrt(fan_in)),
/// embeddings N(0, 1/sqrt(n_embd)), norm weights N(1, 0.02); MoE routers (ffn_gate_inp) are F32
/// N(0, 1/sqrt(n_embd)) and expert stacks 3-D {n_in, n_out, n_expert}; Gated DeltaNet conv
/// kernels F32 N(0, 0.5), ssm_a F32 N(-0.5, 0.1) (negative, as the converter's −exp(A_log)),
/// ssm_dt.bias F32 N(0, 0.5); a byte-level BPE vocabulary of
/// n_vocab tokens (GPT-2 byte alphabet, merges learnt from a small built-in English text,
/// the family's special tokens). The same shape, type and seed give the same bytes. Throws
/// Error for a type hearth cannot quantize to, or on I/O failure.
void synthesize(const SynthShape& shape, const SynthOptions& options, const std::string& path);

/// The header synthesize() writes for `shape` with matrices of `type` (metadata, tokenizer and
/// tensor table; seed 1) as a header-only gguf::File named "synth:NAME" (File::from_header: the
/// file size is that of the full file, no tensor data is made). For planning a model's memory
/// without a file (plan/catalogue.h). Throws Error as synthesize() does.
gguf::File synth_header(const SynthShape& shape, quant::GgmlType type = quant::GgmlType::F16);

/// ftype id of `general.file_type` for a file whose matrices are all `type` (formats.md §4.1).
uint32_t file_type_of(quant::GgmlType type);

}  // namespace hearth::model

// Model hyper-parameters read from GGUF metadata.
// Source: ../shared/docs/architectures.md §0.2 (generic keys and defaults), §0.3 (MTP layers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace hearth::model {

/// RoPE scaling kinds of `{arch}.rope.scaling.type`.
enum class RopeScaling { kNone, kLinear, kYarn, kLongrope };

/// The hyper-parameters every architecture shares. Per-layer values are expanded to one entry
/// per layer even when the file stores a single number.
struct HParams {
  std::string arch;               ///< general.architecture
  uint32_t n_ctx_train = 0;       ///< {arch}.context_length, tokens
  uint32_t n_embd = 0;            ///< d_model
  uint32_t n_layer = 0;           ///< layers run by the forward pass (block_count - nextn)
  uint32_t n_layer_all = 0;       ///< {arch}.block_count, MTP blocks included
  uint32_t n_vocab = 0;           ///< {arch}.vocab_size or the token list length
  std::vector<uint32_t> n_head;     ///< per layer
  std::vector<uint32_t> n_head_kv;  ///< per layer
  std::vector<uint32_t> n_ff;       ///< per layer (0 where the layer has no dense FFN)
  uint32_t head_dim_k = 0;        ///< {arch}.attention.key_length (default n_embd / n_head)
  uint32_t head_dim_v = 0;        ///< {arch}.attention.value_length
  uint32_t n_rot = 0;             ///< {arch}.rope.dimension_count (default head_dim_k)
  float rms_eps = 0.0f;           ///< {arch}.attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;   ///< 1 / rope.scaling.factor
  float rope_attn_factor = 1.0f;  ///< rope.scaling.attn_factor
  RopeScaling rope_scaling = RopeScaling::kLinear;
  uint32_t n_ctx_orig = 0;        ///< rope.scaling.original_context_length (YaRN)
  uint32_t n_expert = 0;           ///< {arch}.expert_count (0: dense model)
  uint32_t n_expert_used = 0;      ///< {arch}.expert_used_count, experts per token
  uint32_t n_ff_exp = 0;           ///< {arch}.expert_feed_forward_length (default n_ff / n_expert_used)

  /// Reads the generic keys of `arch` from `file`; missing required keys and out-of-range
  /// values raise Error naming the key.
  static HParams read(const gguf::File& file);

  /// Width of layer il's K (resp. V) rows in the KV cache: n_head_kv · head_dim.
  uint32_t n_embd_k_gqa(uint32_t il) const { return n_head_kv[il] * head_dim_k; }
  uint32_t n_embd_v_gqa(uint32_t il) const { return n_head_kv[il] * head_dim_v; }
};

/// Reads `key` as one number for every layer: a scalar applies to all `n_layer` layers, an
/// array must have exactly `n_layer` elements. Missing key: `fallback` for all layers.
std::vector<uint32_t> read_per_layer(const gguf::File& file, const std::string& key, uint32_t n_layer,
                                     uint32_t fallback);

}  // namespace hearth::model

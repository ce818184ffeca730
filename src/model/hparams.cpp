#include "model/hparams.h"

#include <algorithm>
#include <cmath>

namespace hearth::model {

std::vector<uint32_t> read_per_layer(const gguf::File& file, const std::string& key, uint32_t n_layer,
                                     uint32_t fallback) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) return std::vector<uint32_t>(n_layer, fallback);
  try {
    if (!v->is_array()) return std::vector<uint32_t>(n_layer, v->get<uint32_t>());
    std::vector<uint32_t> out = v->get_array<uint32_t>();
    // Arrays may cover the MTP blocks too; the forward pass uses the first n_layer entries.
    if (out.size() < n_layer)
      throw Error("has " + std::to_string(out.size()) + " entries for " + std::to_string(n_layer) + " layers");
    out.resize(n_layer);
    return out;
  } catch (const Error& e) {
    throw Error(file.path() + ": metadata key '" + key + "': " + e.what());
  }
}

HParams HParams::read(const gguf::File& f) {
  HParams hp;
  hp.arch = f.require<std::string>("general.architecture");
  const std::string a = hp.arch + ".";
  hp.n_ctx_train = f.require<uint32_t>(a + "context_length");
  hp.n_embd = f.require<uint32_t>(a + "embedding_length");
  hp.n_layer_all = f.require<uint32_t>(a + "block_count");
  const uint32_t nextn = f.get<uint32_t>(a + "nextn_predict_layers").value_or(0);
  if (hp.n_embd == 0) throw Error(f.path() + ": " + a + "embedding_length is 0");
  if (hp.n_layer_all == 0 || nextn >= hp.n_layer_all)
    throw Error(f.path() + ": " + a + "block_count = " + std::to_string(hp.n_layer_all) + " leaves no layers (" +
                std::to_string(nextn) + " MTP blocks)");
  hp.n_layer = hp.n_layer_all - nextn;

  if (auto nv = f.get<uint32_t>(a + "vocab_size")) {
    hp.n_vocab = *nv;
  } else if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens"); toks != nullptr && toks->is_array()) {
    hp.n_vocab = static_cast<uint32_t>(toks->count());
  }
  if (hp.n_vocab == 0) throw Error(f.path() + ": no vocabulary size (" + a + "vocab_size or tokenizer.ggml.tokens)");

  hp.n_head = read_per_layer(f, a + "attention.head_count", hp.n_layer, 0);
  hp.n_head_kv = f.find(a + "attention.head_count_kv") != nullptr
                     ? read_per_layer(f, a + "attention.head_count_kv", hp.n_layer, 0)
                     : hp.n_head;
  hp.n_ff = read_per_layer(f, a + "feed_forward_length", hp.n_layer, 0);

  const uint32_t n_head0 = hp.n_head.empty() ? 0 : hp.n_head[0];
  const uint32_t hd_default = n_head0 > 0 ? hp.n_embd / n_head0 : 0;
  hp.head_dim_k = f.get<uint32_t>(a + "attention.key_length").value_or(hd_default);
  hp.head_dim_v = f.get<uint32_t>(a + "attention.value_length").value_or(hd_default);
  hp.n_rot = f.get<uint32_t>(a + "rope.dimension_count").value_or(hp.head_dim_k);
  if (hp.n_rot % 2 != 0 || hp.n_rot > hp.head_dim_k)
    throw Error(f.path() + ": " + a + "rope.dimension_count = " + std::to_string(hp.n_rot) +
                " must be even and at most the head dimension " + std::to_string(hp.head_dim_k));
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    if (hp.n_head[il] == 0) continue;
    if (hp.n_head_kv[il] == 0 || hp.n_head[il] % hp.n_head_kv[il] != 0)
      throw Error(f.path() + ": layer " + std::to_string(il) + " has " + std::to_string(hp.n_head[il]) +
                  " query heads, not a multiple of its " + std::to_string(hp.n_head_kv[il]) + " KV heads");
  }

  hp.rms_eps = f.require<float>(a + "attention.layer_norm_rms_epsilon");
  if (!(hp.rms_eps > 0.0f) || !std::isfinite(hp.rms_eps))
    throw Error(f.path() + ": " + a + "attention.layer_norm_rms_epsilon must be positive");
  hp.rope_freq_base = f.get<float>(a + "rope.freq_base").value_or(10000.0f);
  if (!(hp.rope_freq_base > 1.0f)) throw Error(f.path() + ": " + a + "rope.freq_base must be > 1");

  const std::string scaling = f.get<std::string>(a + "rope.scaling.type").value_or("linear");
  if (scaling == "none") hp.rope_scaling = RopeScaling::kNone;
  else if (scaling == "linear") hp.rope_scaling = RopeScaling::kLinear;
  else if (scaling == "yarn") hp.rope_scaling = RopeScaling::kYarn;
  else if (scaling == "longrope") hp.rope_scaling = RopeScaling::kLongrope;
  else throw Error(f.path() + ": unknown " + a + "rope.scaling.type '" + scaling + "'");
  std::optional<float> factor = f.get<float>(a + "rope.scaling.factor");
  if (!factor) factor = f.get<float>(a + "rope.scale_linear");
  if (factor && *factor != 0.0f && hp.rope_scaling != RopeScaling::kNone) {
    if (!(*factor > 0.0f)) throw Error(f.path() + ": " + a + "rope.scaling.factor must be positive");
    hp.rope_freq_scale = 1.0f / *factor;
  }
  hp.rope_attn_factor = f.get<float>(a + "rope.scaling.attn_factor").value_or(1.0f);
  hp.n_ctx_orig = f.get<uint32_t>(a + "rope.scaling.original_context_length").value_or(hp.n_ctx_train);

  hp.n_expert = f.get<uint32_t>(a + "expert_count").value_or(0);
  hp.n_expert_used = f.get<uint32_t>(a + "expert_used_count").value_or(0);
  if (hp.n_expert_used > hp.n_expert)
    throw Error(f.path() + ": " + a + "expert_used_count (" + std::to_string(hp.n_expert_used) + ") exceeds " + a +
                "expert_count (" + std::to_string(hp.n_expert) + ")");
  if (hp.n_expert > 0 && hp.n_expert_used == 0)
    throw Error(f.path() + ": " + a + "expert_used_count is 0 (or missing) but expert_count is " +
                std::to_string(hp.n_expert));
  // Default (architectures.md §6): the dense width shared by the experts used per token.
  const uint32_t ff_exp_default = hp.n_expert_used > 0 && !hp.n_ff.empty() ? hp.n_ff[0] / hp.n_expert_used : 0;
  hp.n_ff_exp = f.get<uint32_t>(a + "expert_feed_forward_length").value_or(ff_exp_default);
  return hp;
}

}  // namespace hearth::model

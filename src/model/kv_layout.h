// What each layer of a model keeps in the KV cache, from the GGUF metadata alone: no tensor is
// bound or read, so the planner (src/plan) can size a context from a file's header, a header
// fetched over HTTP or a virtual header of a catalogue model. The architectures return the same
// vectors from Architecture::kv_layers(), so the runtime and the planner cannot drift apart.
#pragma once

#include <vector>

#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/hparams.h"

namespace hearth::model {

/// Per-layer KV cache requirements (size hp.n_layer) of the model `file` describes, for the
/// architecture hp.arch: full attention for llama / qwen3 / qwen3moe (§2, §5, §6); chunked
/// (8192) layers of llama4 (§3); Gated DeltaNet layers of qwen35 / qwen35moe / qwen3next with
/// conv and recurrent state instead of K/V (§7.4); gemma3 / gemma4 sliding-window layers, and
/// no own K/V for gemma4's KV-sharing layers (§10, §11). Reads metadata only. Throws Error for an
/// unsupported architecture (listing the supported ones) and for the metadata errors the
/// architecture's loader reports (missing or out-of-range keys).
std::vector<KvLayerSpec> kv_layer_specs(const HParams& hp, const gguf::File& file);

// One per architecture file (kv_layer_specs dispatches on hp.arch).
std::vector<KvLayerSpec> kv_layers_dense(const HParams& hp);
std::vector<KvLayerSpec> kv_layers_llama4(const HParams& hp, const gguf::File& file);
std::vector<KvLayerSpec> kv_layers_qwen35(const HParams& hp, const gguf::File& file);
std::vector<KvLayerSpec> kv_layers_gemma(const HParams& hp, const gguf::File& file);

}  // namespace hearth::model

// What a context of a model allocates, per layer kind: the numbers `hearth show --memory`
// prints. Computed with the functions the runtime sizes its buffers with (KvCache::layer_cells),
// so prediction and allocation cannot drift apart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "quant/types.h"

namespace hearth::runtime {

/// Bytes of one kind of layer (all layers with the same attention window and KV presence).
struct MemoryRow {
  std::string kind;  ///< "full attention", "sliding window 1024", "chunked 8192", "recurrent", "no KV"
  uint32_t n_layers = 0;
  uint64_t weight_bytes = 0;  ///< tensors named blk.N.* of these layers
  uint32_t kv_cells = 0;      ///< cells each of these layers stores
  uint64_t kv_bytes = 0;      ///< K and V storage of these layers (in the plan's cache types)
  uint64_t state_bytes = 0;   ///< recurrent and conv state of these layers, all n_seq_max sequences (F32)
};

/// A context's memory, in bytes.
struct MemoryPlan {
  std::vector<MemoryRow> rows;      ///< in order of first appearance among the layers
  uint64_t other_weight_bytes = 0;  ///< tensors outside the blocks (embeddings, output, norms)
  uint64_t weight_bytes = 0;        ///< every tensor of the file
  uint64_t kv_bytes = 0;            ///< equals KvCache::bytes() of a context with these settings
  uint64_t state_bytes = 0;         ///< equals KvCache::recurrent_bytes()
};

/// The memory of a context over `model` with n_ctx cells, micro-batches of n_ubatch tokens, up
/// to n_seq_max sequences and K/V rows stored as type_k / type_v (ContextParams names). Throws
/// Error for sizes of 0 and for cache types the model cannot use (check_kv_cache_types).
MemoryPlan plan_memory(const model::Model& model, uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_seq_max,
                       quant::GgmlType type_k = quant::GgmlType::F16, quant::GgmlType type_v = quant::GgmlType::F16);

/// The same from a file's header alone (metadata and tensor table; no tensor data is read):
/// `specs` are the model's KV layers (model::kv_layer_specs(hp, file), which is what
/// Architecture::kv_layers() returns once loaded). The Model overload calls this one.
MemoryPlan plan_memory(const gguf::File& file, const model::HParams& hp, const std::vector<model::KvLayerSpec>& specs,
                       uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_seq_max,
                       quant::GgmlType type_k = quant::GgmlType::F16, quant::GgmlType type_v = quant::GgmlType::F16);

}  // namespace hearth::runtime

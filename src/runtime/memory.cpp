#include "runtime/memory.h"

#include <cstdlib>

#include "hearth/error.h"
#include "runtime/kv_cache.h"

namespace hearth::runtime {
namespace {

std::string kind_name(const model::KvLayerSpec& s) {
  if (s.recurrent()) return "recurrent";
  if (s.n_embd_k == 0 && s.n_embd_v == 0) return "no KV";
  switch (s.window.kind) {
    case model::AttnWindow::Kind::kSliding: return "sliding window " + std::to_string(s.window.size);
    case model::AttnWindow::Kind::kChunked: return "chunked " + std::to_string(s.window.size);
    default: return "full attention";
  }
}

/// Layer index of a tensor named blk.N.*, or -1.
int64_t block_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  char* end = nullptr;
  const long n = std::strtol(name.c_str() + 4, &end, 10);
  return end != name.c_str() + 4 && *end == '.' ? n : -1;
}

}  // namespace

MemoryPlan plan_memory(const model::Model& model, uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_seq_max,
                       quant::GgmlType type_k, quant::GgmlType type_v) {
  return plan_memory(model.file(), model.hparams(), model.arch().kv_layers(), n_ctx, n_ubatch, n_seq_max, type_k,
                     type_v);
}

MemoryPlan plan_memory(const gguf::File& file, const model::HParams& hp, const std::vector<model::KvLayerSpec>& specs,
                       uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_seq_max, quant::GgmlType type_k,
                       quant::GgmlType type_v) {
  if (n_ctx == 0 || n_ubatch == 0 || n_seq_max == 0) throw Error("n_ctx, n_ubatch and n_seq_max must be at least 1");
  check_kv_cache_types(hp, type_k, type_v);
  const std::vector<uint32_t> cells = KvCache::layer_cells(specs, n_ctx, n_ubatch, n_seq_max);
  MemoryPlan plan;
  std::vector<size_t> row_of(specs.size());
  for (size_t il = 0; il < specs.size(); ++il) {
    const std::string kind = kind_name(specs[il]);
    size_t r = 0;
    while (r < plan.rows.size() && plan.rows[r].kind != kind) ++r;
    if (r == plan.rows.size()) plan.rows.push_back({kind, 0, 0, cells[il], 0, 0});
    MemoryRow& row = plan.rows[r];
    row_of[il] = r;
    ++row.n_layers;
    const uint64_t kv = KvCache::layer_size_bytes(specs[il], cells[il], type_k, type_v);
    row.kv_bytes += kv;
    plan.kv_bytes += kv;
    // KvCache: n_seq_max states of n_embd_r + n_embd_s floats per recurrent layer.
    const uint64_t state = static_cast<uint64_t>(n_seq_max) * (specs[il].n_embd_r + specs[il].n_embd_s) * sizeof(float);
    row.state_bytes += state;
    plan.state_bytes += state;
  }
  for (const gguf::TensorInfo& t : file.tensors()) {
    plan.weight_bytes += t.nbytes;
    const int64_t il = block_of(t.name);
    if (il >= 0 && static_cast<size_t>(il) < specs.size()) plan.rows[row_of[static_cast<size_t>(il)]].weight_bytes += t.nbytes;
    else plan.other_weight_bytes += t.nbytes;
  }
  return plan;
}

}  // namespace hearth::runtime

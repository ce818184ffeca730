// The memory and speed planner: what a context of a model allocates (weights, KV cache per
// layer kind, recurrent state, compute buffers) from the GGUF header alone, the largest context
// that fits a memory budget, the split of layers over devices and the generation speed memory
// bandwidth allows. Weights, KV cache and state are sized by the runtime's own functions
// (runtime::plan_memory over model::kv_layer_specs), so prediction and allocation are equal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "quant/types.h"
#include "runtime/memory.h"

namespace hearth::plan {

/// A model as the planner sees it: a parsed header (a mmap'd file, a header fetched over HTTP
/// or a catalogue model's virtual header; no tensor data is read), its hyper-parameters and KV
/// layout.
struct ModelInfo {
  gguf::File file;
  model::HParams hp;
  std::vector<model::KvLayerSpec> specs;  ///< model::kv_layer_specs(hp, file)
  std::string name;                       ///< what the user named (file, URL or catalogue name)

  /// Reads the hyper-parameters and KV layout from `file`'s metadata. Throws Error as
  /// HParams::read and kv_layer_specs do (missing keys, unsupported architecture).
  static ModelInfo from_header(gguf::File file, std::string name = "");

  /// Elements of every tensor.
  uint64_t n_params() const;
  /// Elements one token multiplies with: expert stacks ({n_in, n_out, n_expert} tensors named
  /// *_exps*) count n_expert_used of their n_expert slices, everything else whole.
  uint64_t n_active_params() const;
};

/// The context to plan (runtime::ContextParams names).
struct PlanParams {
  uint32_t n_ctx = 4096;    ///< KV cells, tokens
  uint32_t n_ubatch = 512;  ///< most tokens per forward pass
  uint32_t n_seq_max = 1;   ///< sequences with their own state / window
  quant::GgmlType type_k = quant::GgmlType::F16;
  quant::GgmlType type_v = quant::GgmlType::F16;
  int n_threads = 0;        ///< compute threads (0: one per core); per-thread matmul buffers
};

/// A context's memory, bytes, and what one generated token reads.
struct Plan {
  PlanParams params;
  runtime::MemoryPlan memory;  ///< weights, KV and state per layer kind (runtime::plan_memory)
  /// Activation scratch, matmul and MoE buffers and logits decode() grows for micro-batches of
  /// min(n_ubatch, n_ctx) tokens (runtime::Context::compute_bytes): an estimate, see compute.cpp.
  uint64_t compute_bytes = 0;
  /// The process itself, measured (docs/fit.md "Peak RSS"): ~12 MiB of program, libraries and
  /// thread stacks, the header pages of the mapping (data_offset bytes) and the tokenizer's
  /// tables, ~160 bytes per vocabulary entry.
  uint64_t runtime_bytes = 0;
  /// Weights copied into another layout at load time: 0, hearth's kernels read every weight
  /// type in place from the mapping (design.md "Rules of the house").
  uint64_t repacked_bytes = 0;
  /// Per layer: weights + KV + state bytes (for splitting layers over devices).
  std::vector<uint64_t> layer_bytes;
  /// Per layer: bytes one generated token reads at a full context: the active weights (experts:
  /// n_expert_used of n_expert), the K/V of every cell the layer attends to (n_ctx, or the
  /// window for windowed layers), and the recurrent state.
  std::vector<uint64_t> layer_read_bytes;
  /// Weights outside the layers (embeddings, output head, norms), and what a token reads of
  /// them: the output head whole, one row of each embedding table.
  uint64_t other_bytes = 0, other_read_bytes = 0;

  uint64_t weights_bytes() const { return memory.weight_bytes; }
  uint64_t kv_bytes() const { return memory.kv_bytes; }
  uint64_t state_bytes() const { return memory.state_bytes; }
  /// weights + KV cache + state + compute + runtime + repacked.
  uint64_t total_bytes() const;
  /// Σ layer_read_bytes + other_read_bytes.
  uint64_t read_bytes_per_token() const;
};

/// Plans a context of `m` with `p`. Throws Error for sizes of 0 and cache types the model
/// cannot use (runtime::check_kv_cache_types).
Plan make_plan(const ModelInfo& m, const PlanParams& p);

/// The compute buffer estimate of Plan::compute_bytes for micro-batches of n_rows tokens on
/// n_threads threads (0: one per core).
uint64_t estimate_compute_bytes(const ModelInfo& m, uint32_t n_rows, int n_threads = 0);

/// The largest n_ctx in [1, limit] whose Plan::total_bytes() is at most budget_bytes (the other
/// settings as in `p`), or 0 if not even n_ctx = 1 fits. total_bytes() never decreases with
/// n_ctx, so this is a binary search.
uint32_t max_context(const ModelInfo& m, const PlanParams& p, uint64_t budget_bytes, uint32_t limit);

/// A memory device layers can be placed on.
struct Device {
  std::string name;
  uint64_t memory_bytes = 0;
  double bandwidth_gb_s = 0;  ///< read bandwidth, 1e9 bytes per second
};

/// Where the layers go (llama.cpp's n_gpu_layers split, see place()).
struct Placement {
  struct Part {
    std::string device;
    uint32_t first_layer = 0, n_layers = 0;
    uint64_t bytes = 0;          ///< weights + KV + state of its layers (+ its share of the rest)
    uint64_t capacity_bytes = 0;
    uint64_t read_bytes = 0;     ///< bytes a generated token reads on this device
    double seconds_per_token = 0;
  };
  std::vector<Part> parts;
  bool fits = false;
  /// Generated tokens per second if reading memory is the bound: 1 / Σ read_bytes / bandwidth.
  double tg_tokens_per_s = 0;
};

/// Places `plan` on `devices` (at least one; the last one is the host's RAM when there are
/// several): if everything fits on the first device it all goes there; otherwise the layers fill
/// the devices in order (each device but the last keeps room for a compute buffer), and the
/// weights outside the layers (embeddings, output head), the program and a compute buffer stay on the last
/// device, as llama.cpp keeps token_embd on the CPU; the last device takes all remaining layers.
/// Fits when no device holds more than its memory. Throws Error for no devices.
Placement place(const Plan& plan, const std::vector<Device>& devices);

/// The largest n_ctx in [1, limit] for which place(make_plan(m, p with n_ctx), devices).fits,
/// or 0 if none (binary search: more context never frees memory).
uint32_t max_context(const ModelInfo& m, const PlanParams& p, const std::vector<Device>& devices, uint32_t limit);

/// "This machine": its RAM (MemAvailable of /proc/meminfo, or MemTotal when `total`), bytes.
/// Throws Error if /proc/meminfo cannot be read.
uint64_t system_memory_bytes(bool total = false);

/// The context `hearth run` / `hearth serve` use when the user gives none: min(n_ctx_train,
/// `preferred`, the largest that fits in budget_bytes), at least 1 — or throws Error saying that
/// the model alone (at n_ctx 1) needs more than budget_bytes, with the numbers.
uint32_t default_context(const ModelInfo& m, const PlanParams& p, uint64_t budget_bytes, uint32_t preferred);

/// Throws Error when a context of p.n_ctx does not fit in budget_bytes, naming the bytes it
/// needs (weights, KV cache, state, compute), the budget and the largest context that fits.
void check_context(const ModelInfo& m, const PlanParams& p, uint64_t budget_bytes);

/// "1.23 GiB" / "512.0 MiB".
std::string format_gib(uint64_t bytes);

}  // namespace hearth::plan

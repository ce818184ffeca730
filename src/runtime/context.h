// A context: KV cache, threads and logits for running a Model on batches of tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kernels/threadpool.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

namespace hearth::runtime {

/// Settings of a context (llama.cpp names).
struct ContextParams {
  uint32_t n_ctx = 4096;    ///< KV cells shared by all sequences, tokens
  uint32_t n_ubatch = 512;  ///< most tokens per forward pass; larger batches are split
  int n_threads = 0;        ///< compute threads (0: one per core)
  /// Sequences that may be in use at once: sizes the windowed KV layers (KvCache) and, for
  /// models with recurrent layers (qwen35, qwen35moe, qwen3next), the sequences (ids
  /// 0 .. n_seq_max-1) with a recurrent state of their own; other models accept ids up to
  /// kMaxSequences-1 whatever this is. 1 .. kMaxSequences.
  uint32_t n_seq_max = 1;
  /// Storage types of the cached K and V rows (kv_cache_types(): F16, BF16, Q8_0, Q4_0;
  /// llama.cpp's type_k / type_v). Caches of other types than F16 use kernels::attention_flash.
  quant::GgmlType type_k = quant::GgmlType::F16;
  quant::GgmlType type_v = quant::GgmlType::F16;
  bool flash_attn = false;  ///< use kernels::attention_flash for F16 caches too
};

/// Tokens to evaluate, each with its position, sequence and whether its logits are wanted
/// (llama.cpp's llama_batch with one sequence per token).
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> pos;
  std::vector<int32_t> seq;
  std::vector<uint8_t> want_logits;

  void add(int32_t token, int32_t position, int32_t sequence, bool logits);
  void clear();
  size_t size() const { return tokens.size(); }
};

/// Runs a model over batches. Not thread-safe; one per concurrent user of the KV cache.
class Context {
 public:
  /// Allocates the KV cache (type_k / type_v rows) for n_ctx cells (KvCache: windowed layers
  /// keep fewer), and the recurrent states of n_seq_max sequences if the model has recurrent
  /// layers. Throws Error for n_ctx or n_ubatch of 0, n_seq_max outside 1 .. kMaxSequences, or
  /// cache types the model cannot use (check_kv_cache_types).
  Context(std::shared_ptr<const model::Model> model, const ContextParams& params);

  /// Evaluates `batch` in micro-batches of at most n_ubatch tokens, storing K/V in the cache
  /// and the logits of the tokens that want them. Throws Error (and changes nothing) for a
  /// token id out of range, a negative position, a bad sequence id, a position a sequence
  /// already holds, or a batch that does not fit in the free cells. With recurrent layers also
  /// for a sequence id >= n_seq_max, and unless each sequence's tokens, in batch order, continue
  /// it at consecutive positions (the first one right after the sequence's last position).
  /// Tokens of several sequences in one micro-batch are fine.
  void decode(const Batch& batch);

  /// Logits (n_vocab floats) of batch token `i` of the last decode(); throws Error if that
  /// token did not ask for logits.
  std::span<const float> logits(size_t i) const;

  /// What later decode() calls output for the tokens that ask for it (Batch::want_logits):
  /// false (the default) their logits; true their final hidden state after the output norm,
  /// RMSNorm(x; output_norm), n_embd floats each (embeddings()), without evaluating the output
  /// head (logits() then throws). Used for embeddings (`hearth serve` /v1/embeddings).
  void set_embeddings(bool on) { embeddings_mode_ = on; }
  bool embeddings_mode() const { return embeddings_mode_; }

  /// Final hidden state after the output norm (n_embd floats) of batch token `i` of the last
  /// decode() made with set_embeddings(true); throws Error if that token did not ask for output
  /// or the decode was not in embeddings mode.
  std::span<const float> embeddings(size_t i) const;

  const model::Model& model() const { return *model_; }
  const ContextParams& params() const { return params_; }
  uint32_t n_ctx() const { return cache_.n_ctx(); }
  KvCache& kv_cache() { return cache_; }
  const KvCache& kv_cache() const { return cache_; }
  const kernels::ThreadPool& pool() const { return pool_; }
  /// Bytes of the buffers decode() has grown so far besides the KV cache (capacities): the
  /// architecture's activation scratch (model::Scratch: [n_ubatch][width] floats per slot, the
  /// matmul activation and tile buffers, the MoE routing) and the logits. What the planner's
  /// compute estimate (plan::Plan::compute_bytes) predicts; measured by the plan tests.
  uint64_t compute_bytes() const;

  /// Observer of the layer matrix multiplications: (weight tensor name, activations x as
  /// [n_rows][n_in] f32, n_rows, n_in), called before each one of every later decode(). Used by
  /// `hearth imatrix` (formats.md §3.7). The output head is not observed. nullptr removes it;
  /// without one decoding has no extra cost.
  using MatmulObserver =
      std::function<void(const std::string& weight_name, const float* x, int64_t n_rows, int64_t n_in)>;
  void set_matmul_observer(MatmulObserver observer);

  /// Observer of the expert multiplications of MoE layers (ggml MUL_MAT_ID), one call per expert
  /// that received rows: (expert stack tensor name, expert, n_expert, its rows x as
  /// [n_rows][n_in] f32, n_rows, n_in). Expert products are not passed to the MatmulObserver.
  /// nullptr removes it.
  using MatmulIdObserver = std::function<void(const std::string& weight_name, int64_t expert, int64_t n_expert,
                                               const float* x, int64_t n_rows, int64_t n_in)>;
  void set_matmul_id_observer(MatmulIdObserver observer);

 private:
  void decode_ubatch(const Batch& batch, size_t begin, size_t end);
  /// Tensor names by the address of their data in the file mapping (for the observers).
  std::shared_ptr<const std::unordered_map<const uint8_t*, std::string>> tensor_names() const;

  std::shared_ptr<const model::Model> model_;
  ContextParams params_;
  kernels::ThreadPool pool_;
  KvCache cache_;
  model::ForwardState state_;
  std::vector<float> logits_;        // [n_outputs][n_vocab]
  std::vector<int32_t> logits_row_;  // batch index -> row of logits_ (or embd_), -1 if none
  bool embeddings_mode_ = false;     // set_embeddings()
  bool last_embeddings_ = false;     // the last decode() wrote embd_ instead of logits_
  std::vector<float> embd_;          // [n_outputs][n_embd] (embeddings mode)
  // Per attention window w of the cache (0: full): the storage rows (slots) of the current
  // micro-batch's tokens, each sequence's slots ordered by position, and the tokens' spans.
  std::vector<std::vector<int32_t>> window_slots_;
  std::vector<std::map<int32_t, std::vector<int32_t>>> window_lists_;
  std::vector<std::vector<kernels::AttnSpan>> span_sets_;
  std::vector<const int32_t*> layer_cells_;
  std::vector<const kernels::AttnSpan*> layer_spans_;
};

}  // namespace hearth::runtime

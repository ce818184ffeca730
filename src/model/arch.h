// The interface every architecture implements, and what the runtime hands it per call.
// Architectures are written once against the ops of kernels/ (design.md "Rules of the house").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/threadpool.h"
#include "model/hparams.h"
#include "model/weights.h"
#include "quant/types.h"

namespace hearth::model {

/// Which earlier positions a layer's queries see (llama.cpp's llama_swa_type). A query at
/// position p_q sees a key at position p_k <= p_q of its sequence when:
///   kFull:    always;
///   kSliding: p_q - p_k < size (LLAMA_SWA_TYPE_STANDARD: Gemma's sliding-window layers,
///             architectures.md §10, §11);
///   kChunked: p_k / size == p_q / size (LLAMA_SWA_TYPE_CHUNKED: Llama 4's local layers, §3).
struct AttnWindow {
  enum class Kind : uint8_t { kFull, kSliding, kChunked };
  Kind kind = Kind::kFull;
  int32_t size = 0;  ///< window or chunk length in positions (> 0 unless kFull)

  /// First position a query at `pos` sees.
  int32_t first_visible(int32_t pos) const {
    switch (kind) {
      case Kind::kSliding: return pos - size + 1 > 0 ? pos - size + 1 : 0;
      case Kind::kChunked: return pos / size * size;
      default: return 0;
    }
  }
  bool operator==(const AttnWindow&) const = default;
};

/// What the KV cache holds for one layer: the number of K and V values per cell
/// (n_head_kv · head_dim) and the attention window of its queries. A layer without KV (a
/// recurrent layer) has both widths 0. A recurrent layer (Gated DeltaNet, architectures.md §7.4)
/// instead keeps, per sequence, a fixed-size state whatever the context: n_embd_r floats of conv
/// state ((K−1)·C_conv) and n_embd_s floats of recurrent state (H_v·d_k·d_v); both 0 for
/// attention layers.
struct KvLayerSpec {
  uint32_t n_embd_k = 0;
  uint32_t n_embd_v = 0;
  AttnWindow window;
  uint32_t n_embd_r = 0;
  uint32_t n_embd_s = 0;

  bool recurrent() const { return n_embd_r > 0 || n_embd_s > 0; }
};

/// One layer of the KV cache as the forward pass writes and reads it: cell c's K row (n_embd_k
/// values stored as type_k, whole blocks; formats.md §2.1, §2.2) at k + c·k_stride bytes, V
/// likewise (runtime::KvCache).
struct KvLayer {
  uint8_t* k = nullptr;
  uint8_t* v = nullptr;
  int64_t k_stride = 0;  ///< bytes between consecutive cells
  int64_t v_stride = 0;
  quant::GgmlType type_k = quant::GgmlType::F16;
  quant::GgmlType type_v = quant::GgmlType::F16;
  /// Recurrent layers: the state of sequence slot s (UBatch::seq_slots) is the conv state at
  /// conv + s·conv_stride and the recurrent state at ssm + s·ssm_stride (F32; layouts of
  /// kernels/delta_net.h). Null for attention layers.
  float* conv = nullptr;
  float* ssm = nullptr;
  int64_t conv_stride = 0;  ///< floats per slot (KvLayerSpec::n_embd_r)
  int64_t ssm_stride = 0;   ///< floats per slot (KvLayerSpec::n_embd_s)
};

/// One micro-batch, prepared by runtime::Context: the cells are already allocated and the
/// attention spans already masked.
struct UBatch {
  int64_t n_tokens = 0;
  const int32_t* tokens = nullptr;         ///< [n_tokens] token ids
  const int32_t* pos = nullptr;            ///< [n_tokens] positions in their sequence
  const int32_t* cells = nullptr;          ///< [n_tokens] KV cell each token's K/V goes to
  const kernels::AttnSpan* spans = nullptr;///< [n_tokens] cells each token attends to (full attention)
  /// Per layer (null: every layer uses `cells` and `spans`): layer_cells[il] is [n_tokens] the
  /// cells of that layer's storage each token's K/V goes to, layer_spans[il] [n_tokens] the cells
  /// each token attends to with the layer's AttnWindow applied.
  const int32_t* const* layer_cells = nullptr;
  const kernels::AttnSpan* const* layer_spans = nullptr;
  const int32_t* out_ids = nullptr;        ///< [n_outputs] rows (token indices) whose logits are wanted
  int64_t n_outputs = 0;
  /// [n_tokens] recurrent-state slot of each token's sequence (KvLayer::conv / ssm); the tokens
  /// of one slot are in position order and continue its state. Null for models without
  /// recurrent layers.
  const int32_t* seq_slots = nullptr;
};

/// Buffers reused across forward calls of one context.
struct Scratch {
  std::vector<std::vector<float>> bufs;
  kernels::MatmulScratch matmul;
  kernels::MoeRouting moe;  ///< routing of the current MoE layer
  std::vector<int32_t> moe_position;                ///< inverse of moe.order
  std::vector<kernels::MoeMatmul> moe_jobs;         ///< expert products of one MoE stage
  std::vector<kernels::MatmulScratch> moe_matmul;   ///< one per thread (MoeSchedule::kUnits)
};

/// Called before a layer matrix multiplication y = W x with the weight view `w` and the
/// activations x ([n_rows][w.n_in] f32); used to collect importance matrices (formats.md §3.7).
using MatmulHook = std::function<void(const kernels::MatrixView& w, const float* x, int64_t n_rows)>;

/// Called before the multiplication of the rows routed to expert `expert` with that expert's
/// matrix (ggml MUL_MAT_ID, one call per expert that received rows): `stack` is the whole
/// 3-D expert tensor {n_in, n_out, n_expert} viewed as n_out·n_expert rows (its data is the
/// tensor's start, so it names the tensor), x is [n_rows][stack.n_in] f32. Used to collect
/// per-expert importance matrices (formats.md §3.7 "For MUL_MAT_ID ... per selected expert").
using MatmulIdHook = std::function<void(const kernels::MatrixView& stack, int64_t expert, int64_t n_expert,
                                        const float* x, int64_t n_rows)>;

/// Per-context state a forward pass runs with.
struct ForwardState {
  const kernels::ThreadPool* pool = nullptr;
  std::vector<KvLayer> kv;  ///< one per layer
  bool flash_attn = false;  ///< attention_flash also for F16 caches (other cache types always use it)
  Scratch scratch;
  MatmulHook on_matmul;     ///< when set, called by Compute::matmul (not for the output head)
  MatmulIdHook on_matmul_id;  ///< when set, called for every expert multiplication (on_matmul is not)
  /// When set, Compute::output_head also writes the final hidden state after the output norm of
  /// each output row, [n_outputs][n_embd] floats in out_ids order (embeddings); the forward
  /// pass's `logits` may then be null, and the output head is skipped.
  float* embeddings = nullptr;
};

/// An architecture bound to the weights of one file.
class Architecture {
 public:
  virtual ~Architecture() = default;

  /// Per-layer KV cache requirements (size n_layer).
  virtual std::vector<KvLayerSpec> kv_layers() const = 0;

  /// Runs the model on a micro-batch: reads/writes the KV cache through `st.kv` and writes
  /// `b.n_outputs` rows of n_vocab logits (float) to `logits`, in out_ids order (`logits` null:
  /// only ForwardState::embeddings are wanted).
  virtual void forward(const UBatch& b, ForwardState& st, float* logits) const = 0;
};

/// Binds the weights of `hp.arch` from `weights`. Throws Error naming an unsupported
/// architecture (and listing the supported ones), a missing tensor or a wrong shape.
std::unique_ptr<Architecture> make_architecture(const HParams& hp, Weights& weights);

/// Names of the architectures hearth runs ("llama", "qwen3", ...).
std::vector<std::string> supported_architectures();

// One factory per architecture file.
std::unique_ptr<Architecture> make_llama(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_qwen3(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_qwen3moe(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_qwen35(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_qwen35moe(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_qwen3next(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_llama4(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_gemma3(const HParams& hp, Weights& weights);
std::unique_ptr<Architecture> make_gemma4(const HParams& hp, Weights& weights);

}  // namespace hearth::model

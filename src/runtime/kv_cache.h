// The KV cache: n_ctx cells shared by up to 64 sequences, K and V rows per layer stored as
// F16, BF16, Q8_0 or Q4_0 (llama.cpp's KV cache types); and for the recurrent (Gated DeltaNet)
// layers of hybrid models, a fixed-size state per sequence (architectures.md §7.4) beside it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/attention.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "quant/types.h"

namespace hearth::runtime {

/// Sequence ids are 0 .. kMaxSequences-1 (one bit each in a cell's sequence mask).
inline constexpr int32_t kMaxSequences = 64;

/// The types K and V rows can be stored in (llama.cpp's --cache-type-k / --cache-type-v values
/// hearth supports): F16 (the default), BF16, Q8_0, Q4_0.
const std::vector<quant::GgmlType>& kv_cache_types();

/// llama.cpp's name of a cache type: the lower-case ggml name ("f16", "q8_0").
std::string kv_cache_type_name(quant::GgmlType type);

/// The cache type named `name` (case-insensitive: "q8_0", "F16"). Throws Error naming the value
/// and listing the valid names for anything else.
quant::GgmlType parse_kv_cache_type(std::string_view name);

/// Throws Error unless type_k and type_v are cache types (kv_cache_types()) whose block size
/// divides the model's head dims (head_dim_k for K, head_dim_v for V: each head's row must be
/// whole blocks; formats.md §1.6), naming the type, the head dim and the block size.
void check_kv_cache_types(const model::HParams& hp, quant::GgmlType type_k, quant::GgmlType type_v);

/// Cells of the cache. A cell is free (pos < 0) or holds the K/V of one token at position
/// `pos`, shared by the sequences in `seq_mask` (a prefix copied with seq_cp is stored once).
///
/// Memory follows the architecture (architectures.md §3, §10, §11): a full-attention layer
/// stores every cell, a layer with an AttnWindow (sliding window or chunk of `size` positions)
/// only min(n_ctx, size·n_seq_max + n_ubatch) "slots", which is what the queries of one
/// micro-batch plus the windows the other sequences keep can see. Each windowed group of layers
/// maps cells to its slots; a cell's slot is reused once no later query of its sequences can see
/// it (evicted lazily, when a micro-batch needs slots). Positions evicted that way cannot be
/// attended to again: re-evaluating a sequence from before its window is an error.
///
/// Recurrent layers (KvLayerSpec::recurrent()) keep one state per sequence id 0 .. n_seq_max-1
/// (the sequence's slot), zero while the sequence holds no tokens. Such a state sums up every
/// token of its sequence and cannot be rolled back: on a cache with recurrent layers, seq_rm may
/// only remove whole sequences (which resets their state) and seq_cp only copy a whole sequence
/// to an empty one (with its state), as llama.cpp's recurrent memory.
class KvCache {
 public:
  /// Allocates the layers of `specs` (see layer_cells() for the sizes) with K rows stored as
  /// type_k and V rows as type_v and, if some layers are recurrent, n_seq_max zeroed states for
  /// them (recurrent_bytes() = n_seq_max · Σ (n_embd_r + n_embd_s) · 4). Throws Error for n_ctx
  /// or n_ubatch of 0, n_seq_max outside 1..kMaxSequences, a windowed layer with a window size
  /// <= 0, a type that is not a cache type, or a layer whose row width is not a multiple of its
  /// type's block size.
  KvCache(const std::vector<model::KvLayerSpec>& specs, uint32_t n_ctx, uint32_t n_ubatch = 512,
          uint32_t n_seq_max = 1, quant::GgmlType type_k = quant::GgmlType::F16,
          quant::GgmlType type_v = quant::GgmlType::F16);

  /// Cells of storage per layer the constructor allocates: n_ctx for full attention,
  /// min(n_ctx, size·n_seq_max + n_ubatch) for a windowed layer, 0 for a layer without KV.
  /// The planner (`hearth show --memory`) uses this same function.
  static std::vector<uint32_t> layer_cells(const std::vector<model::KvLayerSpec>& specs, uint32_t n_ctx,
                                           uint32_t n_ubatch, uint32_t n_seq_max);

  /// Bytes of one layer of `cells` cells: cells · (row_size(type_k, n_embd_k) +
  /// row_size(type_v, n_embd_v)) (quant::row_size: F16/BF16 2 bytes per value, Q8_0 34 and
  /// Q4_0 18 bytes per 32 values). The constructor and the planner both size with it. Throws
  /// Error (quant::row_size) for a row width that is not a multiple of the block size.
  static uint64_t layer_size_bytes(const model::KvLayerSpec& spec, uint32_t cells, quant::GgmlType type_k,
                                   quant::GgmlType type_v);

  uint32_t n_ctx() const { return static_cast<uint32_t>(pos_.size()); }
  /// Cells holding a token.
  uint32_t n_used() const { return n_used_; }
  /// Bytes of K and V storage.
  uint64_t bytes() const;
  /// Bytes of K and V storage of layer il.
  uint64_t layer_bytes(size_t il) const;
  /// Whether some layer keeps a recurrent state.
  bool recurrent() const { return recurrent_; }
  /// Sequences with a recurrent state of their own (ids 0 .. n_seq_max-1).
  uint32_t n_seq_max() const { return n_seq_max_; }
  /// Bytes of recurrent and conv state allocated for all n_seq_max sequences (0 without
  /// recurrent layers).
  uint64_t recurrent_bytes() const;

  /// The layers' specs as given to the constructor.
  const std::vector<model::KvLayerSpec>& specs() const { return specs_; }
  /// Storage types of the K and V rows.
  quant::GgmlType type_k() const { return type_k_; }
  quant::GgmlType type_v() const { return type_v_; }
  /// Views of every layer's storage for the forward pass.
  std::vector<model::KvLayer> layers();

  /// Claims a free cell for (seq, pos); the caller has checked there is room. Throws Error if
  /// the sequence already has a token at `pos`. Windowed layers get slots for the cell, evicting
  /// cells no query at or after `next_query[s]` of each sequence s can see (next_query: per
  /// sequence, the smallest position still to be evaluated; absent: seq_pos_max(s) + 1).
  int32_t claim(int32_t seq, int32_t pos, const std::map<int32_t, int32_t>& next_query = {});
  /// Number of free cells.
  uint32_t n_free() const { return n_ctx() - n_used_; }

  /// Throws Error (changing nothing) if a query of `seq` at positions from `p_min` on would need
  /// a cell that the windowed layers have already evicted.
  void check_window(int32_t seq, int32_t p_min) const;

  /// Number of distinct attention windows (index 0: full attention; 1..: windowed groups).
  size_t n_windows() const { return windows_.size(); }
  /// Window index of layer il.
  size_t layer_window(size_t il) const { return layer_window_[il]; }
  const model::AttnWindow& window(size_t w) const { return windows_[w]; }
  /// Storage row (slot) of cell c in window group w (w = 0: c itself; -1 if it has none).
  int32_t slot(size_t w, int32_t c) const { return w == 0 ? c : groups_[w].slot_of[static_cast<size_t>(c)]; }

  /// The cells of sequence `seq` with position <= max_pos, ordered by position.
  void cells_of(int32_t seq, int32_t max_pos, std::vector<int32_t>& out) const;
  /// Whether `seq` holds a token at `pos`.
  bool contains(int32_t seq, int32_t pos) const { return seq_cells_[static_cast<size_t>(seq)].count(pos) != 0; }
  /// Position held by cell c (-1 if free).
  int32_t cell_pos(int32_t c) const { return pos_[static_cast<size_t>(c)]; }
  /// Largest position of `seq`, or -1 if it holds no tokens.
  int32_t seq_pos_max(int32_t seq) const;

  /// Removes the tokens of `seq` with p0 <= pos < p1 (p1 < 0: to the end; seq < 0: every
  /// sequence). Cells no longer used by any sequence become free. With recurrent layers, a
  /// sequence that loses all its tokens gets a zero state, and removing only some of a
  /// sequence's tokens throws Error (nothing is removed then). Throws Error for seq >= kMaxSequences.
  void seq_rm(int32_t seq, int32_t p0, int32_t p1);
  /// Makes `dst` share the tokens of `src` with p0 <= pos < p1 (no copy of K/V). With recurrent
  /// layers the range must cover all of src's tokens and dst must hold none; src's state is
  /// copied to dst (else Error, nothing copied). Throws Error for ids outside 0 ..
  /// kMaxSequences-1 (with recurrent layers: 0 .. n_seq_max-1).
  void seq_cp(int32_t src, int32_t dst, int32_t p0, int32_t p1);
  /// Frees every cell (and zeroes every recurrent state).
  void clear();

 private:
  /// Slots of one windowed group of layers.
  struct Group {
    std::vector<int32_t> slot_of;  // per cell, -1 = none
    std::vector<int32_t> cell_of;  // per slot, -1 = free
    uint32_t n_free = 0;
    uint32_t next_free = 0;        // search hint
  };
  void free_cell(int32_t c);
  int32_t take_slot(size_t w, int32_t c, const std::map<int32_t, int32_t>& next_query);

  std::vector<model::KvLayerSpec> specs_;
  std::vector<uint32_t> layer_cells_;
  quant::GgmlType type_k_, type_v_;
  std::vector<std::vector<uint8_t>> k_, v_;   // per layer [layer_cells][row bytes of n_embd_k|v]
  std::vector<int32_t> pos_;                  // per cell, -1 = free
  std::vector<uint64_t> seq_mask_;            // per cell
  std::vector<std::map<int32_t, int32_t>> seq_cells_;  // per sequence: position -> cell
  uint32_t n_used_ = 0;
  uint32_t next_free_ = 0;                    // search hint
  std::vector<model::AttnWindow> windows_;    // [0] = full attention
  std::vector<size_t> layer_window_;          // per layer
  std::vector<Group> groups_;                 // per window ([0] unused)
  std::vector<std::vector<float>> r_, s_;     // per layer [n_seq_max][n_embd_r|s] (recurrent layers)
  uint32_t n_seq_max_ = 1;
  bool recurrent_ = false;

  void check_seq(int32_t seq, const char* what) const;
  void reset_state(int32_t seq);
};

}  // namespace hearth::runtime

// The KV cache: n_ctx cells shared by up to 64 sequences, F16 K and V rows per layer.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "kernels/attention.h"
#include "model/arch.h"

namespace hearth::runtime {

/// Sequence ids are 0 .. kMaxSequences-1 (one bit each in a cell's sequence mask).
inline constexpr int32_t kMaxSequences = 64;

/// Cells of the cache. A cell is free (pos < 0) or holds the K/V of one token at position
/// `pos`, shared by the sequences in `seq_mask` (a prefix copied with seq_cp is stored once).
class KvCache {
 public:
  /// Allocates n_ctx cells for the layers of `specs` (bytes = n_ctx · Σ (n_embd_k + n_embd_v) · 2).
  KvCache(const std::vector<model::KvLayerSpec>& specs, uint32_t n_ctx);

  uint32_t n_ctx() const { return static_cast<uint32_t>(pos_.size()); }
  /// Cells holding a token.
  uint32_t n_used() const { return n_used_; }
  /// Bytes of K and V storage.
  uint64_t bytes() const;

  /// The layers' specs as given to the constructor.
  const std::vector<model::KvLayerSpec>& specs() const { return specs_; }
  /// Views of every layer's storage for the forward pass.
  std::vector<model::KvLayer> layers();

  /// Claims a free cell for (seq, pos); the caller has checked there is room. Throws Error if
  /// the sequence already has a token at `pos`.
  int32_t claim(int32_t seq, int32_t pos);
  /// Number of free cells.
  uint32_t n_free() const { return n_ctx() - n_used_; }

  /// The cells of sequence `seq` with position <= max_pos, ordered by position.
  void cells_of(int32_t seq, int32_t max_pos, std::vector<int32_t>& out) const;
  /// Whether `seq` holds a token at `pos`.
  bool contains(int32_t seq, int32_t pos) const { return seq_cells_[static_cast<size_t>(seq)].count(pos) != 0; }
  /// Position held by cell c (-1 if free).
  int32_t cell_pos(int32_t c) const { return pos_[static_cast<size_t>(c)]; }
  /// Largest position of `seq`, or -1 if it holds no tokens.
  int32_t seq_pos_max(int32_t seq) const;

  /// Removes the tokens of `seq` with p0 <= pos < p1 (p1 < 0: to the end; seq < 0: every
  /// sequence). Cells no longer used by any sequence become free.
  void seq_rm(int32_t seq, int32_t p0, int32_t p1);
  /// Makes `dst` share the tokens of `src` with p0 <= pos < p1 (no copy of K/V).
  void seq_cp(int32_t src, int32_t dst, int32_t p0, int32_t p1);
  /// Frees every cell.
  void clear();

 private:
  std::vector<model::KvLayerSpec> specs_;
  std::vector<std::vector<uint16_t>> k_, v_;  // per layer [n_ctx][n_embd_k|v]
  std::vector<int32_t> pos_;                  // per cell, -1 = free
  std::vector<uint64_t> seq_mask_;            // per cell
  std::vector<std::map<int32_t, int32_t>> seq_cells_;  // per sequence: position -> cell
  uint32_t n_used_ = 0;
  uint32_t next_free_ = 0;                    // search hint
};

}  // namespace hearth::runtime

#include "runtime/kv_cache.h"

#include <algorithm>
#include <string>

#include "hearth/error.h"

namespace hearth::runtime {

KvCache::KvCache(const std::vector<model::KvLayerSpec>& specs, uint32_t n_ctx)
    : specs_(specs), pos_(n_ctx, -1), seq_mask_(n_ctx, 0), seq_cells_(kMaxSequences) {
  for (const model::KvLayerSpec& s : specs) {
    k_.emplace_back(static_cast<size_t>(n_ctx) * s.n_embd_k);
    v_.emplace_back(static_cast<size_t>(n_ctx) * s.n_embd_v);
  }
}

uint64_t KvCache::bytes() const {
  uint64_t n = 0;
  for (size_t il = 0; il < k_.size(); ++il) n += (k_[il].size() + v_[il].size()) * sizeof(uint16_t);
  return n;
}

std::vector<model::KvLayer> KvCache::layers() {
  std::vector<model::KvLayer> out;
  for (size_t il = 0; il < specs_.size(); ++il)
    out.push_back({k_[il].data(), v_[il].data(), specs_[il].n_embd_k, specs_[il].n_embd_v});
  return out;
}

int32_t KvCache::claim(int32_t seq, int32_t pos) {
  auto& index = seq_cells_[static_cast<size_t>(seq)];
  if (index.count(pos))
    throw Error("sequence " + std::to_string(seq) + " already has a token at position " + std::to_string(pos));
  const uint32_t n = n_ctx();
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t c = (next_free_ + i) % n;
    if (pos_[c] < 0) {
      pos_[c] = pos;
      seq_mask_[c] = uint64_t{1} << seq;
      index[pos] = static_cast<int32_t>(c);
      ++n_used_;
      next_free_ = (c + 1) % n;
      return static_cast<int32_t>(c);
    }
  }
  throw Error("the context is full: all " + std::to_string(n) + " cells are in use");
}

void KvCache::cells_of(int32_t seq, int32_t max_pos, std::vector<int32_t>& out) const {
  out.clear();
  const auto& index = seq_cells_[static_cast<size_t>(seq)];
  for (auto it = index.begin(); it != index.end() && it->first <= max_pos; ++it) out.push_back(it->second);
}

int32_t KvCache::seq_pos_max(int32_t seq) const {
  const auto& index = seq_cells_[static_cast<size_t>(seq)];
  return index.empty() ? -1 : index.rbegin()->first;
}

void KvCache::seq_rm(int32_t seq, int32_t p0, int32_t p1) {
  for (int32_t s = 0; s < kMaxSequences; ++s) {
    if (seq >= 0 && s != seq) continue;
    auto& index = seq_cells_[static_cast<size_t>(s)];
    auto it = index.lower_bound(p0);
    while (it != index.end() && (p1 < 0 || it->first < p1)) {
      const int32_t c = it->second;
      seq_mask_[c] &= ~(uint64_t{1} << s);
      if (seq_mask_[c] == 0) {
        pos_[c] = -1;
        --n_used_;
      }
      it = index.erase(it);
    }
  }
}

void KvCache::seq_cp(int32_t src, int32_t dst, int32_t p0, int32_t p1) {
  if (src == dst) return;
  const auto& from = seq_cells_[static_cast<size_t>(src)];
  auto& to = seq_cells_[static_cast<size_t>(dst)];
  for (auto it = from.lower_bound(p0); it != from.end() && (p1 < 0 || it->first < p1); ++it) {
    if (to.count(it->first))
      throw Error("seq_cp: sequence " + std::to_string(dst) + " already has a token at position " +
                  std::to_string(it->first));
  }
  for (auto it = from.lower_bound(p0); it != from.end() && (p1 < 0 || it->first < p1); ++it) {
    seq_mask_[it->second] |= uint64_t{1} << dst;
    to[it->first] = it->second;
  }
}

void KvCache::clear() {
  std::fill(pos_.begin(), pos_.end(), -1);
  std::fill(seq_mask_.begin(), seq_mask_.end(), 0);
  for (auto& index : seq_cells_) index.clear();
  n_used_ = 0;
  next_free_ = 0;
}

}  // namespace hearth::runtime

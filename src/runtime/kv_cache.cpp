#include "runtime/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <tuple>

#include "hearth/error.h"

namespace hearth::runtime {

const std::vector<quant::GgmlType>& kv_cache_types() {
  static const std::vector<quant::GgmlType> types = {quant::GgmlType::F16, quant::GgmlType::BF16,
                                                     quant::GgmlType::Q8_0, quant::GgmlType::Q4_0};
  return types;
}

std::string kv_cache_type_name(quant::GgmlType type) {
  std::string n(quant::type_name(type));
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return n;
}

namespace {

std::string valid_cache_types() {
  std::string out;
  for (quant::GgmlType t : kv_cache_types()) out += (out.empty() ? "" : ", ") + kv_cache_type_name(t);
  return out;
}

bool is_cache_type(quant::GgmlType type) {
  const auto& ts = kv_cache_types();
  return std::find(ts.begin(), ts.end(), type) != ts.end();
}

void check_cache_type(quant::GgmlType type, const char* which) {
  if (!is_cache_type(type))
    throw Error(std::string("unsupported ") + which + " cache type " + kv_cache_type_name(type) + " (valid: " +
                valid_cache_types() + ")");
}

}  // namespace

quant::GgmlType parse_kv_cache_type(std::string_view name) {
  const std::optional<quant::GgmlType> t = quant::type_from_name(name);
  if (!t || !is_cache_type(*t))
    throw Error("unsupported KV cache type '" + std::string(name) + "' (valid: " + valid_cache_types() + ")");
  return *t;
}

void check_kv_cache_types(const model::HParams& hp, quant::GgmlType type_k, quant::GgmlType type_v) {
  check_cache_type(type_k, "K");
  check_cache_type(type_v, "V");
  const int64_t bk = quant::traits(type_k).blck_size, bv = quant::traits(type_v).blck_size;
  if (hp.head_dim_k % bk != 0)
    throw Error("K cache type " + kv_cache_type_name(type_k) + " needs head_dim_k (" + std::to_string(hp.head_dim_k) +
                ") to be a multiple of its block size " + std::to_string(bk));
  if (hp.head_dim_v % bv != 0)
    throw Error("V cache type " + kv_cache_type_name(type_v) + " needs head_dim_v (" + std::to_string(hp.head_dim_v) +
                ") to be a multiple of its block size " + std::to_string(bv));
}

uint64_t KvCache::layer_size_bytes(const model::KvLayerSpec& spec, uint32_t cells, quant::GgmlType type_k,
                                   quant::GgmlType type_v) {
  return static_cast<uint64_t>(cells) *
         (quant::row_size(type_k, spec.n_embd_k) + quant::row_size(type_v, spec.n_embd_v));
}

std::vector<uint32_t> KvCache::layer_cells(const std::vector<model::KvLayerSpec>& specs, uint32_t n_ctx,
                                           uint32_t n_ubatch, uint32_t n_seq_max) {
  std::vector<uint32_t> out;
  for (const model::KvLayerSpec& s : specs) {
    if (s.n_embd_k == 0 && s.n_embd_v == 0) {
      out.push_back(0);
    } else if (s.window.kind == model::AttnWindow::Kind::kFull) {
      out.push_back(n_ctx);
    } else {
      const uint64_t need = static_cast<uint64_t>(s.window.size) * n_seq_max + n_ubatch;
      out.push_back(static_cast<uint32_t>(std::min<uint64_t>(n_ctx, need)));
    }
  }
  return out;
}

KvCache::KvCache(const std::vector<model::KvLayerSpec>& specs, uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_seq_max,
                 quant::GgmlType type_k, quant::GgmlType type_v)
    : specs_(specs), type_k_(type_k), type_v_(type_v), pos_(n_ctx, -1), seq_mask_(n_ctx, 0), seq_cells_(kMaxSequences), n_seq_max_(n_seq_max) {
  if (n_ctx == 0) throw Error("n_ctx must be at least 1");
  if (n_ubatch == 0) throw Error("n_ubatch must be at least 1");
  if (n_seq_max == 0 || n_seq_max > static_cast<uint32_t>(kMaxSequences))
    throw Error("n_seq_max = " + std::to_string(n_seq_max) + " is out of range (1.." + std::to_string(kMaxSequences) +
                ")");
  check_cache_type(type_k, "K");
  check_cache_type(type_v, "V");
  windows_.push_back(model::AttnWindow{});
  for (size_t il = 0; il < specs.size(); ++il) {
    const model::KvLayerSpec& spec = specs[il];
    if (spec.window.kind != model::AttnWindow::Kind::kFull && spec.window.size <= 0)
      throw Error("a windowed attention layer has window size " + std::to_string(spec.window.size));
    for (const auto& [width, type, which] :
         {std::tuple{spec.n_embd_k, type_k, "K"}, std::tuple{spec.n_embd_v, type_v, "V"}}) {
      if (width % quant::traits(type).blck_size != 0)
        throw Error(std::string(which) + " cache type " + kv_cache_type_name(type) + ": layer " + std::to_string(il) +
                    " has rows of " + std::to_string(width) + " values, not a multiple of the block size " +
                    std::to_string(quant::traits(type).blck_size));
    }
  }
  layer_cells_ = layer_cells(specs, n_ctx, n_ubatch, n_seq_max);
  for (size_t il = 0; il < specs.size(); ++il) {
    const model::KvLayerSpec& spec = specs[il];
    const auto it = std::find(windows_.begin(), windows_.end(), spec.window);
    layer_window_.push_back(static_cast<size_t>(it - windows_.begin()));
    if (it == windows_.end()) windows_.push_back(spec.window);
    k_.emplace_back(static_cast<size_t>(layer_cells_[il]) * quant::row_size(type_k, spec.n_embd_k));
    v_.emplace_back(static_cast<size_t>(layer_cells_[il]) * quant::row_size(type_v, spec.n_embd_v));
    r_.emplace_back(static_cast<size_t>(n_seq_max) * spec.n_embd_r);
    s_.emplace_back(static_cast<size_t>(n_seq_max) * spec.n_embd_s);
    recurrent_ = recurrent_ || spec.recurrent();
  }
  groups_.resize(windows_.size());
  for (size_t w = 1; w < windows_.size(); ++w) {
    uint32_t n_slots = 0;
    for (size_t il = 0; il < specs.size(); ++il)
      if (layer_window_[il] == w) n_slots = std::max(n_slots, layer_cells_[il]);
    Group& g = groups_[w];
    g.slot_of.assign(n_ctx, -1);
    g.cell_of.assign(n_slots, -1);
    g.n_free = n_slots;
  }
}

uint64_t KvCache::bytes() const {
  uint64_t n = 0;
  for (size_t il = 0; il < k_.size(); ++il) n += layer_bytes(il);
  return n;
}

uint64_t KvCache::layer_bytes(size_t il) const { return k_[il].size() + v_[il].size(); }

uint64_t KvCache::recurrent_bytes() const {
  uint64_t n = 0;
  for (size_t il = 0; il < r_.size(); ++il) n += (r_[il].size() + s_[il].size()) * sizeof(float);
  return n;
}

std::vector<model::KvLayer> KvCache::layers() {
  std::vector<model::KvLayer> out;
  for (size_t il = 0; il < specs_.size(); ++il) {
    model::KvLayer l{k_[il].data(), v_[il].data(), static_cast<int64_t>(quant::row_size(type_k_, specs_[il].n_embd_k)),
                     static_cast<int64_t>(quant::row_size(type_v_, specs_[il].n_embd_v)), type_k_, type_v_};
    if (specs_[il].recurrent()) {
      l.conv = r_[il].data();
      l.ssm = s_[il].data();
      l.conv_stride = specs_[il].n_embd_r;
      l.ssm_stride = specs_[il].n_embd_s;
    }
    out.push_back(l);
  }
  return out;
}

void KvCache::check_seq(int32_t seq, const char* what) const {
  if (seq < 0 || seq >= kMaxSequences)
    throw Error(std::string(what) + ": sequence id " + std::to_string(seq) + " is out of range (0.." +
                std::to_string(kMaxSequences - 1) + ")");
  if (recurrent_ && seq >= static_cast<int32_t>(n_seq_max_))
    throw Error(std::string(what) + ": sequence id " + std::to_string(seq) +
                " has no recurrent state: this model keeps one for n_seq_max = " + std::to_string(n_seq_max_) +
                " sequences (ids 0.." + std::to_string(n_seq_max_ - 1) + "; raise n_seq_max)");
}

void KvCache::reset_state(int32_t seq) {
  if (seq >= static_cast<int32_t>(n_seq_max_)) return;
  for (size_t il = 0; il < specs_.size(); ++il) {
    const size_t nr = specs_[il].n_embd_r, ns = specs_[il].n_embd_s;
    std::fill_n(r_[il].begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(seq) * nr), nr, 0.0f);
    std::fill_n(s_[il].begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(seq) * ns), ns, 0.0f);
  }
}

int32_t KvCache::claim(int32_t seq, int32_t pos, const std::map<int32_t, int32_t>& next_query) {
  auto& index = seq_cells_[static_cast<size_t>(seq)];
  if (index.count(pos))
    throw Error("sequence " + std::to_string(seq) + " already has a token at position " + std::to_string(pos));
  const uint32_t n = n_ctx();
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t c = (next_free_ + i) % n;
    if (pos_[c] < 0) {
      for (size_t w = 1; w < groups_.size(); ++w) take_slot(w, static_cast<int32_t>(c), next_query);
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

int32_t KvCache::take_slot(size_t w, int32_t c, const std::map<int32_t, int32_t>& next_query) {
  Group& g = groups_[w];
  const uint32_t n_slots = static_cast<uint32_t>(g.cell_of.size());
  if (g.n_free == 0) {
    // Evict every cell that no later query of its sequences can see.
    const model::AttnWindow& win = windows_[w];
    for (uint32_t sl = 0; sl < n_slots; ++sl) {
      const int32_t cell = g.cell_of[sl];
      bool needed = false;
      for (uint64_t mask = seq_mask_[static_cast<size_t>(cell)]; mask != 0 && !needed; mask &= mask - 1) {
        const int32_t s = __builtin_ctzll(mask);
        const auto it = next_query.find(s);
        const int32_t q = it != next_query.end() ? it->second : seq_pos_max(s) + 1;
        needed = pos_[static_cast<size_t>(cell)] >= win.first_visible(q);
      }
      if (!needed) {
        g.slot_of[static_cast<size_t>(cell)] = -1;
        g.cell_of[sl] = -1;
        ++g.n_free;
      }
    }
    if (g.n_free == 0)
      throw Error("the " + std::to_string(n_slots) + " KV slots of the windowed attention layers (window " +
                  std::to_string(win.size) + ") are all in use: more sequences than n_seq_max?");
  }
  for (uint32_t i = 0; i < n_slots; ++i) {
    const uint32_t sl = (g.next_free + i) % n_slots;
    if (g.cell_of[sl] < 0) {
      g.cell_of[sl] = c;
      g.slot_of[static_cast<size_t>(c)] = static_cast<int32_t>(sl);
      --g.n_free;
      g.next_free = (sl + 1) % n_slots;
      return static_cast<int32_t>(sl);
    }
  }
  throw Error("internal error: no free KV slot although one was counted");
}

void KvCache::check_window(int32_t seq, int32_t p_min) const {
  const auto& index = seq_cells_[static_cast<size_t>(seq)];
  for (size_t w = 1; w < groups_.size(); ++w) {
    const int32_t first = windows_[w].first_visible(p_min);
    for (auto it = index.lower_bound(first); it != index.end(); ++it) {
      if (groups_[w].slot_of[static_cast<size_t>(it->second)] < 0)
        throw Error("sequence " + std::to_string(seq) + ": position " + std::to_string(it->first) +
                    " has left the attention window of " + std::to_string(windows_[w].size) +
                    " positions that windowed layers keep, so position " + std::to_string(p_min) +
                    " cannot be evaluated again; remove the sequence from an earlier position or clear it");
    }
  }
}

void KvCache::free_cell(int32_t c) {
  pos_[static_cast<size_t>(c)] = -1;
  --n_used_;
  for (size_t w = 1; w < groups_.size(); ++w) {
    Group& g = groups_[w];
    const int32_t sl = g.slot_of[static_cast<size_t>(c)];
    if (sl >= 0) {
      g.cell_of[static_cast<size_t>(sl)] = -1;
      g.slot_of[static_cast<size_t>(c)] = -1;
      ++g.n_free;
    }
  }
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
  if (seq >= kMaxSequences)
    throw Error("seq_rm: sequence id " + std::to_string(seq) + " is out of range (0.." +
                std::to_string(kMaxSequences - 1) + ", or negative for all)");
  std::vector<int32_t> emptied;  // sequences losing all their tokens (recurrent caches)
  if (recurrent_) {
    // A recurrent state cannot be rolled back: only whole sequences may go (checked for every
    // sequence before anything is removed).
    for (int32_t s = 0; s < kMaxSequences; ++s) {
      if (seq >= 0 && s != seq) continue;
      const auto& index = seq_cells_[static_cast<size_t>(s)];
      size_t removed = 0;
      for (auto it = index.lower_bound(p0); it != index.end() && (p1 < 0 || it->first < p1); ++it) ++removed;
      if (removed == 0) continue;
      if (removed < index.size())
        throw Error("seq_rm: cannot remove positions " + std::to_string(p0) + ".." +
                    (p1 < 0 ? std::string("end") : std::to_string(p1 - 1)) + " of sequence " + std::to_string(s) +
                    ", which holds positions " + std::to_string(index.begin()->first) + ".." +
                    std::to_string(index.rbegin()->first) +
                    ": this model's recurrent state cannot be rolled back to an earlier position; remove the "
                    "whole sequence");
      emptied.push_back(s);
    }
  }
  for (int32_t s = 0; s < kMaxSequences; ++s) {
    if (seq >= 0 && s != seq) continue;
    auto& index = seq_cells_[static_cast<size_t>(s)];
    auto it = index.lower_bound(p0);
    while (it != index.end() && (p1 < 0 || it->first < p1)) {
      const int32_t c = it->second;
      seq_mask_[c] &= ~(uint64_t{1} << s);
      if (seq_mask_[c] == 0) free_cell(c);
      it = index.erase(it);
    }
  }
  for (int32_t s : emptied) reset_state(s);
}

void KvCache::seq_cp(int32_t src, int32_t dst, int32_t p0, int32_t p1) {
  check_seq(src, "seq_cp");
  check_seq(dst, "seq_cp");
  if (src == dst) return;
  const auto& from = seq_cells_[static_cast<size_t>(src)];
  auto& to = seq_cells_[static_cast<size_t>(dst)];
  if (recurrent_ && !from.empty()) {
    size_t copied = 0;
    for (auto it = from.lower_bound(p0); it != from.end() && (p1 < 0 || it->first < p1); ++it) ++copied;
    if (copied != from.size())
      throw Error("seq_cp: positions " + std::to_string(p0) + ".." +
                  (p1 < 0 ? std::string("end") : std::to_string(p1 - 1)) + " do not cover sequence " +
                  std::to_string(src) + " (positions " + std::to_string(from.begin()->first) + ".." +
                  std::to_string(from.rbegin()->first) +
                  "): this model's recurrent state can only be copied with the whole sequence");
    if (!to.empty())
      throw Error("seq_cp: sequence " + std::to_string(dst) + " already holds tokens; this model's recurrent state " +
                  "can only be copied to an empty sequence");
  }
  for (auto it = from.lower_bound(p0); it != from.end() && (p1 < 0 || it->first < p1); ++it) {
    if (to.count(it->first))
      throw Error("seq_cp: sequence " + std::to_string(dst) + " already has a token at position " +
                  std::to_string(it->first));
  }
  for (auto it = from.lower_bound(p0); it != from.end() && (p1 < 0 || it->first < p1); ++it) {
    seq_mask_[it->second] |= uint64_t{1} << dst;
    to[it->first] = it->second;
  }
  if (recurrent_ && !from.empty()) {
    for (size_t il = 0; il < specs_.size(); ++il) {
      const size_t nr = specs_[il].n_embd_r, ns = specs_[il].n_embd_s;
      std::copy_n(r_[il].begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(src) * nr), nr,
                  r_[il].begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(dst) * nr));
      std::copy_n(s_[il].begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(src) * ns), ns,
                  s_[il].begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(dst) * ns));
    }
  }
}

void KvCache::clear() {
  std::fill(pos_.begin(), pos_.end(), -1);
  std::fill(seq_mask_.begin(), seq_mask_.end(), 0);
  for (auto& index : seq_cells_) index.clear();
  n_used_ = 0;
  next_free_ = 0;
  for (size_t w = 1; w < groups_.size(); ++w) {
    Group& g = groups_[w];
    std::fill(g.slot_of.begin(), g.slot_of.end(), -1);
    std::fill(g.cell_of.begin(), g.cell_of.end(), -1);
    g.n_free = static_cast<uint32_t>(g.cell_of.size());
    g.next_free = 0;
  }
  for (auto& r : r_) std::fill(r.begin(), r.end(), 0.0f);
  for (auto& s : s_) std::fill(s.begin(), s.end(), 0.0f);
}

}  // namespace hearth::runtime

#include "runtime/context.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

namespace hearth::runtime {

void Batch::add(int32_t token, int32_t position, int32_t sequence, bool logits) {
  tokens.push_back(token);
  pos.push_back(position);
  seq.push_back(sequence);
  want_logits.push_back(logits ? 1 : 0);
}

void Batch::clear() {
  tokens.clear();
  pos.clear();
  seq.clear();
  want_logits.clear();
}

namespace {

/// The model's KV layers, once the cache types are known to suit it.
std::vector<model::KvLayerSpec> checked_kv_layers(const model::Model& model, const ContextParams& params) {
  check_kv_cache_types(model.hparams(), params.type_k, params.type_v);
  return model.arch().kv_layers();
}

}  // namespace

Context::Context(std::shared_ptr<const model::Model> model, const ContextParams& params)
    : model_(std::move(model)),
      params_(params),
      pool_(params.n_threads),
      cache_(checked_kv_layers(*model_, params), params.n_ctx, params.n_ubatch, params.n_seq_max, params.type_k,
             params.type_v) {
  state_.pool = &pool_;
  state_.flash_attn = params.flash_attn;
  state_.kv = cache_.layers();
  window_slots_.resize(cache_.n_windows());
  window_lists_.resize(cache_.n_windows());
  span_sets_.resize(cache_.n_windows());
}

void Context::decode(const Batch& batch) {
  const size_t n = batch.size();
  if (batch.pos.size() != n || batch.seq.size() != n || batch.want_logits.size() != n)
    throw Error("batch arrays have different lengths");
  if (n == 0) throw Error("empty batch");
  const int32_t n_vocab = static_cast<int32_t>(model_->hparams().n_vocab);
  for (size_t i = 0; i < n; ++i) {
    if (batch.tokens[i] < 0 || batch.tokens[i] >= n_vocab)
      throw Error("token id " + std::to_string(batch.tokens[i]) + " at batch index " + std::to_string(i) +
                  " is out of range (the vocabulary has " + std::to_string(n_vocab) + " tokens)");
    if (batch.pos[i] < 0) throw Error("negative position at batch index " + std::to_string(i));
    if (batch.seq[i] < 0 || batch.seq[i] >= kMaxSequences)
      throw Error("sequence id " + std::to_string(batch.seq[i]) + " is out of range (0.." +
                  std::to_string(kMaxSequences - 1) + ")");
  }
  if (cache_.recurrent()) {
    // Recurrent states advance token by token: each sequence must continue where it stopped.
    std::map<int32_t, int32_t> next;  // sequence -> the position its next token must have
    for (size_t i = 0; i < n; ++i) {
      const int32_t s = batch.seq[i];
      if (s >= static_cast<int32_t>(cache_.n_seq_max()))
        throw Error("sequence id " + std::to_string(s) + " at batch index " + std::to_string(i) +
                    " has no recurrent state: this model keeps one for n_seq_max = " +
                    std::to_string(cache_.n_seq_max()) + " sequences (ids 0.." +
                    std::to_string(cache_.n_seq_max() - 1) + "; raise ContextParams::n_seq_max)");
      auto it = next.find(s);
      if (it == next.end()) {
        const int32_t last = cache_.seq_pos_max(s);
        it = next.emplace(s, last < 0 ? batch.pos[i] : last + 1).first;
      }
      if (batch.pos[i] != it->second)
        throw Error("sequence " + std::to_string(s) + " continues at position " + std::to_string(batch.pos[i]) +
                    " (batch index " + std::to_string(i) + ") but its next position is " +
                    std::to_string(it->second) +
                    ": a model with recurrent layers needs each sequence's tokens at consecutive positions");
      ++it->second;
    }
  }
  std::set<std::pair<int32_t, int32_t>> seen;
  for (size_t i = 0; i < n; ++i) {
    if (cache_.contains(batch.seq[i], batch.pos[i]) || !seen.emplace(batch.seq[i], batch.pos[i]).second)
      throw Error("sequence " + std::to_string(batch.seq[i]) + " already has a token at position " +
                  std::to_string(batch.pos[i]) + " (batch index " + std::to_string(i) + ")");
  }
  if (n > cache_.n_free())
    throw Error("the batch of " + std::to_string(n) + " tokens does not fit in the context: " +
                std::to_string(cache_.n_free()) + " of n_ctx = " + std::to_string(cache_.n_ctx()) +
                " cells are free");

  if (cache_.n_windows() > 1) {
    std::map<int32_t, int32_t> p_min;
    for (size_t i = 0; i < n; ++i) {
      const auto [it, fresh] = p_min.try_emplace(batch.seq[i], batch.pos[i]);
      if (!fresh) it->second = std::min(it->second, batch.pos[i]);
    }
    for (const auto& [seq, p] : p_min) cache_.check_window(seq, p);
  }

  size_t n_out = 0;
  logits_row_.assign(n, -1);
  for (size_t i = 0; i < n; ++i)
    if (batch.want_logits[i]) logits_row_[i] = static_cast<int32_t>(n_out++);
  last_embeddings_ = embeddings_mode_;
  if (embeddings_mode_)
    embd_.resize(n_out * static_cast<size_t>(model_->hparams().n_embd));
  else
    logits_.resize(n_out * static_cast<size_t>(n_vocab));
  for (size_t begin = 0; begin < n; begin += params_.n_ubatch)
    decode_ubatch(batch, begin, std::min(n, begin + params_.n_ubatch));
}

void Context::decode_ubatch(const Batch& batch, size_t begin, size_t end) {
  const int64_t n = static_cast<int64_t>(end - begin);
  // Windowed layers may reuse the slots of cells that no query from here on can see.
  std::map<int32_t, int32_t> next_query;
  if (cache_.n_windows() > 1)
    for (size_t i = begin; i < batch.size(); ++i) {
      const auto [it, fresh] = next_query.try_emplace(batch.seq[i], batch.pos[i]);
      if (!fresh) it->second = std::min(it->second, batch.pos[i]);
    }
  std::vector<int32_t> cells(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) cells[t] = cache_.claim(batch.seq[begin + t], batch.pos[begin + t], next_query);

  // Each token attends to the cells of its sequence up to its own position; in a windowed
  // layer from its window's first visible position on, through that window's slots.
  const size_t n_win = cache_.n_windows();
  for (size_t w = 0; w < n_win; ++w) {
    span_sets_[w].resize(static_cast<size_t>(n));
    window_lists_[w].clear();
    window_slots_[w].resize(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) window_slots_[w][t] = cache_.slot(w, cells[t]);
  }
  std::map<int32_t, std::vector<int32_t>> seq_cells;
  for (int64_t t = 0; t < n; ++t) seq_cells.try_emplace(batch.seq[begin + t]);
  for (auto& [seq, list] : seq_cells) {
    cache_.cells_of(seq, INT32_MAX, list);
    // Slot lists of the windowed groups, from the first position a token of this batch sees.
    int32_t p_min = INT32_MAX;
    for (int64_t t = 0; t < n; ++t)
      if (batch.seq[begin + t] == seq) p_min = std::min(p_min, batch.pos[begin + t]);
    for (size_t w = 1; w < n_win; ++w) {
      std::vector<int32_t>& slots = window_lists_[w][seq];
      const int32_t first = cache_.window(w).first_visible(p_min);
      for (int32_t c : list)
        if (cache_.cell_pos(c) >= first) {
          if (cache_.slot(w, c) < 0) throw Error("internal error: a visible KV cell has no slot in its window");
          slots.push_back(cache_.slot(w, c));
        }
    }
  }
  std::vector<kernels::AttnSpan>& spans = span_sets_[0];
  for (int64_t t = 0; t < n; ++t) {
    const int32_t seq = batch.seq[begin + t];
    const std::vector<int32_t>& list = seq_cells[seq];
    const int32_t p = batch.pos[begin + t];
    // list is ordered by position: the visible cells are a prefix.
    const size_t hi = static_cast<size_t>(
        std::partition_point(list.begin(), list.end(), [&](int32_t c) { return cache_.cell_pos(c) <= p; }) -
        list.begin());
    spans[t] = {list.data(), static_cast<int32_t>(hi)};
    for (size_t w = 1; w < n_win; ++w) {
      // The window's slot list starts at position first_visible(p_min) of this sequence, in
      // the same order as `list`: token t sees its entries [first_visible(p) .. p].
      const std::vector<int32_t>& slots = window_lists_[w][seq];
      const size_t skipped = list.size() - slots.size();  // cells before the list's first entry
      const int32_t first = cache_.window(w).first_visible(p);
      const size_t lo_cell = static_cast<size_t>(
          std::partition_point(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(hi),
                               [&](int32_t c) { return cache_.cell_pos(c) < first; }) -
          list.begin());
      span_sets_[w][t] = {slots.data() + (lo_cell - skipped), static_cast<int32_t>(hi - lo_cell)};
    }
  }
  layer_cells_.clear();
  layer_spans_.clear();
  for (size_t il = 0; il < cache_.specs().size(); ++il) {
    layer_cells_.push_back(window_slots_[cache_.layer_window(il)].data());
    layer_spans_.push_back(span_sets_[cache_.layer_window(il)].data());
  }

  std::vector<int32_t> out_ids;
  for (int64_t t = 0; t < n; ++t)
    if (batch.want_logits[begin + t]) out_ids.push_back(static_cast<int32_t>(t));

  model::UBatch ub;
  ub.n_tokens = n;
  ub.tokens = batch.tokens.data() + begin;
  ub.pos = batch.pos.data() + begin;
  ub.cells = cells.data();
  ub.spans = spans.data();
  if (n_win > 1) {
    ub.layer_cells = layer_cells_.data();
    ub.layer_spans = layer_spans_.data();
  }
  ub.out_ids = out_ids.data();
  ub.n_outputs = static_cast<int64_t>(out_ids.size());
  // Recurrent-state slot of each token: its sequence id (decode() checked it is < n_seq_max).
  if (cache_.recurrent()) ub.seq_slots = batch.seq.data() + begin;
  // The rows of this micro-batch's outputs are consecutive in logits_.
  float* out = out_ids.empty() ? nullptr
                               : logits_.data() + static_cast<size_t>(logits_row_[begin + out_ids[0]]) *
                                                      model_->hparams().n_vocab;
  if (last_embeddings_) {
    out = nullptr;
    state_.embeddings = out_ids.empty() ? embd_.data()
                                        : embd_.data() + static_cast<size_t>(logits_row_[begin + out_ids[0]]) *
                                                             model_->hparams().n_embd;
  }
  model_->arch().forward(ub, state_, out);
  state_.embeddings = nullptr;
}

std::shared_ptr<const std::unordered_map<const uint8_t*, std::string>> Context::tensor_names() const {
  // Weight views point into the file's mapping: the data address identifies the tensor.
  auto names = std::make_shared<std::unordered_map<const uint8_t*, std::string>>();
  const gguf::File& file = model_->file();
  for (const gguf::TensorInfo& t : file.tensors()) names->emplace(file.tensor_data(t).data(), t.name);
  return names;
}

void Context::set_matmul_observer(MatmulObserver observer) {
  if (!observer) {
    state_.on_matmul = nullptr;
    return;
  }
  auto names = tensor_names();
  state_.on_matmul = [names, obs = std::move(observer)](const kernels::MatrixView& w, const float* x, int64_t n_rows) {
    const auto it = names->find(w.data);
    static const std::string unknown = "?";
    obs(it == names->end() ? unknown : it->second, x, n_rows, w.n_in);
  };
}

void Context::set_matmul_id_observer(MatmulIdObserver observer) {
  if (!observer) {
    state_.on_matmul_id = nullptr;
    return;
  }
  auto names = tensor_names();
  state_.on_matmul_id = [names, obs = std::move(observer)](const kernels::MatrixView& stack, int64_t expert,
                                                           int64_t n_expert, const float* x, int64_t n_rows) {
    const auto it = names->find(stack.data);
    static const std::string unknown = "?";
    obs(it == names->end() ? unknown : it->second, expert, n_expert, x, n_rows, stack.n_in);
  };
}

std::span<const float> Context::logits(size_t i) const {
  if (i >= logits_row_.size() || logits_row_[i] < 0)
    throw Error("batch token " + std::to_string(i) + " did not ask for logits");
  if (last_embeddings_) throw Error("the last decode computed embeddings, not logits (set_embeddings)");
  const size_t n_vocab = model_->hparams().n_vocab;
  return {logits_.data() + static_cast<size_t>(logits_row_[i]) * n_vocab, n_vocab};
}

std::span<const float> Context::embeddings(size_t i) const {
  if (!last_embeddings_) throw Error("the last decode computed logits, not embeddings (set_embeddings)");
  if (i >= logits_row_.size() || logits_row_[i] < 0)
    throw Error("batch token " + std::to_string(i) + " did not ask for output");
  const size_t n_embd = model_->hparams().n_embd;
  return {embd_.data() + static_cast<size_t>(logits_row_[i]) * n_embd, n_embd};
}

namespace {

template <class T>
uint64_t capacity_bytes(const std::vector<T>& v) {
  return static_cast<uint64_t>(v.capacity()) * sizeof(T);
}

uint64_t matmul_scratch_bytes(const kernels::MatmulScratch& m) {
  uint64_t n = capacity_bytes(m.act) + capacity_bytes(m.act_tiles) + capacity_bytes(m.act_natural);
  for (const std::vector<uint8_t>& t : m.weight_tiles) n += capacity_bytes(t);
  return n;
}

}  // namespace

uint64_t Context::compute_bytes() const {
  const model::Scratch& s = state_.scratch;
  uint64_t n = capacity_bytes(logits_) + capacity_bytes(embd_) + capacity_bytes(logits_row_) +
               matmul_scratch_bytes(s.matmul) + capacity_bytes(s.moe.ids) + capacity_bytes(s.moe.weights) +
               capacity_bytes(s.moe.offsets) + capacity_bytes(s.moe.order) + capacity_bytes(s.moe_position) +
               capacity_bytes(s.moe_jobs);
  for (const std::vector<float>& b : s.bufs) n += capacity_bytes(b);
  for (const kernels::MatmulScratch& m : s.moe_matmul) n += matmul_scratch_bytes(m);
  return n;
}

}  // namespace hearth::runtime

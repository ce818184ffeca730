// Reading a vocabulary from the `tokenizer.ggml.*` keys of a GGUF file.
// Source: ../shared/docs/formats.md §5.1 (keys), §5.2 (types, attributes, fix-ups), §5.3
// (models, defaults, precedence), §5.7 (pre-tokenizer names and flags), §5.9 (EOG set).
#include <algorithm>
#include <array>
#include <cctype>
#include <climits>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace hearth::tokenizer {

// ---- MergeTable ----

int32_t MergeTable::intern(std::string_view text) {
  auto it = ids_.find(text);
  if (it != ids_.end()) return it->second;
  const auto id = static_cast<int32_t>(ids_.size());
  ids_.emplace(std::string(text), id);
  return id;
}

int32_t MergeTable::text_id(std::string_view text) const {
  auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

// The slot holding `key`, or the empty slot where it would go (linear probing).
size_t MergeTable::slot_of(uint64_t key) const {
  const size_t mask = slots_.size() - 1;
  size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
  while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask;
  return i;
}

void MergeTable::reserve(size_t n) {
  ids_.reserve(ids_.size() + 2 * n);
  size_t want = 1024;
  while (want < 2 * (n_pairs_ + n)) want *= 2;
  if (want > slots_.size()) rehash(want);
}

void MergeTable::rehash(size_t n_slots) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(n_slots, Slot{});
  for (const Slot& s : old) {
    if (s.key != 0) slots_[slot_of(s.key)] = s;
  }
}

void MergeTable::add(std::string_view left, std::string_view right) {
  const auto rank = static_cast<int32_t>(n_merges_++);
  const int32_t l = intern(left);
  const int32_t r = intern(right);
  const int32_t result = intern(std::string(left) + std::string(right));
  if (2 * (n_pairs_ + 1) > slots_.size()) rehash(std::max<size_t>(1024, slots_.size() * 2));
  const uint64_t key = ((static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r)) + 1;
  Slot& slot = slots_[slot_of(key)];
  if (slot.key == 0) {  // a repeated pair keeps its first rank
    slot = Slot{key, Merge{rank, result}};
    ++n_pairs_;
  }
}

const MergeTable::Merge* MergeTable::find(int32_t left, int32_t right) const {
  if (left < 0 || right < 0 || slots_.empty()) return nullptr;
  const uint64_t key = ((static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right)) + 1;
  const Slot& slot = slots_[slot_of(key)];
  return slot.key == key ? &slot.merge : nullptr;
}

int32_t MergeTable::rank(std::string_view left, std::string_view right) const {
  const Merge* m = find(text_id(left), text_id(right));
  return m ? m->rank : -1;
}

// ---- Vocab ----

namespace {

constexpr std::string_view kModel = "tokenizer.ggml.model";
constexpr std::string_view kPre = "tokenizer.ggml.pre";
constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kScores = "tokenizer.ggml.scores";
constexpr std::string_view kTokenType = "tokenizer.ggml.token_type";
constexpr std::string_view kMerges = "tokenizer.ggml.merges";

bool is_integer_type(gguf::ValueType t) {
  using gguf::ValueType;
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::UINT16: case ValueType::INT16:
    case ValueType::UINT32: case ValueType::INT32: case ValueType::UINT64: case ValueType::INT64:
      return true;
    default:
      return false;
  }
}

std::string key_error(const gguf::File& file, std::string_view key, const std::string& problem) {
  return file.path() + ": metadata key '" + std::string(key) + "' " + problem;
}

// A numeric array key with at least `n_min` elements, converted to T; nullopt if absent.
template <class T>
std::optional<std::vector<T>> numeric_array(const gguf::File& file, std::string_view key, size_t n_min,
                                            bool allow_float) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) return std::nullopt;
  const bool ok_type = v->is_array() && (is_integer_type(v->elem_type()) ||
                                         (allow_float && (v->elem_type() == gguf::ValueType::FLOAT32 ||
                                                          v->elem_type() == gguf::ValueType::FLOAT64)));
  if (!ok_type) {
    throw Error(key_error(file, key, std::string("must be an array of ") + (allow_float ? "numbers" : "integers") +
                                         ", got " + v->type_string()));
  }
  if (v->count() < n_min) {
    throw Error(key_error(file, key, "has " + std::to_string(v->count()) + " entries, fewer than the " +
                                         std::to_string(n_min) + " tokens"));
  }
  std::vector<T> out(v->count());
  try {
    for (uint64_t i = 0; i < v->count(); ++i) {
      if (is_integer_type(v->elem_type())) {
        out[i] = static_cast<T>(v->at<int64_t>(i));
      } else {
        out[i] = static_cast<T>(v->at<double>(i));
      }
    }
  } catch (const Error& e) {
    throw Error(key_error(file, key, e.what()));
  }
  return out;
}

const std::vector<std::string>& string_array(const gguf::File& file, std::string_view key) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) throw Error(file.path() + ": required metadata key '" + std::string(key) + "' is missing");
  if (!v->is_array() || v->elem_type() != gguf::ValueType::STRING) {
    throw Error(key_error(file, key, "must be an array of strings, got " + v->type_string()));
  }
  return v->strings();
}

uint32_t attrs_of_type(TokenType type) {
  switch (type) {
    case TokenType::NORMAL: return attr::NORMAL;
    case TokenType::UNKNOWN: return attr::UNKNOWN;
    case TokenType::CONTROL: return attr::CONTROL;
    case TokenType::USER_DEFINED: return attr::USER_DEFINED;
    case TokenType::UNUSED: return attr::UNUSED;
    case TokenType::BYTE: return attr::BYTE;
    case TokenType::UNDEFINED: return 0;
  }
  return 0;
}

// Token texts that stand for the special ids when their key is absent (formats.md §5.9 step 1).
constexpr std::string_view kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                          "<｜end▁of▁sentence｜>", "<end_of_utterance>"};
constexpr std::string_view kEomTexts[] = {"<|eom_id|>"};
constexpr std::string_view kFimPreTexts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>",
                                             "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"};
constexpr std::string_view kFimSufTexts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>",
                                             "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"};
constexpr std::string_view kFimMidTexts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>",
                                             "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"};
constexpr std::string_view kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
constexpr std::string_view kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
constexpr std::string_view kFimSepTexts[] = {"<|file_sep|>"};

// Token texts that end generation (formats.md §5.9 step 2).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~["};

template <size_t N>
bool one_of(std::string_view text, const std::string_view (&list)[N]) {
  return std::find(std::begin(list), std::end(list), text) != std::end(list);
}

constexpr std::string_view kUnsupportedModels[] = {"bert", "t5", "rwkv", "plamo2", "hybriddna", "whitespace"};

}  // namespace

Vocab Vocab::from_gguf(const gguf::File& file) {
  Vocab v;
  v.read_model_and_flags(file);
  v.read_tokens(file);
  v.read_special_ids(file);
  v.detect_special_by_text();
  v.build_eog();
  v.build_special_cache();
  v.apply_name_rules(file);
  return v;
}

const Vocab::Token& Vocab::at(int32_t id) const {
  if (id < 0 || id >= n_vocab()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(n_vocab()) +
                ")");
  }
  return tokens_[static_cast<size_t>(id)];
}

std::optional<int32_t> Vocab::find(std::string_view text) const {
  auto it = ids_.find(text);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

bool Vocab::is_eog(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

// Model, pre-tokenizer and the flag defaults (formats.md §5.3, §5.7).
void Vocab::read_model_and_flags(const gguf::File& file) {
  model_name_ = file.require<std::string>(kModel);
  if (model_name_ == "llama") {
    algorithm_ = Algorithm::SPM;
    flags_.add_bos = true;
    flags_.add_space_prefix = true;
    special_.bos = 1;
    special_.eos = 2;
    special_.unk = 0;
    pre_name_ = file.get<std::string>(kPre).value_or("default");
  } else if (model_name_ == "gpt2" || model_name_ == "gemma4") {
    algorithm_ = Algorithm::BPE;
    flags_.clean_spaces = true;
    pre_name_ = file.get<std::string>(kPre).value_or("");
    if (model_name_ == "gemma4") {
      pre_ = &gemma4_pre_tokenizer();
      if (pre_name_.empty()) pre_name_ = "gemma4";
    } else {
      special_.bos = 11;
      special_.eos = 11;
      if (pre_name_.empty()) {
        warnings_.push_back("metadata key 'tokenizer.ggml.pre' is missing or empty; using 'default'");
        pre_name_ = "default";
      }
      pre_ = find_pre_tokenizer(pre_name_);
      if (pre_ == nullptr) {
        throw Error(file.path() + ": unknown pre-tokenizer '" + pre_name_ + "' in metadata key '" +
                    std::string(kPre) + "'");
      }
    }
    const uint32_t f = pre_->flags;
    if (f & pre_flag::CLEAN_SPACES_OFF) flags_.clean_spaces = false;
    if (f & pre_flag::IGNORE_MERGES) flags_.ignore_merges = true;
    if (f & pre_flag::ADD_BOS) flags_.add_bos = true;
    if (f & pre_flag::ADD_SEP) flags_.add_sep = true;
    if (f & pre_flag::ESCAPE_WHITESPACES) flags_.escape_whitespaces = true;
    if (f & pre_flag::RAW_UTF8) flags_.byte_encode = false;
    if (f & pre_flag::NO_BOS) special_.bos.reset();
  } else if (one_of(model_name_, kUnsupportedModels) || model_name_ == "no_vocab" || model_name_ == "none") {
    throw Error(file.path() + ": tokenizer model '" + model_name_ + "' (metadata key '" + std::string(kModel) +
                "') is not supported; hearth reads 'llama' (SPM), 'gpt2' and 'gemma4' (BPE)");
  } else {
    throw Error(file.path() + ": unknown tokenizer model '" + model_name_ + "' in metadata key '" +
                std::string(kModel) + "'");
  }
  if (auto prefix = file.get<bool>("tokenizer.ggml.add_space_prefix")) flags_.add_space_prefix = *prefix;
}

// Tokens, scores, types (formats.md §5.1, §5.2) and, for BPE, the merges (§5.6).
void Vocab::read_tokens(const gguf::File& file) {
  const std::vector<std::string>& texts = string_array(file, kTokens);
  if (texts.empty()) throw Error(key_error(file, kTokens, "is empty"));
  if (texts.size() > static_cast<size_t>(INT32_MAX)) throw Error(key_error(file, kTokens, "has too many entries"));
  const size_t n = texts.size();
  const auto scores = numeric_array<float>(file, kScores, n, /*allow_float=*/true);
  const auto types = numeric_array<int64_t>(file, kTokenType, n, /*allow_float=*/false);

  tokens_.resize(n);
  ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Token& t = tokens_[i];
    t.text = texts[i];
    if (t.text.empty()) {
      t.text = "[EMPTY_" + std::to_string(i) + "]";
      warnings_.push_back("token " + std::to_string(i) + " has an empty text; renamed " + t.text);
    }
    t.score = scores ? (*scores)[i] : 0.0f;
    const int64_t type = types ? (*types)[i] : static_cast<int64_t>(TokenType::NORMAL);
    t.type = (type >= 0 && type <= 6) ? static_cast<TokenType>(type) : TokenType::UNDEFINED;
    t.attrs = attrs_of_type(t.type);
    auto [it, inserted] = ids_.emplace(t.text, static_cast<int32_t>(i));
    if (!inserted) {
      throw Error(key_error(file, kTokens, "holds the text '" + t.text + "' twice (ids " +
                                               std::to_string(it->second) + " and " + std::to_string(i) + ")"));
    }
  }

  if (algorithm_ != Algorithm::BPE) return;
  if (file.find(kMerges) == nullptr) {
    if (pre_name_ == "kimi-k2") {
      warnings_.push_back("vocabulary has no merges ('tokenizer.ggml.merges')");
      return;
    }
    throw Error(file.path() + ": required metadata key '" + std::string(kMerges) + "' is missing (BPE vocabulary)");
  }
  const std::vector<std::string>& merges = string_array(file, kMerges);
  merges_.reserve(merges.size());
  size_t n_bad = 0;
  for (const std::string& m : merges) {
    const size_t space = m.find(' ', 1);
    if (space == std::string::npos) {
      merges_.add("", "");  // keeps the ranks of the following merges; never matches a symbol
      ++n_bad;
      continue;
    }
    merges_.add(std::string_view(m).substr(0, space), std::string_view(m).substr(space + 1));
  }
  if (n_bad > 0) {
    warnings_.push_back(std::to_string(n_bad) + " entries of '" + std::string(kMerges) + "' have no space");
  }
}

// Special ids from their keys, suppress_tokens, then add_bos/add_eos/add_sep (formats.md §5.1,
// §5.3).
void Vocab::read_special_ids(const gguf::File& file) {
  const std::pair<std::string_view, std::optional<int32_t>*> keys[] = {
      {"tokenizer.ggml.bos_token_id", &special_.bos},
      {"tokenizer.ggml.eos_token_id", &special_.eos},
      {"tokenizer.ggml.eot_token_id", &special_.eot},
      {"tokenizer.ggml.eom_token_id", &special_.eom},
      {"tokenizer.ggml.unknown_token_id", &special_.unk},
      {"tokenizer.ggml.seperator_token_id", &special_.sep},
      {"tokenizer.ggml.padding_token_id", &special_.pad},
      {"tokenizer.ggml.mask_token_id", &special_.mask},
      {"tokenizer.ggml.fim_pre_token_id", &special_.fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &special_.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &special_.fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &special_.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &special_.fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &special_.fim_sep},
      // deprecated aliases
      {"tokenizer.ggml.prefix_token_id", &special_.fim_pre},
      {"tokenizer.ggml.suffix_token_id", &special_.fim_suf},
      {"tokenizer.ggml.middle_token_id", &special_.fim_mid},
  };
  for (const auto& [key, slot] : keys) {
    const std::optional<uint32_t> id = file.get<uint32_t>(key);
    if (!id) continue;
    if (*id >= static_cast<uint32_t>(n_vocab())) {
      warnings_.push_back("metadata key '" + std::string(key) + "' = " + std::to_string(*id) +
                          " is outside the vocabulary; ignored");
      continue;
    }
    *slot = static_cast<int32_t>(*id);
  }
  // Default ids outside the vocabulary are disabled.
  for (const auto& [key, slot] : keys) {
    if (*slot && (**slot < 0 || **slot >= n_vocab())) slot->reset();
  }

  if (auto ids = numeric_array<int64_t>(file, "tokenizer.ggml.suppress_tokens", 0, /*allow_float=*/false)) {
    for (int64_t id : *ids) {
      if (id >= 0 && id < n_vocab()) suppress_tokens_.push_back(static_cast<int32_t>(id));
    }
  }

  if (auto b = file.get<bool>("tokenizer.ggml.add_bos_token")) flags_.add_bos = *b;
  if (auto b = file.get<bool>("tokenizer.ggml.add_eos_token")) flags_.add_eos = *b;
  if (auto b = file.get<bool>("tokenizer.ggml.add_sep_token")) flags_.add_sep = *b;
  if (model_name_ == "gemma4") flags_.add_bos = true;  // forced (formats.md §5.3)

  if (flags_.add_bos && !special_.bos) {
    warnings_.push_back("add_bos is set but there is no BOS token; BOS will not be added");
    flags_.add_bos = false;
  }
  if (flags_.add_eos && !special_.eos) {
    warnings_.push_back("add_eos is set but there is no EOS token; EOS will not be added");
    flags_.add_eos = false;
  }
}

// EOT/EOM/FIM ids by well-known texts when their key is absent; such tokens become CONTROL.
// Then CONTROL tokens named "...unused..." become UNUSED (formats.md §5.2, §5.9 step 1).
void Vocab::detect_special_by_text() {
  const auto detect = [this](std::optional<int32_t>& slot, std::span<const std::string_view> texts) {
    if (slot) return;
    for (std::string_view text : texts) {  // of several present, the lowest id wins
      const std::optional<int32_t> id = find(text);
      if (id && (!slot || *id < *slot)) slot = id;
    }
    if (slot) tokens_[static_cast<size_t>(*slot)].attrs |= attr::CONTROL;
  };
  detect(special_.eot, kEotTexts);
  detect(special_.eom, kEomTexts);
  detect(special_.fim_pre, kFimPreTexts);
  detect(special_.fim_suf, kFimSufTexts);
  detect(special_.fim_mid, kFimMidTexts);
  detect(special_.fim_pad, kFimPadTexts);
  detect(special_.fim_rep, kFimRepTexts);
  detect(special_.fim_sep, kFimSepTexts);

  for (Token& t : tokens_) {
    if ((t.attrs & attr::CONTROL) && t.text.find("unused") != std::string::npos) t.attrs |= attr::UNUSED;
  }
}

// The end-of-generation set (formats.md §5.9 steps 2–3) and the gpt-oss USER_DEFINED fix-up.
void Vocab::build_eog() {
  std::vector<int32_t> eog;
  for (const auto& id : {special_.fim_pad, special_.fim_rep, special_.fim_sep}) {
    if (id) eog.push_back(*id);
  }
  for (std::string_view text : kEogTexts) {
    if (const std::optional<int32_t> id = find(text)) {
      eog.push_back(*id);
      tokens_[static_cast<size_t>(*id)].attrs |= attr::CONTROL;
    }
  }
  for (std::string_view text : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    if (const std::optional<int32_t> id = find(text)) tokens_[static_cast<size_t>(*id)].attrs = attr::USER_DEFINED;
  }
  for (const auto& id : {special_.eos, special_.eot, special_.eom}) {
    if (id) eog.push_back(*id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());

  const auto in_eog = [&](std::string_view text) -> std::optional<int32_t> {
    for (int32_t id : eog) {
      if (tokens_[static_cast<size_t>(id)].text == text) return id;
    }
    return std::nullopt;
  };
  const auto end = in_eog("<|end|>");
  if (end && ((in_eog("<|return|>") && in_eog("<|call|>")) || (in_eog("<|calls|>") && in_eog("<|flush|>")))) {
    eog.erase(std::find(eog.begin(), eog.end(), *end));
    tokens_[static_cast<size_t>(*end)].attrs = attr::USER_DEFINED;
  }
  const auto eos_text = in_eog("</s>");
  if (eos_text && in_eog("<|tool_response>")) {
    eog.erase(std::find(eog.begin(), eog.end(), *eos_text));
    tokens_[static_cast<size_t>(*eos_text)].attrs = attr::NORMAL;
  }
  eog_ = std::move(eog);
}

// Candidates for special-token splitting, longest first (formats.md §5.4 step 1).
void Vocab::build_special_cache() {
  special_tokens_.clear();
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (tokens_[id].attrs & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN)) {
      special_tokens_.push_back(static_cast<int32_t>(id));
    }
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [this](int32_t a, int32_t b) {
    return tokens_[static_cast<size_t>(a)].text.size() > tokens_[static_cast<size_t>(b)].text.size();
  });
}

// LSTRIP/RSTRIP from hard-coded name rules (formats.md §5.2).
void Vocab::apply_name_rules(const gguf::File& file) {
  std::string name = file.get<std::string>("general.name").value_or("");
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string arch = file.get<std::string>("general.architecture").value_or("");
  const auto contains_any = [](std::string_view s, std::initializer_list<std::string_view> parts) {
    return std::any_of(parts.begin(), parts.end(), [&](std::string_view p) { return s.find(p) != s.npos; });
  };
  const auto set = [this](std::string_view text, uint32_t bit, bool on) {
    if (auto id = find(text)) {
      uint32_t& a = tokens_[static_cast<size_t>(*id)].attrs;
      a = on ? (a | bit) : (a & ~bit);
    }
  };
  if (contains_any(pre_name_, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
    set("<mask>", attr::LSTRIP, true);
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    for (int32_t id : special_tokens_) tokens_[static_cast<size_t>(id)].attrs |= attr::RSTRIP;
    set("</s>", attr::RSTRIP, true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, attr::RSTRIP, false);
  } else if (contains_any(name, {"modern-bert"})) {
    set("[MASK]", attr::LSTRIP, true);
  }
}

}  // namespace hearth::tokenizer

// Encoding: special-token splitting, SPM and BPE.
// Source: ../shared/docs/formats.md §5.4 (special tokens), §5.5 (SPM), §5.6 (BPE), §5.7 (words).
#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_map>

#include "tokenizer/merge.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace hearth::tokenizer {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 '▁'

// Appends `text` with every ' ' replaced by '▁' (formats.md §5.5 step 2, §5.6 step 1).
void append_escaped_spaces(std::string& out, std::string_view text) {
  for (char c : text) {
    if (c == ' ') {
      out += kSpmSpace;
    } else {
      out += c;
    }
  }
}

std::string byte_token_text(uint8_t b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
}

// A piece of the input after special-token splitting: raw text or one special token.
struct Fragment {
  int32_t token;  // -1 for raw text
  size_t offset;
  size_t length;
};

}  // namespace

// A byte trie over the texts of the special-token candidates, used to find which candidates
// occur in a text at all before the (ordered, longest-first) splitting of formats.md §5.4.
struct Tokenizer::SpecialTrie {
  std::array<int32_t, 256> root;           // child node of the root per first byte, or -1
  std::unordered_map<uint64_t, int32_t> edges;  // (node << 8 | byte) → child node
  std::vector<int32_t> candidate;          // per node: index into special_tokens() ending here, or -1

  explicit SpecialTrie(const Vocab& vocab) {
    root.fill(-1);
    candidate.push_back(-1);  // node 0 is the root
    const std::vector<int32_t>& specials = vocab.special_tokens();
    for (size_t k = 0; k < specials.size(); ++k) {
      const std::string& text = vocab.text(specials[k]);
      int32_t node = 0;
      for (size_t j = 0; j < text.size(); ++j) {
        const auto b = static_cast<uint8_t>(text[j]);
        int32_t& child = j == 0 ? root[b] : edges.try_emplace(key(node, b), -1).first->second;
        if (child < 0) {
          child = static_cast<int32_t>(candidate.size());
          candidate.push_back(-1);
        }
        node = child;
      }
      if (candidate[static_cast<size_t>(node)] < 0) candidate[static_cast<size_t>(node)] = static_cast<int32_t>(k);
    }
  }

  static uint64_t key(int32_t node, uint8_t b) { return (static_cast<uint64_t>(node) << 8) | b; }

  // Marks present[k] for every candidate k that occurs somewhere in `text`.
  void mark_present(std::string_view text, std::vector<char>& present) const {
    for (size_t i = 0; i < text.size(); ++i) {
      int32_t node = root[static_cast<uint8_t>(text[i])];
      for (size_t j = i + 1; node >= 0; ++j) {
        if (const int32_t k = candidate[static_cast<size_t>(node)]; k >= 0) present[static_cast<size_t>(k)] = 1;
        if (j >= text.size()) break;
        auto it = edges.find(key(node, static_cast<uint8_t>(text[j])));
        node = it == edges.end() ? -1 : it->second;
      }
    }
  }
};

Tokenizer Tokenizer::from_gguf(const gguf::File& file) { return Tokenizer(Vocab::from_gguf(file)); }

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  if (vocab_.algorithm() == Algorithm::BPE) pre_ = std::make_unique<PreTokenizer>(vocab_.pre_tokenizer()->regexes);
  special_trie_ = std::make_unique<SpecialTrie>(vocab_);
  whole_newline_words_ = vocab_.pre_tokenizer() != nullptr && vocab_.pre_tokenizer()->type == "GEMMA4";
  pieces_.resize(static_cast<size_t>(vocab_.n_vocab()));
  for (int32_t id = 0; id < vocab_.n_vocab(); ++id) pieces_[static_cast<size_t>(id)] = make_piece(id);
  const MergeTable& merges = vocab_.merges();
  for (int b = 0; b < 256; ++b) {
    const auto byte = static_cast<uint8_t>(b);
    hex_byte_tokens_[byte] = vocab_.find(byte_token_text(byte)).value_or(-1);
    single_byte_tokens_[byte] = vocab_.find(std::string(1, static_cast<char>(byte))).value_or(-1);
    byte_text_ids_[byte] = merges.text_id(unicode::byte_to_unicode(byte));
  }
  token_of_text_.assign(merges.n_texts(), -1);
  merges.for_each_text([&](std::string_view text, int32_t id) {
    token_of_text_[static_cast<size_t>(id)] = vocab_.find(text).value_or(-1);
  });
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  // Special-token splitting (formats.md §5.4).
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, 0, text.size()});
  const std::vector<int32_t>& specials = vocab_.special_tokens();
  std::vector<char> present(specials.size(), 0);
  if (!specials.empty() && !text.empty()) special_trie_->mark_present(text, present);
  std::vector<Fragment> next;
  for (size_t k = 0; k < specials.size(); ++k) {
    if (!present[k]) continue;
    const int32_t id = specials[k];
    const uint32_t attrs = vocab_.attrs(id);
    if (!parse_special && (attrs & (attr::CONTROL | attr::UNKNOWN))) continue;
    const std::string& special = vocab_.text(id);
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const std::string_view raw = text.substr(f.offset, f.length);
      size_t pos = 0;  // start of the raw text not yet emitted, relative to the fragment
      for (size_t hit = raw.find(special); hit != std::string_view::npos; hit = raw.find(special, pos)) {
        size_t left_end = hit;
        if (attrs & attr::LSTRIP) {
          while (left_end > pos && std::isspace(static_cast<unsigned char>(raw[left_end - 1]))) --left_end;
        }
        if (left_end > pos) next.push_back({-1, f.offset + pos, left_end - pos});
        next.push_back({id, 0, 0});
        pos = hit + special.size();
        if (attrs & attr::RSTRIP) {
          while (pos < raw.size() && std::isspace(static_cast<unsigned char>(raw[pos]))) ++pos;
        }
      }
      if (pos < raw.size()) next.push_back({-1, f.offset + pos, raw.size() - pos});
    }
    fragments.swap(next);
  }

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  const VocabFlags& flags = vocab_.flags();
  if (add_special && flags.add_bos) out.push_back(*vocab_.bos());
  bool after_special = true;  // SPM: the first raw fragment also gets the space prefix
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode_fragment(text.substr(f.offset, f.length), after_special, out);
      after_special = false;
    }
  }
  if (add_special && flags.add_eos) out.push_back(*vocab_.eos());
  return out;
}

void Tokenizer::encode_fragment(std::string_view text, bool after_special, std::vector<int32_t>& out) const {
  if (vocab_.algorithm() == Algorithm::SPM) {
    encode_spm(text, after_special, out);
  } else {
    encode_bpe(text, out);
  }
}

// SPM (formats.md §5.5): merge the pair whose concatenation is the token with the best score.
void Tokenizer::encode_spm(std::string_view text, bool after_special, std::vector<int32_t>& out) const {
  std::string s;
  s.reserve(text.size() + 8);
  if (vocab_.flags().add_space_prefix && after_special) s += kSpmSpace;
  append_escaped_spaces(s, text);

  struct ScorePolicy {
    const Vocab& vocab;
    std::string_view text;
    std::optional<float> priority(const Symbol& l, const Symbol& r) const {
      const std::optional<int32_t> id = vocab.find(text.substr(l.start, l.len + r.len));
      if (!id) return std::nullopt;
      return vocab.score(*id);
    }
    void merge_keys(Symbol&, const Symbol&) const {}
  };
  std::vector<Symbol> symbols;
  split_symbols(s, symbols, [](std::string_view) { return 0; });
  merge_symbols<float>(symbols, ScorePolicy{vocab_, s});

  // Every merge produced a vocabulary token, so a symbol that is not a token is a single
  // character that no token covers: it falls back to byte tokens.
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& sym = symbols[static_cast<size_t>(i)];
    const std::string_view piece = std::string_view(s).substr(sym.start, sym.len);
    if (const std::optional<int32_t> id = vocab_.find(piece)) {
      out.push_back(*id);
    } else {
      emit_byte_fallback(piece, /*hex_tokens=*/true, out);
    }
  }
}

// BPE (formats.md §5.6): pre-tokenize into words, map bytes, merge by rank.
void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  const VocabFlags& flags = vocab_.flags();
  // Invalid UTF-8 reads as U+FFFD per bad byte, as llama.cpp's code-point reader does.
  std::string clean;
  const bool valid = unicode::is_valid_utf8(text);
  if (!valid || flags.escape_whitespaces) {
    std::string fixed = valid ? std::string(text) : unicode::replace_invalid_utf8(text);
    if (flags.escape_whitespaces) {
      append_escaped_spaces(clean, fixed);
    } else {
      clean = std::move(fixed);
    }
    text = clean;
  }
  std::vector<std::string_view> words;
  pre_->split(text, words);
  const MergeTable& merges = vocab_.merges();
  std::string mapped;
  std::vector<Symbol> symbols;
  for (std::string_view word : words) {
    if (word.empty()) continue;  // the pre-tokenizer gives none; symbols.back() needs one
    if (!flags.byte_encode) {
      if (!emit_whole_word(word, out)) {
        split_symbols(word, symbols, [&](std::string_view ch) { return merges.text_id(ch); });
        emit_bpe_symbols(word, symbols, out);
      }
      continue;
    }
    // Byte-level: each byte becomes one code point of the GPT-2 table, and one symbol.
    mapped.clear();
    for (char c : word) mapped += unicode::byte_to_unicode(static_cast<uint8_t>(c));
    if (emit_whole_word(mapped, out)) continue;
    symbols.clear();
    uint32_t pos = 0;
    for (char c : word) {
      const auto b = static_cast<uint8_t>(c);
      const auto len = static_cast<uint32_t>(unicode::byte_to_unicode(b).size());
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back({index - 1, index + 1, pos, len, byte_text_ids_[b]});
      pos += len;
    }
    symbols.back().next = -1;
    emit_bpe_symbols(mapped, symbols, out);
  }
}

// §5.6 step 4: with ignore_merges a word that is a token is emitted whole; so is, for GEMMA4,
// a word of newlines that is a token.
bool Tokenizer::emit_whole_word(std::string_view word, std::vector<int32_t>& out) const {
  if (vocab_.flags().ignore_merges ||
      (whole_newline_words_ && word.find_first_not_of('\n') == std::string_view::npos)) {
    if (const std::optional<int32_t> id = vocab_.find(word)) {
      out.push_back(*id);
      return true;
    }
  }
  return false;
}

// §5.6 steps 5–6: merge by rank, then map every symbol to its token (or its bytes).
void Tokenizer::emit_bpe_symbols(std::string_view word, std::vector<Symbol>& symbols,
                                 std::vector<int32_t>& out) const {
  struct RankPolicy {
    const MergeTable& merges;
    std::optional<int32_t> priority(const Symbol& l, const Symbol& r) const {
      const MergeTable::Merge* m = merges.find(l.key, r.key);
      if (m == nullptr) return std::nullopt;
      return -m->rank;  // lower rank merges first
    }
    void merge_keys(Symbol& l, const Symbol& r) const { l.key = merges.find(l.key, r.key)->result; }
  };
  merge_symbols<int32_t>(symbols, RankPolicy{vocab_.merges()});

  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& sym = symbols[static_cast<size_t>(i)];
    const std::string_view piece = word.substr(sym.start, sym.len);
    // A symbol that is a merge text has its token precomputed; others are single characters.
    int32_t id = -1;
    if (sym.key >= 0) {
      id = token_of_text_[static_cast<size_t>(sym.key)];
    } else if (const std::optional<int32_t> found = vocab_.find(piece)) {
      id = *found;
    }
    if (id >= 0) {
      out.push_back(id);
    } else {
      emit_byte_fallback(piece, /*hex_tokens=*/!vocab_.flags().byte_encode, out);
    }
  }
}

// Byte fallback: per byte the `<0xXX>` token (SPM and raw-UTF-8 BPE) or else the token whose
// text is that single byte; bytes with neither are dropped (BPE) or become UNK (SPM).
void Tokenizer::emit_byte_fallback(std::string_view bytes, bool hex_tokens, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    const auto b = static_cast<uint8_t>(c);
    int32_t id = hex_tokens ? hex_byte_tokens_[b] : -1;
    if (id < 0) id = single_byte_tokens_[b];
    if (id < 0 && vocab_.algorithm() == Algorithm::SPM && vocab_.special().unk) id = *vocab_.special().unk;
    if (id >= 0) out.push_back(id);
  }
}

}  // namespace hearth::tokenizer

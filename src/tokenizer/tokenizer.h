// Tokenizers stored in GGUF: the vocabulary (`tokenizer.ggml.*` metadata), SentencePiece-style
// (`llama`) and byte-level BPE (`gpt2`, `gemma4`) encoding, detokenization and a streaming,
// UTF-8-safe detokenizer.
// Source: ../shared/docs/formats.md §5 (keys §5.1, token types §5.2, defaults §5.3, special-token
// splitting §5.4, SPM §5.5, BPE §5.6, pre-tokenizers §5.7–5.8, EOG §5.9, detokenization §5.10).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/gguf.h"
#include "hearth/error.h"

namespace hearth::tokenizer {

struct PreTokenizerSpec;
class PreTokenizer;
struct Symbol;

/// `tokenizer.ggml.token_type` values (formats.md §5.2). Values outside 0..6 read as UNDEFINED.
enum class TokenType : int32_t {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
};

/// Token attribute bits derived from the type plus load-time fix-ups (formats.md §5.2).
/// A token may carry several (e.g. USER_DEFINED | CONTROL after EOG auto-detection).
namespace attr {
inline constexpr uint32_t UNKNOWN = 1;
inline constexpr uint32_t UNUSED = 2;
inline constexpr uint32_t NORMAL = 4;
inline constexpr uint32_t CONTROL = 8;
inline constexpr uint32_t USER_DEFINED = 16;
inline constexpr uint32_t BYTE = 32;
inline constexpr uint32_t NORMALIZED = 64;
inline constexpr uint32_t LSTRIP = 128;
inline constexpr uint32_t RSTRIP = 256;
inline constexpr uint32_t SINGLE_WORD = 512;
}  // namespace attr

/// The encoding algorithm selected by `tokenizer.ggml.model` (formats.md §5.3).
enum class Algorithm {
  SPM,  ///< `llama`: score-driven merges of UTF-8 characters with byte fallback (§5.5)
  BPE,  ///< `gpt2`, `gemma4`: rank-driven merges after a regex pre-tokenizer (§5.6)
};

/// Special token ids (formats.md §5.1); absent ones are nullopt. `eot`, `eom` and the FIM ids
/// fall back to well-known token texts when their key is absent (§5.9).
struct SpecialIds {
  std::optional<int32_t> bos, eos, eot, eom, unk, sep, pad, mask;
  std::optional<int32_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
};

/// How the pre-tokenizer and the detokenizer behave: model defaults, then the pre-tokenizer's
/// flags, then the GGUF keys (precedence of formats.md §5.3).
struct VocabFlags {
  bool add_bos = false;            ///< encode(add_special) puts BOS first
  bool add_eos = false;            ///< encode(add_special) puts EOS last
  bool add_sep = false;            ///< `tokenizer.ggml.add_sep_token` (informational: no SEP for SPM/BPE)
  bool add_space_prefix = false;   ///< SPM: prepend a space; detokenize strips one (§5.5, §5.10)
  bool clean_spaces = false;       ///< detokenize post-processing of §5.10 step 3
  bool ignore_merges = false;      ///< BPE: a word that is a token is emitted whole (§5.6 step 4)
  bool escape_whitespaces = false; ///< BPE: ' ' ↔ '▁' (gemma4, sarvam-moe)
  bool byte_encode = true;         ///< BPE: GPT-2 byte-to-unicode mapping (§5.6 step 3)
};

/// Hash for string-keyed maps that are searched with string_view keys.
struct TextHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

/// BPE merges (formats.md §5.6). Every text that is a side or the result of a merge is
/// interned as a "text id", so the merge loop works on integers: a pair of text ids gives the
/// merge's rank and the text id of the merged symbol.
class MergeTable {
 public:
  struct Merge {
    int32_t rank;    ///< index in `tokenizer.ggml.merges` (lower merges first)
    int32_t result;  ///< text id of left + right
  };

  /// Prepares for `n` merges (optional).
  void reserve(size_t n);
  /// Adds the merge `left right` with the next rank; a repeated pair keeps its first rank.
  void add(std::string_view left, std::string_view right);
  /// Number of merges read (including repeated pairs).
  size_t size() const { return n_merges_; }
  /// Number of interned texts.
  size_t n_texts() const { return ids_.size(); }
  /// The text id of `text`, or -1 if no merge has it as a side or result.
  int32_t text_id(std::string_view text) const;
  /// Calls f(text, id) for every interned text.
  template <class F>
  void for_each_text(F&& f) const {
    for (const auto& [text, id] : ids_) f(std::string_view(text), id);
  }
  /// The merge of two text ids, or nullptr.
  const Merge* find(int32_t left, int32_t right) const;
  /// The rank of the merge `left right`, or -1.
  int32_t rank(std::string_view left, std::string_view right) const;

 private:
  struct Slot {
    uint64_t key = 0;  // (left << 32 | right) + 1; 0 marks an empty slot
    Merge merge{};
  };
  int32_t intern(std::string_view text);
  size_t slot_of(uint64_t key) const;
  void rehash(size_t n_slots);

  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> ids_;
  std::vector<Slot> slots_;  // open addressing, power-of-two size, at most half full
  size_t n_pairs_ = 0;
  size_t n_merges_ = 0;
};

/// A vocabulary read from the `tokenizer.ggml.*` keys of a GGUF file (formats.md §5.1–5.3, §5.9).
/// Immutable after loading. Every id-taking accessor throws Error for an id outside
/// [0, n_vocab) instead of reading out of bounds.
class Vocab {
 public:
  /// Reads the vocabulary of `file`. Throws Error naming the key for a missing or malformed
  /// `tokenizer.ggml.tokens`, a too short `scores`/`token_type` array, a `token_type` that is
  /// not an integer array, a duplicate token text, missing `merges` for BPE, an unsupported
  /// `tokenizer.ggml.model` (bert, t5, rwkv, ...) or an unknown `tokenizer.ggml.pre`.
  static Vocab from_gguf(const gguf::File& file);

  Algorithm algorithm() const { return algorithm_; }
  /// `tokenizer.ggml.model` as stored ("llama", "gpt2", "gemma4").
  const std::string& model_name() const { return model_name_; }
  /// `tokenizer.ggml.pre` as stored; "default" when absent (§5.7).
  const std::string& pre_name() const { return pre_name_; }
  const VocabFlags& flags() const { return flags_; }
  const SpecialIds& special() const { return special_; }
  /// Non-fatal problems noticed while loading (ids out of range, missing `pre`, ...).
  const std::vector<std::string>& warnings() const { return warnings_; }

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  std::optional<int32_t> bos() const { return special_.bos; }
  std::optional<int32_t> eos() const { return special_.eos; }
  bool add_bos() const { return flags_.add_bos; }
  bool add_eos() const { return flags_.add_eos; }

  /// The token's text as stored (empty texts were replaced by `[EMPTY_<id>]`, §5.1).
  const std::string& text(int32_t id) const { return at(id).text; }
  /// The stored `token_type` (UNDEFINED for out-of-range values).
  TokenType type(int32_t id) const { return at(id).type; }
  /// Attribute bits (namespace attr) after the fix-ups of §5.2 and §5.9.
  uint32_t attrs(int32_t id) const { return at(id).attrs; }
  /// `tokenizer.ggml.scores` entry (0 when the key is absent).
  float score(int32_t id) const { return at(id).score; }
  /// The id of the token whose text is exactly `text`.
  std::optional<int32_t> find(std::string_view text) const;

  /// End-of-generation membership (§5.9).
  bool is_eog(int32_t id) const;
  /// All EOG ids, ascending.
  const std::vector<int32_t>& eog_ids() const { return eog_; }
  bool is_control(int32_t id) const { return (attrs(id) & attr::CONTROL) != 0; }
  bool is_user_defined(int32_t id) const { return (attrs(id) & attr::USER_DEFINED) != 0; }
  bool is_byte(int32_t id) const { return (attrs(id) & attr::BYTE) != 0; }
  bool is_unused(int32_t id) const { return (attrs(id) & attr::UNUSED) != 0; }

  /// `tokenizer.ggml.suppress_tokens`: ids never to sample (out-of-range ids dropped, §5.1).
  const std::vector<int32_t>& suppress_tokens() const { return suppress_tokens_; }

  /// Candidates for special-token splitting (§5.4): CONTROL, USER_DEFINED and UNKNOWN tokens,
  /// longest text first (ties by id).
  const std::vector<int32_t>& special_tokens() const { return special_tokens_; }
  /// BPE merges (empty for SPM).
  const MergeTable& merges() const { return merges_; }
  /// The pre-tokenizer row of formats.md §5.7 selected by `tokenizer.ggml.pre` (BPE only;
  /// nullptr for SPM).
  const PreTokenizerSpec* pre_tokenizer() const { return pre_; }

 private:
  struct Token {
    std::string text;
    float score = 0.0f;
    TokenType type = TokenType::NORMAL;
    uint32_t attrs = attr::NORMAL;
  };
  const Token& at(int32_t id) const;

  // Loading steps (vocab.cpp), called in this order (formats.md §5.2, §5.3, §5.9).
  void read_model_and_flags(const gguf::File& file);
  void read_tokens(const gguf::File& file);
  void read_special_ids(const gguf::File& file);
  void detect_special_by_text();
  void build_eog();
  void build_special_cache();
  void apply_name_rules(const gguf::File& file);

  Algorithm algorithm_ = Algorithm::SPM;
  std::string model_name_;
  std::string pre_name_;
  const PreTokenizerSpec* pre_ = nullptr;  // static table row (BPE only)
  VocabFlags flags_;
  SpecialIds special_;
  std::vector<std::string> warnings_;
  std::vector<Token> tokens_;
  std::unordered_map<std::string, int32_t, TextHash, std::equal_to<>> ids_;  // text → id
  MergeTable merges_;
  std::vector<int32_t> eog_;
  std::vector<int32_t> special_tokens_;
  std::vector<int32_t> suppress_tokens_;
};

/// Encoder and decoder over a Vocab. Thread-safe for concurrent const use.
class Tokenizer {
 public:
  /// Reads the vocabulary (Vocab::from_gguf) and compiles its pre-tokenizer regexes once.
  static Tokenizer from_gguf(const gguf::File& file);
  explicit Tokenizer(Vocab vocab);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  const Vocab& vocab() const { return vocab_; }

  /// Shortcuts to the Vocab accessors of the same names (formats.md §5.1–5.3, §5.9).
  int32_t n_vocab() const { return vocab_.n_vocab(); }
  std::optional<int32_t> bos() const { return vocab_.bos(); }
  std::optional<int32_t> eos() const { return vocab_.eos(); }
  bool add_bos() const { return vocab_.add_bos(); }
  bool add_eos() const { return vocab_.add_eos(); }
  bool is_eog(int32_t id) const { return vocab_.is_eog(id); }
  bool is_control(int32_t id) const { return vocab_.is_control(id); }
  const std::string& token_text(int32_t id) const { return vocab_.text(id); }
  TokenType token_type(int32_t id) const { return vocab_.type(id); }
  float token_score(int32_t id) const { return vocab_.score(id); }
  std::optional<int32_t> find_token(std::string_view text) const { return vocab_.find(text); }

  /// Text → token ids. Special-token text is split out first (§5.4): USER_DEFINED tokens always,
  /// CONTROL/UNKNOWN ones only when `parse_special`. Raw fragments go through SPM (§5.5) or the
  /// pre-tokenizer and BPE (§5.6–5.7). With `add_special`, BOS/EOS are added as add_bos/add_eos
  /// say. Invalid UTF-8 never throws: SPM falls back to byte tokens, BPE reads each bad byte
  /// as U+FFFD (as llama.cpp does).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  /// The bytes one token stands for (§5.10). CONTROL/UNKNOWN tokens give "" unless `special`;
  /// USER_DEFINED tokens always give their text. Throws Error for an invalid id.
  std::string token_to_piece(int32_t id, bool special) const;

  /// Token ids → text (§5.10): drops a leading BOS/trailing EOS when `remove_special` (and
  /// add_bos/add_eos), strips the space SPM added, applies clean_spaces. `unparse_special`
  /// renders CONTROL tokens as their text. Throws Error for an invalid id.
  std::string decode(std::span<const int32_t> ids, bool remove_special, bool unparse_special) const;

 private:
  struct SpecialTrie;

  void encode_fragment(std::string_view text, bool after_special, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, bool after_special, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  bool emit_whole_word(std::string_view word, std::vector<int32_t>& out) const;
  void emit_bpe_symbols(std::string_view word, std::vector<Symbol>& symbols, std::vector<int32_t>& out) const;
  void emit_byte_fallback(std::string_view bytes, bool hex_tokens, std::vector<int32_t>& out) const;
  std::string make_piece(int32_t id) const;
  void check_id(int32_t id) const;

  Vocab vocab_;
  std::unique_ptr<PreTokenizer> pre_;        // compiled regexes (BPE only)
  std::unique_ptr<SpecialTrie> special_trie_;
  std::vector<std::string> pieces_;          // token_to_piece(id, special=true), precomputed
  std::array<int32_t, 256> hex_byte_tokens_{};     // id of "<0xXX>" per byte, or -1
  std::array<int32_t, 256> single_byte_tokens_{};  // id of the one-byte text per byte, or -1
  std::array<int32_t, 256> byte_text_ids_{};  // BPE byte_encode: merge text id of each mapped byte
  std::vector<int32_t> token_of_text_;        // BPE: token id of each merge text id, or -1
  bool whole_newline_words_ = false;  // GEMMA4: a word of only '\n' that is a token stays whole
};

/// Streaming detokenization (formats.md §5.10): pieces are concatenated and only complete
/// UTF-8 characters are returned; an unfinished multi-byte sequence at the end is held back
/// until the bytes that complete it arrive. Bytes that can never complete (invalid UTF-8) are
/// passed through. Per-token pieces keep their leading space (no SPM prefix stripping).
class StreamDecoder {
 public:
  /// `special` renders CONTROL tokens as their text (token_to_piece's flag). The tokenizer
  /// must outlive the decoder.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool special = false);

  /// Appends the piece of `id` and returns the text that is now complete (possibly "").
  /// Throws Error for an invalid id (the held-back bytes are kept).
  std::string push(int32_t id);
  /// Returns whatever is held back (a truncated sequence comes out as its raw bytes) and resets.
  std::string flush();
  /// Bytes currently held back.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool special_;
  std::string pending_;
};

}  // namespace hearth::tokenizer

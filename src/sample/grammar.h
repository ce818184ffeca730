// Grammar-constrained decoding: GBNF grammars, a matcher that follows generated text through a
// grammar, and the vocabulary filter that tells which tokens may come next.
//
// The format is llama.cpp's GBNF (grammars/README.md of llama.cpp): rules `name ::= alternatives`,
// alternatives separated by `|`, sequences, groups `( )`, repetition `*` `+` `?` `{m}` `{m,}`
// `{m,n}`, string literals `"..."`, character classes `[a-z]` and `[^...]`, escapes `\x..`
// `\u....` `\U........` `\t` `\r` `\n` `\\` `\"` `\[` `\]` `\-`, `.` (any code point), comments
// `#` to the end of the line, and the start rule `root`. Newlines end a rule except inside
// parentheses and after `|`. Token references `<[id]>`, `<text>` (the token whose text is exactly
// `text`) and their negations `!<[id]>`, `!<text>` (any one token but that one) match whole tokens.
// Terminals are Unicode code points; generated text is read as UTF-8, and a token may end in the
// middle of a character (the rest must come with the next tokens).
//
// Semantics follow llama.cpp's grammar sampler (src/llama-grammar.cpp): the set of pushdown stacks
// that are alive after the text so far; end-of-generation tokens are allowed only once some stack
// is empty (the root rule is complete). Left-recursive rules (`a ::= a "x" | ...`, also through
// rules that can match the empty string) are rejected, as in llama.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hearth::tokenizer {
class Tokenizer;
}

namespace hearth::sample {

class GrammarVocab;

/// A parsed, validated GBNF grammar (immutable; share it between matchers).
class Grammar {
 public:
  /// Kind of a grammar element.
  enum class Kind : uint8_t {
    End,       ///< end of an alternative
    RuleRef,   ///< value: rule id
    Chars,     ///< value: character class id (one code point)
    Token,     ///< value: token id (one whole token)
    TokenNot,  ///< value: token id (one whole token other than this one)
  };
  /// One element of an alternative.
  struct Element {
    Kind kind;
    uint32_t value;
  };
  /// A character class: sorted, disjoint, non-adjacent inclusive code point ranges.
  using CharClass = std::vector<std::pair<uint32_t, uint32_t>>;

  /// Parses GBNF text. `vocab` resolves token references written as `<text>` and bounds `<[id]>`
  /// (without it, `<text>` is an error). Throws Error "grammar: line L, column C: ..." naming what
  /// is wrong: a syntax error (unbalanced parentheses or brackets, unterminated literal, bad or
  /// unknown escape, bad repetition bounds, empty class, a reversed range `[z-a]`), an undefined
  /// rule (at its first reference), a rule defined twice, no `root` rule, a token text that is not
  /// a single token, left recursion (with the rules of the cycle), groups nested deeper than 256,
  /// or a grammar too large after expanding repetitions (bounds above 10000).
  static std::shared_ptr<const Grammar> parse(std::string_view gbnf, const GrammarVocab* vocab = nullptr);

  /// Number of rules, the user's and the ones generated for groups and repetitions.
  size_t n_rules() const { return rule_alts_.size(); }
  /// Id of the rule called `name`, if any (generated rules are called `name_N`).
  std::optional<uint32_t> rule_id(std::string_view name) const;
  const std::string& rule_name(uint32_t rule) const { return rule_names_[rule]; }
  /// Id of the start rule `root`.
  uint32_t root() const { return root_; }

  /// The compiled form read by the matcher: elements of all alternatives, each alternative a
  /// run ending with an End element.
  const std::vector<Element>& elements() const { return elements_; }
  /// Start indices (into elements()) of the alternatives of `rule`.
  const std::vector<uint32_t>& alternatives(uint32_t rule) const { return rule_alts_[rule]; }
  const CharClass& char_class(uint32_t id) const { return classes_[id]; }
  /// Whether class `id` contains code point `cp`.
  bool class_contains(uint32_t id, uint32_t cp) const;
  /// Whether class `id` contains a code point in [lo, hi].
  bool class_intersects(uint32_t id, uint32_t lo, uint32_t hi) const;

 private:
  friend class GrammarParser;
  std::vector<Element> elements_;
  std::vector<std::vector<uint32_t>> rule_alts_;
  std::vector<std::string> rule_names_;
  std::vector<CharClass> classes_;
  uint32_t root_ = 0;
};

/// The vocabulary as the grammar sees it: the bytes each token stands for, which tokens end
/// generation, and a byte trie of all token texts so that a whole vocabulary is filtered by
/// walking shared prefixes once. Immutable once built; share it between matchers and threads.
class GrammarVocab {
 public:
  /// `pieces[id]` is the text token `id` produces (empty for tokens that produce none, e.g.
  /// control tokens: the text filter never allows those). `eog` lists the end-of-generation ids;
  /// `texts`, if given, are the token texts as stored (token references `<text>` look them up;
  /// default: the pieces). Throws Error for an EOG id out of range or mismatched sizes.
  GrammarVocab(std::vector<std::string> pieces, const std::vector<int32_t>& eog, std::vector<std::string> texts = {});
  /// Pieces from Tokenizer::token_to_piece(id, special = false), EOG ids and stored texts from
  /// the vocabulary (formats.md §5.9, §5.10).
  static std::shared_ptr<const GrammarVocab> from_tokenizer(const tokenizer::Tokenizer& tok);

  int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  bool is_eog(int32_t id) const { return eog_[static_cast<size_t>(id)] != 0; }
  /// Id of the token whose stored text is exactly `text`.
  std::optional<int32_t> find(std::string_view text) const;

 private:
  friend class GrammarMatcher;
  std::vector<std::string> pieces_;
  std::vector<uint8_t> eog_;
  std::unordered_map<std::string, int32_t> by_text_;
  // Byte trie of the non-empty pieces of non-EOG tokens, nodes in depth-first order (children by
  // byte value). Node i: its byte, its depth (1 = first byte), the index after its subtree, and
  // the tokens whose piece ends there: node_tokens_[tok_begin_[i] .. tok_begin_[i + 1]).
  std::vector<uint8_t> node_byte_;
  std::vector<uint16_t> node_depth_;
  std::vector<uint32_t> node_end_;
  std::vector<uint32_t> tok_begin_;
  std::vector<int32_t> node_tokens_;
  size_t max_depth_ = 0;
};

/// Follows generated text through a grammar: the set of pushdown stacks alive after the text so
/// far (llama.cpp's grammar stacks) plus an unfinished UTF-8 character. Stack sets are interned
/// and the byte transitions between them cached (a lazily built automaton), so filtering a
/// vocabulary costs about one table lookup per trie node visited. The caches are bounded: past
/// about 16k interned sets they are dropped and rebuilt. Not thread-safe; copyable.
class GrammarMatcher {
 public:
  /// Starts at the beginning of `grammar`'s root rule. `vocab` is needed for the token methods
  /// (may be null for byte-only use).
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab = nullptr);

  /// Feeds raw text (UTF-8, possibly ending inside a character). Returns false and leaves the
  /// state unchanged if the grammar cannot continue with these bytes. Like every method that
  /// follows text, throws Error (state unchanged) if one step needs more than 16M stacks in all
  /// (only very ambiguous grammars do, e.g. thousands of nested rules each of which may end).
  bool accept_bytes(std::string_view bytes);
  /// Whether accept_bytes(bytes) would succeed (the state is not changed).
  bool can_accept_bytes(std::string_view bytes);

  /// Feeds one token: an end-of-generation token is accepted only when is_complete() (and
  /// changes nothing); a token element of the grammar accepts it by id; otherwise its piece is
  /// fed as text (an empty piece is rejected). Returns false, state unchanged, if rejected.
  /// Throws Error if no vocabulary was given or `id` is out of range.
  bool accept_token(int32_t id);
  /// Whether accept_token(id) would succeed (the state is not changed).
  bool token_allowed(int32_t id);
  /// For every token of the vocabulary, whether accept_token would succeed: allowed[id] is 1 or
  /// 0 (resized to n_vocab). The answers of the last few states are kept (set_mask_cache), so a
  /// state that comes back (e.g. inside a string) costs a copy. Throws Error if no vocabulary
  /// was given.
  void fill_allowed(std::vector<uint8_t>& allowed);
  /// Number of fill_allowed() answers kept, each n_vocab bytes (default 16; 0: none).
  void set_mask_cache(size_t n_masks);

  /// The root rule is complete here (no unfinished character): generation may end.
  bool is_complete() const;
  /// Some non-empty continuation is possible (false at the end of a finished grammar).
  bool can_continue() const;
  /// Back to the start of the root rule (caches are kept).
  void reset();

  const Grammar& grammar() const { return *grammar_; }
  /// Number of automaton states built so far (for tests and benchmarks).
  size_t n_states() const { return states_.size(); }

 private:
  struct StackNode {
    uint32_t pos;    // element index of the top
    int32_t parent;  // stack below (0: empty)
  };
  struct State {
    int32_t set;       // interned stack set
    uint32_t partial;  // bits of an unfinished UTF-8 character
    uint8_t remain;    // continuation bytes still expected (0: none)
    uint8_t length;    // byte length of the unfinished character
    bool complete;     // the set holds the empty stack and no character is pending
    bool has_tokens;   // some stack waits for a whole token
  };
  static constexpr int32_t kDead = -1;
  static constexpr int32_t kUnknown = -2;

  int32_t intern_node(uint32_t pos, int32_t parent);
  void expand(int32_t raw, std::vector<int32_t>& out);
  int32_t intern_set(std::vector<int32_t>& stacks);
  int32_t intern_state(int32_t set, uint32_t partial, uint8_t remain, uint8_t length);
  int32_t compute_transition(int32_t state, uint8_t byte);
  int32_t advance_code_point(int32_t set, uint32_t cp);
  int32_t advance_token(int32_t state, int32_t id);
  int32_t step(int32_t state, uint8_t byte) {
    const size_t k = static_cast<size_t>(state) * 256 + byte;
    const int32_t t = trans_[k];
    return t != kUnknown ? t : compute_transition(state, byte);
  }
  int32_t run_bytes(int32_t state, std::string_view bytes);
  int32_t token_target(int32_t id);
  void init();
  void maybe_flush();
  void rebuild();
  template <class F>
  auto guarded(F&& f) -> decltype(f());
  void fill_allowed_impl(std::vector<uint8_t>& allowed);
  const GrammarVocab& vocab() const;

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const GrammarVocab> vocab_;
  int32_t start_ = 0;  // state at the start of the root rule
  int32_t cur_ = 0;    // current state

  std::vector<StackNode> nodes_;                    // [0] is the empty stack
  std::unordered_map<uint64_t, int32_t> node_ids_;  // (pos, parent) -> node
  std::vector<int32_t> exp_begin_, exp_len_;        // node -> its expansion in exp_pool_ (begin -1: not yet)
  std::vector<int32_t> exp_pool_;
  std::vector<uint8_t> expanding_;  // node -> expansion in progress (cycle guard)
  std::vector<std::vector<int32_t>> sets_;  // set -> sorted expanded stacks
  std::unordered_map<std::string, int32_t> set_ids_;
  size_t set_entries_ = 0;  // stack ids in all sets
  std::vector<State> states_;
  std::unordered_map<uint64_t, int32_t> state_ids_;
  std::vector<int32_t> trans_;  // state * 256 + byte -> state, kDead or kUnknown
  std::vector<int32_t> walk_;   // per-depth states of the trie walk
  struct Mask {
    int32_t state;
    uint64_t used;
    std::vector<uint8_t> allowed;
  };
  std::vector<Mask> masks_;  // fill_allowed() answers by state, least recently used replaced
  size_t max_masks_ = 16;
  uint64_t clock_ = 0;
};

}  // namespace hearth::sample

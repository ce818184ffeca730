#include "sample/grammar.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include "hearth/error.h"
#include "tokenizer/tokenizer.h"

namespace hearth::sample {

namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr uint64_t kMaxRepeat = 10000;            // largest repetition bound
constexpr size_t kMaxElements = size_t{1} << 22;  // elements after expanding repetitions
constexpr uint64_t kUnbounded = std::numeric_limits<uint64_t>::max();
constexpr int kMaxNesting = 256;  // parentheses inside parentheses (bounds the recursion)

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the UTF-8 character at s[i] (strict: no overlong forms, surrogates or values past
// U+10FFFF) and advances i; nullopt if the bytes there are not valid UTF-8.
std::optional<uint32_t> decode_utf8(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len;
  uint32_t cp, min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (i + static_cast<size_t>(len) > s.size()) return std::nullopt;
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + static_cast<size_t>(k)]);
    if ((b & 0xC0) != 0x80) return std::nullopt;
    cp = cp << 6 | (b & 0x3F);
  }
  if (cp < min || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += static_cast<size_t>(len);
  return cp;
}

// Sorts and merges ranges into the canonical form of Grammar::CharClass.
Grammar::CharClass normalize(Grammar::CharClass r) {
  std::sort(r.begin(), r.end());
  Grammar::CharClass out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.emplace_back(lo, hi);
    }
  }
  return out;
}

Grammar::CharClass complement(const Grammar::CharClass& r) {
  Grammar::CharClass out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : r) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.emplace_back(next, kMaxCodePoint);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parser

class GrammarParser {
 public:
  GrammarParser(std::string_view src, const GrammarVocab* vocab) : src_(src), vocab_(vocab) {}

  std::shared_ptr<const Grammar> run() {
    skip_space(true);
    if (at_end()) throw Error("grammar: empty (no rules; a grammar needs at least `root ::= ...`)");
    while (!at_end()) parse_rule();
    for (const RuleDef& r : rules_) {
      if (!r.defined) fail(r.first_ref, "undefined rule '" + r.name + "'");
    }
    const auto root = ids_.find("root");
    if (root == ids_.end()) throw Error("grammar: no 'root' rule (the start rule must be called root)");
    check_left_recursion();

    auto g = std::make_shared<Grammar>();
    g->root_ = root->second;
    g->classes_ = std::move(classes_);
    for (RuleDef& r : rules_) {
      std::vector<uint32_t> starts;
      for (const Seq& alt : r.alts) {
        starts.push_back(static_cast<uint32_t>(g->elements_.size()));
        g->elements_.insert(g->elements_.end(), alt.begin(), alt.end());
        g->elements_.push_back({Grammar::Kind::End, 0});
      }
      g->rule_alts_.push_back(std::move(starts));
      g->rule_names_.push_back(std::move(r.name));
    }
    return g;
  }

 private:
  using Seq = std::vector<Grammar::Element>;
  struct RuleDef {
    std::string name;
    std::vector<Seq> alts;
    bool defined = false;
    size_t where = 0;         // offset of the definition (or of the construct a generated rule stands for)
    size_t first_ref = 0;     // offset of the first reference
    std::string base;         // generated rules: the user rule they are part of
    bool repetition = false;  // generated for a repetition operator
  };

  [[noreturn]] void fail(size_t offset, const std::string& what) const {
    throw Error("grammar: " + where(offset) + ": " + what);
  }
  std::string where(size_t offset) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < offset && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<uint8_t>(src_[i]) & 0xC0) != 0x80) {
        ++col;
      }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
  }

  bool at_end() const { return pos_ >= src_.size(); }
  char peek(size_t k = 0) const { return pos_ + k < src_.size() ? src_[pos_ + k] : '\0'; }
  std::string shown(size_t offset) const {
    if (offset >= src_.size()) return "end of input";
    const char c = src_[offset];
    if (c == '\n' || c == '\r') return "end of line";
    size_t i = offset;
    if (decode_utf8(src_, i)) return "'" + std::string(src_.substr(offset, i - offset)) + "'";
    return "byte 0x" + std::string(1, "0123456789abcdef"[(static_cast<uint8_t>(c) >> 4)]) +
           std::string(1, "0123456789abcdef"[c & 15]);
  }

  // Spaces, tabs and comments; line breaks too when newline_ok.
  void skip_space(bool newline_ok) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || (newline_ok && (c == '\r' || c == '\n'))) {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\r' && peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (!at_end() && is_word_char(peek())) ++pos_;
    if (pos_ == start) fail(start, "expected a rule name, found " + shown(start));
    return std::string(src_.substr(start, pos_ - start));
  }

  uint32_t rule_ref(const std::string& name, size_t offset) {
    const auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const auto id = static_cast<uint32_t>(rules_.size());
    ids_.emplace(name, id);
    RuleDef r;
    r.name = name;
    r.first_ref = offset;
    rules_.push_back(std::move(r));
    return id;
  }

  // A rule for a group or repetition inside rule `base`, standing for the construct at `offset`.
  uint32_t new_rule(const std::string& base, size_t offset, bool repetition) {
    std::string name = base + "_" + std::to_string(rules_.size());
    while (ids_.count(name)) name += "_";
    const uint32_t id = rule_ref(name, offset);
    rules_[id].defined = true;
    rules_[id].where = offset;
    rules_[id].base = base;
    rules_[id].repetition = repetition;
    return id;
  }

  void count_elements(size_t n, size_t offset) {
    total_ += n;
    if (total_ > kMaxElements) {
      fail(offset,
           "grammar too large after expanding repetitions (more than " + std::to_string(kMaxElements) + " elements)");
    }
  }

  void parse_rule() {
    const size_t start = pos_;
    const std::string name = parse_name();
    skip_space(false);
    if (!(peek() == ':' && peek(1) == ':' && peek(2) == '=')) {
      fail(pos_, "expected '::=' after the rule name '" + name + "', found " + shown(pos_));
    }
    pos_ += 3;
    skip_space(true);
    const uint32_t id = rule_ref(name, start);
    if (rules_[id].defined) {
      fail(start, "rule '" + name + "' is defined twice (first at " + where(rules_[id].where) + ")");
    }
    rules_[id].defined = true;
    rules_[id].where = start;
    std::vector<Seq> alts = parse_alternates(name, false);
    rules_[id].alts = std::move(alts);
    if (!at_end()) {
      const char c = peek();
      if (c == '\r') {
        pos_ += peek(1) == '\n' ? 2 : 1;
      } else if (c == '\n') {
        ++pos_;
      } else if (c == ')') {
        fail(pos_, "unbalanced parentheses: ')' without a matching '('");
      } else if (c == ':') {
        fail(pos_, "unexpected '::=': a new rule must start on a new line");
      } else {
        fail(pos_, "unexpected " + shown(pos_) + " in rule '" + name + "'");
      }
    }
    skip_space(true);
  }

  std::vector<Seq> parse_alternates(const std::string& rule_name, bool nested) {
    std::vector<Seq> alts;
    alts.push_back(parse_sequence(rule_name, nested));
    while (peek() == '|') {
      ++pos_;
      skip_space(true);
      alts.push_back(parse_sequence(rule_name, nested));
    }
    return alts;
  }

  // One code point of a literal or class, with escapes (llama.cpp's set).
  uint32_t parse_char() {
    const size_t start = pos_;
    if (peek() == '\\') {
      const char e = peek(1);
      int n_hex = 0;
      switch (e) {
        case 'x':
          n_hex = 2;
          break;
        case 'u':
          n_hex = 4;
          break;
        case 'U':
          n_hex = 8;
          break;
        case 't':
          pos_ += 2;
          return '\t';
        case 'r':
          pos_ += 2;
          return '\r';
        case 'n':
          pos_ += 2;
          return '\n';
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
          pos_ += 2;
          return static_cast<uint8_t>(e);
        case '\0':
          if (pos_ + 1 >= src_.size()) fail(start, "unexpected end of input after '\\'");
          [[fallthrough]];
        default:
          fail(start, "unknown escape '\\" + std::string(1, e) +
                          "' (known: \\x.. \\u.... \\U........ \\t \\r \\n \\\\ \\\" \\[ \\] \\-)");
      }
      pos_ += 2;
      uint64_t v = 0;
      for (int k = 0; k < n_hex; ++k) {
        const int h = hex_value(peek());
        if (h < 0)
          fail(start, "bad escape: '\\" + std::string(1, e) + "' needs " + std::to_string(n_hex) + " hex digits");
        v = v << 4 | static_cast<uint64_t>(h);
        ++pos_;
      }
      if (v > kMaxCodePoint) fail(start, "escape names a code point beyond U+10FFFF");
      return static_cast<uint32_t>(v);
    }
    const auto cp = decode_utf8(src_, pos_);
    if (!cp) fail(start, "invalid UTF-8 in the grammar text");
    return *cp;
  }

  uint32_t class_id(Grammar::CharClass c) {
    const auto it = class_ids_.find(c);
    if (it != class_ids_.end()) return it->second;
    const auto id = static_cast<uint32_t>(classes_.size());
    class_ids_.emplace(c, id);
    classes_.push_back(std::move(c));
    return id;
  }

  int32_t parse_token_id() {
    const size_t start = pos_;
    ++pos_;  // '<'
    if (peek() == '[') {
      ++pos_;
      const size_t digits = pos_;
      uint64_t v = 0;
      while (is_digit(peek())) {
        v = v * 10 + static_cast<uint64_t>(peek() - '0');
        if (v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) fail(digits, "token id too large");
        ++pos_;
      }
      if (pos_ == digits) fail(pos_, "expected a token id after '<[', found " + shown(pos_));
      if (peek() != ']' || peek(1) != '>') fail(pos_, "expected ']>' to end the token reference");
      pos_ += 2;
      if (vocab_ && v >= static_cast<uint64_t>(vocab_->n_vocab())) {
        fail(start, "token id " + std::to_string(v) + " is outside the vocabulary [0, " +
                        std::to_string(vocab_->n_vocab()) + ")");
      }
      return static_cast<int32_t>(v);
    }
    const size_t text_start = pos_;
    while (!at_end() && peek() != '>' && peek() != '\n') ++pos_;
    if (peek() != '>') fail(start, "token reference '<' is never closed with '>'");
    const std::string text = "<" + std::string(src_.substr(text_start, pos_ - text_start)) + ">";
    ++pos_;
    if (!vocab_) fail(start, "token reference " + text + " needs a vocabulary (use <[id]> or give one)");
    const auto id = vocab_->find(text);
    if (!id) fail(start, "token reference " + text + " is not a single token of the vocabulary");
    return *id;
  }

  // Replaces seq[last, end) by its repetition {min, max} (max = kUnbounded: no limit), as
  // S{m,n} = S..S (m times) then n-m nested optional copies; unbounded: R ::= S R | (empty).
  void repeat(Seq& seq, size_t last, uint64_t min, uint64_t max, const std::string& rule_name, size_t offset) {
    const Seq item(seq.begin() + static_cast<std::ptrdiff_t>(last), seq.end());
    seq.resize(last);
    if (item.empty()) return;  // repeating nothing matches nothing
    const uint64_t n_opt = max == kUnbounded ? 0 : max - min;
    count_elements(item.size() * (min + n_opt + 1) + 2 * n_opt + 2, offset);
    for (uint64_t i = 0; i < min; ++i) seq.insert(seq.end(), item.begin(), item.end());
    if (max == kUnbounded) {
      const uint32_t r = new_rule(rule_name, offset, true);
      Seq body = item;
      body.push_back({Grammar::Kind::RuleRef, r});
      rules_[r].alts = {std::move(body), Seq{}};
      seq.push_back({Grammar::Kind::RuleRef, r});
      return;
    }
    uint32_t prev = 0;
    for (uint64_t i = 0; i < n_opt; ++i) {
      const uint32_t r = new_rule(rule_name, offset, true);
      Seq body = item;
      if (i > 0) body.push_back({Grammar::Kind::RuleRef, prev});
      rules_[r].alts = {std::move(body), Seq{}};
      prev = r;
    }
    if (n_opt > 0) seq.push_back({Grammar::Kind::RuleRef, prev});
  }

  uint64_t parse_count() {
    const size_t start = pos_;
    uint64_t v = 0;
    while (is_digit(peek())) {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > kMaxRepeat) fail(start, "repetition bound above " + std::to_string(kMaxRepeat));
      ++pos_;
    }
    if (pos_ == start) fail(start, "expected a number in the repetition bounds, found " + shown(start));
    return v;
  }

  Seq parse_sequence(const std::string& rule_name, bool nested) {
    Seq seq;
    size_t last = std::string::npos;  // start of the last item in seq
    while (!at_end()) {
      const size_t start = pos_;
      const char c = peek();
      if (c == '"') {
        ++pos_;
        last = seq.size();
        while (peek() != '"') {
          if (at_end()) fail(start, "string literal is never closed");
          const uint32_t cp = parse_char();
          seq.push_back({Grammar::Kind::Chars, class_id({{cp, cp}})});
        }
        ++pos_;
        count_elements(seq.size() - last, start);
        skip_space(nested);
      } else if (c == '[') {
        ++pos_;
        bool negated = false;
        if (peek() == '^') {
          negated = true;
          ++pos_;
        }
        Grammar::CharClass ranges;
        while (peek() != ']') {
          if (at_end()) fail(start, "character class '[' is never closed with ']'");
          const size_t lo_at = pos_;
          const uint32_t lo = parse_char();
          uint32_t hi = lo;
          if (peek() == '-' && peek(1) != ']' && pos_ + 1 < src_.size()) {
            ++pos_;
            hi = parse_char();
            if (hi < lo) fail(lo_at, "reversed range in character class (the end is below the start)");
          }
          ranges.emplace_back(lo, hi);
        }
        ++pos_;
        if (ranges.empty()) fail(start, "empty character class");
        ranges = normalize(std::move(ranges));
        if (negated) ranges = complement(ranges);
        if (ranges.empty()) fail(start, "character class matches no character");
        last = seq.size();
        seq.push_back({Grammar::Kind::Chars, class_id(std::move(ranges))});
        count_elements(1, start);
        skip_space(nested);
      } else if (c == '<' || c == '!') {
        Grammar::Kind kind = Grammar::Kind::Token;
        if (c == '!') {
          kind = Grammar::Kind::TokenNot;
          ++pos_;
          if (peek() != '<') fail(pos_, "expected a token reference '<...>' after '!'");
        }
        const int32_t id = parse_token_id();
        last = seq.size();
        seq.push_back({kind, static_cast<uint32_t>(id)});
        count_elements(1, start);
        skip_space(nested);
      } else if (is_word_char(c)) {
        // A name followed by '::=' starts the next rule: the caller reports the missing newline.
        const std::string name = parse_name();
        skip_space(nested);
        if (peek() == ':' && peek(1) == ':' && peek(2) == '=') {
          fail(start, "missing newline before the rule '" + name + "'");
        }
        last = seq.size();
        seq.push_back({Grammar::Kind::RuleRef, rule_ref(name, start)});
        count_elements(1, start);
      } else if (c == '(') {
        if (++depth_ > kMaxNesting) fail(start, "groups nested deeper than " + std::to_string(kMaxNesting));
        ++pos_;
        skip_space(true);
        const uint32_t r = new_rule(rule_name, start, false);
        std::vector<Seq> alts = parse_alternates(rule_name, true);
        if (peek() != ')') {
          if (at_end()) fail(start, "unbalanced parentheses: '(' is never closed");
          fail(pos_, "expected ')' to close the '(' at " + where(start) + ", found " + shown(pos_));
        }
        ++pos_;
        --depth_;
        rules_[r].alts = std::move(alts);
        last = seq.size();
        seq.push_back({Grammar::Kind::RuleRef, r});
        count_elements(1, start);
        skip_space(nested);
      } else if (c == '.') {
        ++pos_;
        last = seq.size();
        seq.push_back({Grammar::Kind::Chars, class_id({{0, kMaxCodePoint}})});
        count_elements(1, start);
        skip_space(nested);
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (last == std::string::npos) fail(start, "'" + std::string(1, c) + "' has nothing before it to repeat");
        uint64_t min = 0, max = kUnbounded;
        ++pos_;
        if (c == '+') {
          min = 1;
        } else if (c == '?') {
          max = 1;
        } else if (c == '{') {
          skip_space(nested);
          min = parse_count();
          skip_space(nested);
          if (peek() == '}') {
            max = min;
          } else if (peek() == ',') {
            ++pos_;
            skip_space(nested);
            if (is_digit(peek())) {
              max = parse_count();
              skip_space(nested);
            }
            if (peek() != '}') fail(pos_, "expected '}' to end the repetition bounds, found " + shown(pos_));
            if (max < min)
              fail(start, "repetition bounds {" + std::to_string(min) + "," + std::to_string(max) +
                              "}: the maximum is below the minimum");
          } else {
            fail(pos_, "expected ',' or '}' in the repetition bounds, found " + shown(pos_));
          }
          ++pos_;
        }
        skip_space(nested);
        repeat(seq, last, min, max, rule_name, start);
      } else {
        break;
      }
    }
    return seq;
  }

  // Left recursion (directly or through rules that can match the empty string) would make the
  // stacks grow without end: rejected, as llama.cpp does.
  void check_left_recursion() {
    const size_t n = rules_.size();
    std::vector<uint8_t> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Seq& alt : rules_[r].alts) {
          const bool all = std::all_of(alt.begin(), alt.end(), [&](const Grammar::Element& e) {
            return e.kind == Grammar::Kind::RuleRef && nullable[e.value];
          });
          if (all) {
            nullable[r] = 1;
            changed = true;
            break;
          }
        }
      }
    }
    std::vector<std::vector<uint32_t>> left(n);  // rules that can start rule r
    for (size_t r = 0; r < n; ++r) {
      for (const Seq& alt : rules_[r].alts) {
        for (const Grammar::Element& e : alt) {
          if (e.kind != Grammar::Kind::RuleRef) break;
          left[r].push_back(e.value);
          if (!nullable[e.value]) break;
        }
      }
    }
    std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
    // Depth-first search with an explicit stack: (rule, index of the next successor).
    std::vector<std::pair<uint32_t, size_t>> path;
    for (uint32_t root = 0; root < n; ++root) {
      if (color[root] != 0) continue;
      color[root] = 1;
      path.emplace_back(root, 0);
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next == left[r].size()) {
          color[r] = 2;
          path.pop_back();
          continue;
        }
        const uint32_t s = left[r][next++];
        if (color[s] == 1) report_cycle(path, s);
        if (color[s] == 0) {
          color[s] = 1;
          path.emplace_back(s, 0);
        }
      }
    }
  }

  [[noreturn]] void report_cycle(const std::vector<std::pair<uint32_t, size_t>>& path, uint32_t s) const {
    std::string cycle;
    bool repetition = false;
    auto it = path.begin();
    while (it->first != s) ++it;
    for (; it != path.end(); ++it) {
      cycle += user_name(it->first) + " -> ";
      repetition = repetition || rules_[it->first].repetition;
    }
    cycle += user_name(s);
    if (repetition) {
      fail(
          rules_[s].where,
          "left recursion is not supported: a repetition of something that can match the empty string (" + cycle + ")");
    }
    fail(rules_[s].where, "left recursion is not supported (" + cycle +
                              "); rewrite it with a repetition, e.g. `expr ::= term (\"+\" term)*`");
  }

  // The name of a rule as the user wrote it (generated rules name their rule and place).
  std::string user_name(uint32_t r) const {
    const RuleDef& d = rules_[r];
    if (d.base.empty()) return "'" + d.name + "'";
    return std::string(d.repetition ? "repetition" : "group") + " in '" + d.base + "' at " + where(d.where);
  }

  std::string_view src_;
  const GrammarVocab* vocab_;
  size_t pos_ = 0;
  size_t total_ = 0;
  int depth_ = 0;
  std::vector<RuleDef> rules_;
  std::unordered_map<std::string, uint32_t> ids_;
  std::map<Grammar::CharClass, uint32_t> class_ids_;
  std::vector<Grammar::CharClass> classes_;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view gbnf, const GrammarVocab* vocab) {
  return GrammarParser(gbnf, vocab).run();
}

std::optional<uint32_t> Grammar::rule_id(std::string_view name) const {
  for (size_t i = 0; i < rule_names_.size(); ++i) {
    if (rule_names_[i] == name) return static_cast<uint32_t>(i);
  }
  return std::nullopt;
}

bool Grammar::class_contains(uint32_t id, uint32_t cp) const {
  const CharClass& c = classes_[id];
  // First range whose end is >= cp.
  const auto it = std::lower_bound(c.begin(), c.end(), cp,
                                   [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
  return it != c.end() && it->first <= cp;
}

bool Grammar::class_intersects(uint32_t id, uint32_t lo, uint32_t hi) const {
  const CharClass& c = classes_[id];
  const auto it = std::lower_bound(c.begin(), c.end(), lo,
                                   [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
  return it != c.end() && it->first <= hi;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

GrammarVocab::GrammarVocab(std::vector<std::string> pieces, const std::vector<int32_t>& eog,
                           std::vector<std::string> texts)
    : pieces_(std::move(pieces)), eog_(pieces_.size(), 0) {
  if (pieces_.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) throw Error("vocabulary too large");
  for (int32_t id : eog) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) {
      throw Error("end-of-generation token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                  std::to_string(pieces_.size()) + ")");
    }
    eog_[static_cast<size_t>(id)] = 1;
  }
  if (!texts.empty() && texts.size() != pieces_.size()) {
    throw Error("grammar vocabulary: " + std::to_string(texts.size()) + " token texts for " +
                std::to_string(pieces_.size()) + " pieces");
  }
  const std::vector<std::string>& names = texts.empty() ? pieces_ : texts;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!names[i].empty()) by_text_.emplace(names[i], static_cast<int32_t>(i));
  }

  // The byte trie in depth-first order: sorted pieces share their prefixes with the previous one.
  std::vector<int32_t> order;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    if (!pieces_[i].empty() && !eog_[i] && pieces_[i].size() <= std::numeric_limits<uint16_t>::max()) {
      order.push_back(static_cast<int32_t>(i));
    }
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const int c = pieces_[static_cast<size_t>(a)].compare(pieces_[static_cast<size_t>(b)]);
    return c < 0 || (c == 0 && a < b);
  });
  std::vector<uint32_t> path;  // node at each depth of the current piece
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& p = pieces_[static_cast<size_t>(id)];
    size_t common = 0;
    if (prev) {
      while (common < p.size() && common < prev->size() && p[common] == (*prev)[common]) ++common;
    }
    while (path.size() > common) {
      node_end_[path.back()] = static_cast<uint32_t>(node_byte_.size());
      path.pop_back();
    }
    for (size_t d = common; d < p.size(); ++d) {
      path.push_back(static_cast<uint32_t>(node_byte_.size()));
      node_byte_.push_back(static_cast<uint8_t>(p[d]));
      node_depth_.push_back(static_cast<uint16_t>(d + 1));
      node_end_.push_back(0);
      tok_begin_.push_back(static_cast<uint32_t>(node_tokens_.size()));
    }
    node_tokens_.push_back(id);
    max_depth_ = std::max(max_depth_, p.size());
    prev = &p;
  }
  while (!path.empty()) {
    node_end_[path.back()] = static_cast<uint32_t>(node_byte_.size());
    path.pop_back();
  }
  tok_begin_.push_back(static_cast<uint32_t>(node_tokens_.size()));
}

std::shared_ptr<const GrammarVocab> GrammarVocab::from_tokenizer(const tokenizer::Tokenizer& tok) {
  const int32_t n = tok.n_vocab();
  std::vector<std::string> pieces(static_cast<size_t>(n)), texts(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    pieces[static_cast<size_t>(id)] = tok.token_to_piece(id, false);
    texts[static_cast<size_t>(id)] = tok.token_text(id);
  }
  return std::make_shared<const GrammarVocab>(std::move(pieces), tok.vocab().eog_ids(), std::move(texts));
}

std::optional<int32_t> GrammarVocab::find(std::string_view text) const {
  const auto it = by_text_.find(std::string(text));
  if (it == by_text_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// Matcher

namespace {
constexpr size_t kMaxStates = 16384;             // automaton states kept before the caches are dropped
constexpr size_t kMaxNodes = size_t{1} << 21;    // interned stack nodes kept before the same
constexpr size_t kMaxEntries = size_t{1} << 22;  // stack ids in memoized expansions, or in sets
constexpr size_t kMaxExpandDepth = 1000000;      // rule references expanded inside one another
}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {
  if (!grammar_) throw Error("grammar matcher: no grammar");
  init();
  cur_ = start_;
}

void GrammarMatcher::init() {
  nodes_.assign(1, StackNode{0, 0});
  node_ids_.clear();
  exp_begin_.assign(1, -1);
  exp_len_.assign(1, 0);
  expanding_.assign(1, 0);
  exp_pool_.clear();
  sets_.clear();
  set_ids_.clear();
  set_entries_ = 0;
  states_.clear();
  state_ids_.clear();
  trans_.clear();
  masks_.clear();
  const auto& el = grammar_->elements();
  std::vector<int32_t> stacks;
  for (uint32_t a : grammar_->alternatives(grammar_->root())) {
    expand(el[a].kind == Grammar::Kind::End ? 0 : intern_node(a, 0), stacks);
  }
  start_ = intern_state(intern_set(stacks), 0, 0, 0);
}

const GrammarVocab& GrammarMatcher::vocab() const {
  if (!vocab_) throw Error("grammar matcher: no vocabulary was given for token filtering");
  return *vocab_;
}

int32_t GrammarMatcher::intern_node(uint32_t pos, int32_t parent) {
  const uint64_t key = static_cast<uint64_t>(pos) << 32 | static_cast<uint32_t>(parent);
  const auto [it, added] = node_ids_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (added) {
    nodes_.push_back({pos, parent});
    exp_begin_.push_back(-1);
    exp_len_.push_back(0);
    expanding_.push_back(0);
  }
  return it->second;
}

// Appends to `out` the stacks reachable from `raw` without consuming input whose top is a
// terminal (a character class or a token), and the empty stack if the root can end there.
// Depth-first with an explicit stack of frames (rule references being expanded), so deep
// grammars cannot overflow the call stack; every node's result is memoized.
void GrammarMatcher::expand(int32_t raw, std::vector<int32_t>& out) {
  struct Frame {
    int32_t id;          // node whose top is a rule reference
    int32_t cont;        // what follows the reference
    uint32_t rule;
    uint32_t next_alt;   // next alternative to expand
    size_t acc_begin;    // start of this frame's results in acc
  };
  const auto& el = grammar_->elements();
  std::vector<Frame> frames;
  std::vector<int32_t> acc;  // results of the open frames, innermost last
  // Adds the result of node `id` to acc, or opens a frame to compute it.
  auto visit = [&](int32_t id) {
    const auto i = static_cast<size_t>(id);
    if (id == 0) {
      acc.push_back(0);
    } else if (exp_begin_[i] >= 0) {
      const auto b = static_cast<std::ptrdiff_t>(exp_begin_[i]);
      acc.insert(acc.end(), exp_pool_.begin() + b, exp_pool_.begin() + b + exp_len_[i]);
    } else if (!expanding_[i]) {  // (a cycle through empty rules adds nothing new)
      const StackNode n = nodes_[i];
      const Grammar::Element e = el[n.pos];
      if (e.kind != Grammar::Kind::RuleRef) {
        acc.push_back(id);
        return;
      }
      if (frames.size() >= kMaxExpandDepth) {
        throw Error("grammar: following the text needs more than " + std::to_string(kMaxExpandDepth) +
                    " nested rule expansions at once (too deep)");
      }
      const int32_t cont = el[n.pos + 1].kind == Grammar::Kind::End ? n.parent : intern_node(n.pos + 1, n.parent);
      expanding_[i] = 1;
      frames.push_back({id, cont, e.value, 0, acc.size()});
    }
  };
  visit(raw);
  while (!frames.empty()) {
    Frame& f = frames.back();
    const std::vector<uint32_t>& alts = grammar_->alternatives(f.rule);
    if (f.next_alt < alts.size()) {
      const uint32_t a = alts[f.next_alt++];
      const int32_t cont = f.cont;
      visit(el[a].kind == Grammar::Kind::End ? cont : intern_node(a, cont));  // may push: f is stale after
      continue;
    }
    // All alternatives done: this frame's results are acc[acc_begin, end).
    const auto first = acc.begin() + static_cast<std::ptrdiff_t>(f.acc_begin);
    std::sort(first, acc.end());
    acc.erase(std::unique(first, acc.end()), acc.end());
    const auto i = static_cast<size_t>(f.id);
    expanding_[i] = 0;
    exp_begin_[i] = static_cast<int32_t>(exp_pool_.size());
    exp_len_[i] = static_cast<int32_t>(acc.end() - first);
    exp_pool_.insert(exp_pool_.end(), first, acc.end());
    if (exp_pool_.size() > 4 * kMaxEntries) {
      throw Error("grammar: following the text needs too many alternative stacks (the grammar is too ambiguous)");
    }
    frames.pop_back();
  }
  out.insert(out.end(), acc.begin(), acc.end());
}

int32_t GrammarMatcher::intern_set(std::vector<int32_t>& stacks) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  std::string key(stacks.size() * sizeof(int32_t), '\0');
  if (!stacks.empty()) std::memcpy(key.data(), stacks.data(), key.size());
  const auto [it, added] = set_ids_.try_emplace(std::move(key), static_cast<int32_t>(sets_.size()));
  if (added) {
    sets_.push_back(stacks);
    set_entries_ += stacks.size();
  }
  return it->second;
}

int32_t GrammarMatcher::intern_state(int32_t set, uint32_t partial, uint8_t remain, uint8_t length) {
  const uint64_t key = static_cast<uint64_t>(static_cast<uint32_t>(set)) << 32 | static_cast<uint64_t>(partial) << 8 |
                       static_cast<uint64_t>(remain) << 4 | length;
  const auto [it, added] = state_ids_.try_emplace(key, static_cast<int32_t>(states_.size()));
  if (added) {
    const std::vector<int32_t>& stacks = sets_[static_cast<size_t>(set)];
    State s{set, partial, remain, length, false, false};
    s.complete = remain == 0 && !stacks.empty() && stacks.front() == 0;
    if (remain == 0) {
      const auto& el = grammar_->elements();
      for (int32_t id : stacks) {
        if (id != 0 && el[nodes_[static_cast<size_t>(id)].pos].kind != Grammar::Kind::Chars) s.has_tokens = true;
      }
    }
    states_.push_back(s);
    trans_.resize(trans_.size() + 256, kUnknown);
  }
  return it->second;
}

int32_t GrammarMatcher::advance_code_point(int32_t set, uint32_t cp) {
  const auto& el = grammar_->elements();
  const std::vector<int32_t> stacks = sets_[static_cast<size_t>(set)];  // copy: interning may move sets_
  std::vector<int32_t> out;
  for (int32_t id : stacks) {
    if (id == 0) continue;
    const StackNode n = nodes_[static_cast<size_t>(id)];
    const Grammar::Element e = el[n.pos];
    if (e.kind != Grammar::Kind::Chars || !grammar_->class_contains(e.value, cp)) continue;
    expand(el[n.pos + 1].kind == Grammar::Kind::End ? n.parent : intern_node(n.pos + 1, n.parent), out);
  }
  if (out.empty()) return kDead;
  return intern_state(intern_set(out), 0, 0, 0);
}

int32_t GrammarMatcher::compute_transition(int32_t state, uint8_t byte) {
  const State s = states_[static_cast<size_t>(state)];
  int32_t result = kDead;
  uint32_t partial;
  uint8_t remain, length;
  if (s.remain > 0) {
    if ((byte & 0xC0) != 0x80) {
      trans_[static_cast<size_t>(state) * 256 + byte] = kDead;
      return kDead;
    }
    partial = s.partial << 6 | (byte & 0x3F);
    remain = static_cast<uint8_t>(s.remain - 1);
    length = s.length;
  } else if (byte < 0x80) {
    result = advance_code_point(s.set, byte);
    trans_[static_cast<size_t>(state) * 256 + byte] = result;
    return result;
  } else {
    if (byte >= 0xC2 && byte <= 0xDF) {
      length = 2, partial = byte & 0x1F;
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      length = 3, partial = byte & 0x0F;
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      length = 4, partial = byte & 0x07;
    } else {
      trans_[static_cast<size_t>(state) * 256 + byte] = kDead;
      return kDead;
    }
    remain = static_cast<uint8_t>(length - 1);
  }
  // The code points this character can still become: valid for its length, no surrogates.
  const uint32_t min = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
  const uint32_t max = length == 2 ? 0x7FF : length == 3 ? 0xFFFF : kMaxCodePoint;
  uint32_t lo = partial << (6 * remain);
  uint32_t hi = lo | ((1u << (6 * remain)) - 1);
  lo = std::max(lo, min);
  hi = std::min(hi, max);
  if (remain == 0) {
    if (lo <= hi && !(lo >= 0xD800 && lo <= 0xDFFF)) result = advance_code_point(s.set, lo);
  } else if (lo <= hi) {
    const auto& el = grammar_->elements();
    bool feasible = false;
    for (int32_t id : sets_[static_cast<size_t>(s.set)]) {
      if (id == 0) continue;
      const Grammar::Element e = el[nodes_[static_cast<size_t>(id)].pos];
      if (e.kind != Grammar::Kind::Chars) continue;
      const bool below = lo < 0xD800 && grammar_->class_intersects(e.value, lo, std::min(hi, 0xD7FFu));
      const bool above = hi > 0xDFFF && grammar_->class_intersects(e.value, std::max(lo, 0xE000u), hi);
      if (below || above) {
        feasible = true;
        break;
      }
    }
    if (feasible) result = intern_state(s.set, partial, remain, length);
  }
  trans_[static_cast<size_t>(state) * 256 + byte] = result;
  return result;
}

int32_t GrammarMatcher::run_bytes(int32_t state, std::string_view bytes) {
  for (char c : bytes) {
    state = step(state, static_cast<uint8_t>(c));
    if (state < 0) return kDead;
  }
  return state;
}

int32_t GrammarMatcher::advance_token(int32_t state, int32_t id) {
  const State s = states_[static_cast<size_t>(state)];
  if (!s.has_tokens) return kDead;
  const auto& el = grammar_->elements();
  const std::vector<int32_t> stacks = sets_[static_cast<size_t>(s.set)];
  std::vector<int32_t> out;
  for (int32_t sid : stacks) {
    if (sid == 0) continue;
    const StackNode n = nodes_[static_cast<size_t>(sid)];
    const Grammar::Element e = el[n.pos];
    const bool match = (e.kind == Grammar::Kind::Token && e.value == static_cast<uint32_t>(id)) ||
                       (e.kind == Grammar::Kind::TokenNot && e.value != static_cast<uint32_t>(id));
    if (!match) continue;
    expand(el[n.pos + 1].kind == Grammar::Kind::End ? n.parent : intern_node(n.pos + 1, n.parent), out);
  }
  if (out.empty()) return kDead;
  return intern_state(intern_set(out), 0, 0, 0);
}

// The state after token `id` from the current one (kDead if the grammar rejects it). An
// end-of-generation token leaves the state as it is when the grammar is complete.
int32_t GrammarMatcher::token_target(int32_t id) {
  const GrammarVocab& v = vocab();
  if (id < 0 || id >= v.n_vocab()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(v.n_vocab()) +
                ")");
  }
  if (v.is_eog(id)) return is_complete() ? cur_ : kDead;
  const std::string& piece = v.piece(id);
  const int32_t by_text = piece.empty() ? kDead : run_bytes(cur_, piece);
  const int32_t by_id = advance_token(cur_, id);
  if (by_id < 0) return by_text;
  if (by_text < 0) return by_id;
  const State a = states_[static_cast<size_t>(by_text)];
  if (a.remain != 0) return by_text;  // cannot join an unfinished character with a finished one
  std::vector<int32_t> both = sets_[static_cast<size_t>(a.set)];
  const std::vector<int32_t>& b = sets_[static_cast<size_t>(states_[static_cast<size_t>(by_id)].set)];
  both.insert(both.end(), b.begin(), b.end());
  return intern_state(intern_set(both), 0, 0, 0);
}

void GrammarMatcher::maybe_flush() {
  if (states_.size() > kMaxStates || nodes_.size() > kMaxNodes || exp_pool_.size() > kMaxEntries ||
      set_entries_ > kMaxEntries) {
    rebuild();
  }
}

template <class F>
auto GrammarMatcher::guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    rebuild();  // an expansion may have stopped half way: drop what it cached
    throw;
  }
}

void GrammarMatcher::rebuild() {
  // Keep the current stacks as element positions (top first), rebuild from scratch.
  const State s = states_[static_cast<size_t>(cur_)];
  std::vector<std::vector<uint32_t>> stacks;
  for (int32_t id : sets_[static_cast<size_t>(s.set)]) {
    std::vector<uint32_t> st;
    for (int32_t n = id; n != 0; n = nodes_[static_cast<size_t>(n)].parent)
      st.push_back(nodes_[static_cast<size_t>(n)].pos);
    stacks.push_back(std::move(st));
  }
  init();
  std::vector<int32_t> ids;
  for (const auto& st : stacks) {
    int32_t n = 0;
    for (auto it = st.rbegin(); it != st.rend(); ++it) n = intern_node(*it, n);
    ids.push_back(n);
  }
  cur_ = intern_state(intern_set(ids), s.partial, s.remain, s.length);
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  return guarded([&] {
    maybe_flush();
    const int32_t t = run_bytes(cur_, bytes);
    if (t < 0) return false;
    cur_ = t;
    return true;
  });
}

bool GrammarMatcher::can_accept_bytes(std::string_view bytes) {
  return guarded([&] {
    maybe_flush();
    return run_bytes(cur_, bytes) >= 0;
  });
}

bool GrammarMatcher::accept_token(int32_t id) {
  return guarded([&] {
    maybe_flush();
    const int32_t t = token_target(id);
    if (t < 0) return false;
    cur_ = t;
    return true;
  });
}

bool GrammarMatcher::token_allowed(int32_t id) {
  return guarded([&] {
    maybe_flush();
    return token_target(id) >= 0;
  });
}

void GrammarMatcher::set_mask_cache(size_t n_masks) {
  max_masks_ = n_masks;
  if (masks_.size() > n_masks) masks_.resize(n_masks);
}

void GrammarMatcher::fill_allowed(std::vector<uint8_t>& allowed) {
  guarded([&] { fill_allowed_impl(allowed); });
}

void GrammarMatcher::fill_allowed_impl(std::vector<uint8_t>& allowed) {
  const GrammarVocab& v = vocab();
  maybe_flush();
  ++clock_;
  for (Mask& m : masks_) {
    if (m.state == cur_) {
      m.used = clock_;
      allowed = m.allowed;
      return;
    }
  }
  allowed.assign(static_cast<size_t>(v.n_vocab()), 0);
  const State s = states_[static_cast<size_t>(cur_)];
  if (s.complete) {
    for (size_t i = 0; i < v.eog_.size(); ++i) allowed[i] |= v.eog_[i];
  }
  // Walk the trie: walk_[d] is the state after the first d bytes of the current node's piece.
  walk_.resize(v.max_depth_ + 1);
  walk_[0] = cur_;
  const size_t n_nodes = v.node_byte_.size();
  const uint8_t* bytes = v.node_byte_.data();
  const uint16_t* depth = v.node_depth_.data();
  const uint32_t* end = v.node_end_.data();
  const uint32_t* tb = v.tok_begin_.data();
  const int32_t* toks = v.node_tokens_.data();
  for (size_t i = 0; i < n_nodes;) {
    const int32_t t = step(walk_[depth[i] - 1u], bytes[i]);
    if (t < 0) {
      i = end[i];
      continue;
    }
    walk_[depth[i]] = t;
    for (uint32_t k = tb[i]; k < tb[i + 1]; ++k) allowed[static_cast<size_t>(toks[k])] = 1;
    ++i;
  }
  if (s.has_tokens) {
    const auto& el = grammar_->elements();
    for (int32_t sid : sets_[static_cast<size_t>(s.set)]) {
      if (sid == 0) continue;
      const Grammar::Element e = el[nodes_[static_cast<size_t>(sid)].pos];
      if (e.kind == Grammar::Kind::Token) {
        if (e.value < allowed.size() && !v.eog_[e.value]) allowed[e.value] = 1;
      } else if (e.kind == Grammar::Kind::TokenNot) {
        for (size_t id = 0; id < allowed.size(); ++id) {
          if (id != e.value && !v.eog_[id]) allowed[id] = 1;
        }
      }
    }
  }
  if (max_masks_ == 0) return;
  if (masks_.size() < max_masks_) {
    masks_.push_back({cur_, clock_, allowed});
    return;
  }
  Mask& lru =
      *std::min_element(masks_.begin(), masks_.end(), [](const Mask& a, const Mask& b) { return a.used < b.used; });
  lru.state = cur_;
  lru.used = clock_;
  lru.allowed = allowed;
}

bool GrammarMatcher::is_complete() const { return states_[static_cast<size_t>(cur_)].complete; }

bool GrammarMatcher::can_continue() const {
  const State& s = states_[static_cast<size_t>(cur_)];
  const auto& stacks = sets_[static_cast<size_t>(s.set)];
  return s.remain != 0 || std::any_of(stacks.begin(), stacks.end(), [](int32_t id) { return id != 0; });
}

void GrammarMatcher::reset() { cur_ = start_; }

}  // namespace hearth::sample

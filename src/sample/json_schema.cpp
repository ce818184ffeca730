#include "sample/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "hearth/error.h"

namespace hearth::sample {

namespace {

using ojson = nlohmann::ordered_json;
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr uint64_t kInf = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMaxCp = 0x10FFFF;

// ----- GBNF text helpers ----------------------------------------------------------------------

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

std::string hex(uint32_t v, int digits) {
  std::string s(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = "0123456789ABCDEF"[v & 15];
  return s;
}

// A GBNF string literal for UTF-8 text.
std::string literal(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x" + hex(c, 2);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// One code point inside a GBNF character class.
std::string class_char(uint32_t cp) {
  std::string out;
  if (cp == ']' || cp == '-' || cp == '\\' || cp == '"' || cp == '[') {
    out += '\\';
    out += utf8(cp);
  } else if (cp < 0x20 || cp == 0x7F || cp == '^') {  // '^' could read as a negation
    out += "\\x";
    out += hex(cp, 2);
  } else if (cp >= 0xD800 && cp <= 0xDFFF) {
    out += "\\u";
    out += hex(cp, 4);
  } else {
    out += utf8(cp);
  }
  return out;
}

std::string class_text(const Ranges& r) {
  std::string out = "[";
  for (const auto& [lo, hi] : r) {
    out += class_char(lo);
    if (hi != lo) {
      if (hi != lo + 1) out += '-';
      out += class_char(hi);
    }
  }
  return out + "]";
}

Ranges normalize(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.emplace_back(lo, hi);
    }
  }
  return out;
}

Ranges complement(const Ranges& r) {
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : r) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxCp) out.emplace_back(next, kMaxCp);
  return out;
}

Ranges intersect(const Ranges& a, const Ranges& b) {
  Ranges out;
  for (const auto& [alo, ahi] : a) {
    for (const auto& [blo, bhi] : b) {
      const uint32_t lo = std::max(alo, blo), hi = std::min(ahi, bhi);
      if (lo <= hi) out.emplace_back(lo, hi);
    }
  }
  return normalize(out);
}

bool contains(const Ranges& r, uint32_t cp) {
  return std::any_of(r.begin(), r.end(), [&](const auto& x) { return x.first <= cp && cp <= x.second; });
}

// JSON's escape of a character that cannot appear raw in a string (RFC 8259 §7).
std::string json_escape(uint32_t c) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    default: {
      std::string h = hex(c, 4);
      std::transform(h.begin(), h.end(), h.begin(), [](char x) { return static_cast<char>(std::tolower(x)); });
      return "\\u" + h;
    }
  }
}

// Code points that appear raw in our JSON strings: everything but '"', '\', controls and DEL
// (the complement of the first alternative of `char`).
const Ranges& raw_json_chars() {
  static const Ranges r = complement(normalize({{0x00, 0x1F}, {'"', '"'}, {'\\', '\\'}, {0x7F, 0x7F}}));
  return r;
}

// Expression for the JSON string content of one character from `set`: raw where allowed,
// escaped otherwise.
std::string json_class(const Ranges& set) {
  std::vector<std::string> alts;
  const Ranges raw = intersect(set, raw_json_chars());
  if (!raw.empty()) alts.push_back(class_text(raw));
  for (uint32_t c : {uint32_t{'"'}, uint32_t{'\\'}}) {
    if (contains(set, c)) alts.push_back(literal(json_escape(c)));
  }
  for (uint32_t c = 0; c <= 0x1F; ++c) {
    if (contains(set, c)) alts.push_back(literal(json_escape(c)));
  }
  if (contains(set, 0x7F)) alts.push_back(literal(json_escape(0x7F)));
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out + ")";
}

std::string json_char(uint32_t cp) {
  if (contains(raw_json_chars(), cp)) return literal(utf8(cp));
  return literal(json_escape(cp));
}

// `item` repeated between min and max times (max = kInf: no limit), GBNF postfix operators.
std::string repeat(const std::string& item, uint64_t min, uint64_t max) {
  if (max == 0) return "";
  if (max == kInf) {
    if (min == 0) return item + "*";
    if (min == 1) return item + "+";
    return item + "{" + std::to_string(min) + ",}";
  }
  if (min == 0 && max == 1) return item + "?";
  if (min == max) return min == 1 ? item : item + "{" + std::to_string(min) + "}";
  return item + "{" + std::to_string(min) + "," + std::to_string(max) + "}";
}

// `item` repeated between min and max times with `sep` between the repetitions.
std::string repeat_separated(const std::string& item, uint64_t min, uint64_t max, const std::string& sep) {
  if (max == 0) return "";
  const std::string rest = repeat("(" + sep + " " + item + ")", min == 0 ? 0 : min - 1, max == kInf ? kInf : max - 1);
  std::string out = item + (rest.empty() ? "" : " " + rest);
  return min == 0 ? "(" + out + ")?" : out;
}

// ----- integer ranges -------------------------------------------------------------------------

// Decimal strings of exactly x.size() digits between x and y (same length, x <= y).
std::string digits_between(const std::string& x, const std::string& y) {
  if (x.empty()) return "";
  if (x == y) return literal(x);
  size_t i = 0;
  while (x[i] == y[i]) ++i;
  const std::string xs = x.substr(i), ys = y.substr(i);
  const size_t n = xs.size() - 1;  // digits after the first differing one
  const bool low_full = std::all_of(xs.begin() + 1, xs.end(), [](char c) { return c == '0'; });
  const bool high_full = std::all_of(ys.begin() + 1, ys.end(), [](char c) { return c == '9'; });
  const std::string any = n == 0 ? "" : n == 1 ? " [0-9]" : " [0-9]{" + std::to_string(n) + "}";
  std::vector<std::string> alts;
  if (!low_full)
    alts.push_back("[" + xs.substr(0, 1) + "] (" + digits_between(xs.substr(1), std::string(n, '9')) + ")");
  const char mid_lo = low_full ? xs[0] : static_cast<char>(xs[0] + 1);
  const char mid_hi = high_full ? ys[0] : static_cast<char>(ys[0] - 1);
  if (mid_lo <= mid_hi) {
    alts.push_back((mid_lo == mid_hi ? "[" + std::string(1, mid_lo) + "]"
                                     : "[" + std::string(1, mid_lo) + "-" + std::string(1, mid_hi) + "]") +
                   any);
  }
  if (!high_full)
    alts.push_back("[" + ys.substr(0, 1) + "] (" + digits_between(std::string(n, '0'), ys.substr(1)) + ")");
  std::string out = i > 0 ? literal(x.substr(0, i)) + " " : "";
  if (alts.size() == 1 && i == 0) return alts[0];
  out += "(";
  for (size_t k = 0; k < alts.size(); ++k) out += (k ? " | " : "") + alts[k];
  return out + ")";
}

// Non-negative integers in [lo, hi] without leading zeros (hi = kInf: no upper bound, then at
// most 16 digits as llama.cpp's integral-part).
std::string natural_range(uint64_t lo, uint64_t hi) {
  const std::string los = std::to_string(lo);
  const size_t dl = los.size();
  const size_t dh = hi == kInf ? dl : std::to_string(hi).size();
  std::vector<std::string> alts;
  uint64_t pow = 1;
  for (size_t d = 1; d < dl; ++d) pow *= 10;  // 10^(dl-1)
  for (size_t d = dl; d <= dh; ++d) {
    const uint64_t a = d == dl ? lo : pow;
    const uint64_t top = d >= 20 ? kInf : pow * 10 - 1;  // largest d-digit number
    const uint64_t b = (hi != kInf && d == dh) ? hi : top;
    alts.push_back(digits_between(std::to_string(a), std::to_string(b)));
    if (d < 20) pow *= 10;
  }
  if (hi == kInf && dl < 16) alts.push_back("[1-9] [0-9]{" + std::to_string(dl) + ",15}");
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t k = 0; k < alts.size(); ++k) out += (k ? " | " : "") + alts[k];
  return out + ")";
}

uint64_t magnitude(int64_t v) { return v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v); }

// JSON integers in [min, max]; either bound may be absent.
std::string integer_range(std::optional<int64_t> min, std::optional<int64_t> max) {
  if (min && max) {
    if (*min >= 0) return natural_range(static_cast<uint64_t>(*min), static_cast<uint64_t>(*max));
    if (*max < 0) return "\"-\" " + natural_range(magnitude(*max), magnitude(*min));
    return "\"-\" " + natural_range(1, magnitude(*min)) + " | " + natural_range(0, static_cast<uint64_t>(*max));
  }
  if (min) {
    if (*min >= 0) return natural_range(static_cast<uint64_t>(*min), kInf);
    return "\"-\" " + natural_range(1, magnitude(*min)) + " | " + natural_range(0, kInf);
  }
  if (*max >= 0) return "\"-\" " + natural_range(1, kInf) + " | " + natural_range(0, static_cast<uint64_t>(*max));
  return "\"-\" " + natural_range(magnitude(*max), kInf);
}

// ----- primitive rules ------------------------------------------------------------------------

struct Primitive {
  const char* body;
  std::vector<const char*> deps;
};

// The rule bodies of llama.cpp's PRIMITIVE_RULES and STRING_FORMAT_RULES, with a stricter
// `char` (surrogate escapes in pairs, `\/` allowed) split into `char` and `char-escape`, and
// exponents of at most two digits (every number fits a double; llama.cpp allows 16 digits, and
// parsers reject 1e2532).
const std::map<std::string, Primitive>& primitives() {
  static const std::map<std::string, Primitive> p = {
      {"space", {R"(| " " | "\n"{1,2} [ \t]{0,20})", {}}},
      {"boolean", {R"(("true" | "false") space)", {"space"}}},
      {"null", {R"("null" space)", {"space"}}},
      {"integral-part", {R"([0] | [1-9] [0-9]{0,15})", {}}},
      {"decimal-part", {R"([0-9]{1,16})", {}}},
      {"number",
       {R"(("-"? integral-part) ("." decimal-part)? ([eE] [-+]? [0-9]{1,2})? space)",
        {"integral-part", "decimal-part", "space"}}},
      {"integer", {R"(("-"? integral-part) space)", {"integral-part", "space"}}},
      {"char-escape",
       {R"(["\\/bfnrt] | "u" ([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} | )"
        R"([dD] [89abAB] [0-9a-fA-F]{2} "\\u" [dD] [c-fC-F] [0-9a-fA-F]{2}))",
        {}}},
      {"char", {R"([^"\\\x7F\x00-\x1F] | [\\] char-escape)", {"char-escape"}}},
      {"string", {R"("\"" char* "\"" space)", {"char", "space"}}},
      {"value",
       {"object | array | string | number | boolean | null",
        {"object", "array", "string", "number", "boolean", "null"}}},
      {"object",
       {R"("{" space ( string ":" space value ("," space string ":" space value)* )? "}" space)",
        {"string", "value", "space"}}},
      {"array", {R"("[" space ( value ("," space value)* )? "]" space)", {"value", "space"}}},
      {"uuid",
       {R"("\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} )"
           R"("\"" space)",
        {"space"}}},
      {"date", {R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ))", {}}},
      {"time",
       {R"(([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? )"
        R"(( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))",
        {}}},
      {"date-time", {R"(date "T" time)", {"date", "time"}}},
      {"date-string", {R"("\"" date "\"" space)", {"date", "space"}}},
      {"time-string", {R"("\"" time "\"" space)", {"time", "space"}}},
      {"date-time-string", {R"("\"" date-time "\"" space)", {"date-time", "space"}}},
  };
  return p;
}

// ----- keywords -------------------------------------------------------------------------------

const std::set<std::string>& rejected_keywords() {
  static const std::set<std::string> k = {"not",
                                          "if",
                                          "then",
                                          "else",
                                          "dependentSchemas",
                                          "dependentRequired",
                                          "dependencies",
                                          "uniqueItems",
                                          "contains",
                                          "minContains",
                                          "maxContains",
                                          "patternProperties",
                                          "propertyNames",
                                          "minProperties",
                                          "maxProperties",
                                          "multipleOf",
                                          "unevaluatedProperties",
                                          "unevaluatedItems",
                                          "additionalItems",
                                          "$anchor",
                                          "$dynamicRef",
                                          "$dynamicAnchor",
                                          "$recursiveRef",
                                          "$recursiveAnchor"};
  return k;
}

// Keywords that constrain a value (the others are annotations or unknown, and ignored).
const std::set<std::string>& validation_keywords() {
  static const std::set<std::string> k = {
      "type",    "enum",        "const",    "properties", "required",         "additionalProperties",
      "items",   "prefixItems", "minItems", "maxItems",   "minLength",        "maxLength",
      "pattern", "format",      "minimum",  "maximum",    "exclusiveMinimum", "exclusiveMaximum",
      "anyOf",   "oneOf",       "allOf",    "$ref"};
  return k;
}

const std::set<std::string> kObjectKeys = {"properties", "required", "additionalProperties"};
const std::set<std::string> kArrayKeys = {"items", "prefixItems", "minItems", "maxItems"};
const std::set<std::string> kStringKeys = {"minLength", "maxLength", "pattern", "format"};
const std::set<std::string> kNumberKeys = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};

// ----- regular expressions (JSON Schema `pattern`, ECMA-262 syntax) -------------------------

class PatternConverter {
 public:
  PatternConverter(const std::string& pattern, std::string where) : where_(std::move(where)) {
    size_t i = 0;
    while (i < pattern.size()) {
      const auto b0 = static_cast<uint8_t>(pattern[i]);
      const int len = b0 < 0x80 ? 1 : b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 0;
      if (len == 0 || i + static_cast<size_t>(len) > pattern.size()) fail("invalid UTF-8");
      uint32_t cp = len == 1 ? b0 : b0 & (0x7F >> len);
      for (int k = 1; k < len; ++k) cp = cp << 6 | (static_cast<uint8_t>(pattern[i + static_cast<size_t>(k)]) & 0x3F);
      cps_.push_back(cp);
      i += static_cast<size_t>(len);
    }
  }

  // The expression for the string's content (between the quotes), with `char` for "anything".
  std::string convert() {
    size_t end = cps_.size();
    bool anchored_start = false, anchored_end = false;
    if (!cps_.empty() && cps_[0] == '^') {
      anchored_start = true;
      i_ = 1;
    }
    if (end > i_ && cps_[end - 1] == '$') {
      size_t backslashes = 0;
      while (end - 1 - backslashes > i_ && cps_[end - 2 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) {
        anchored_end = true;
        --end;
      }
    }
    end_ = end;
    const std::string body = alternation();
    if (i_ < end_) fail("unbalanced parentheses: ')' without '('");
    return (anchored_start ? "" : "char* ") + std::string("(") + body + ")" + (anchored_end ? "" : " char*");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(where_ + ": pattern: " + what); }
  bool more() const { return i_ < end_; }
  uint32_t peek() const { return more() ? cps_[i_] : 0; }

  std::string alternation() {
    std::vector<std::string> alts{sequence()};
    while (more() && peek() == '|') {
      ++i_;
      alts.push_back(sequence());
    }
    std::string out;
    for (size_t k = 0; k < alts.size(); ++k) out += (k ? " | " : "") + alts[k];
    return out;
  }

  std::string sequence() {
    std::vector<std::string> items;
    while (more() && peek() != '|' && peek() != ')') {
      std::string atom = this->atom();
      items.push_back(quantified(std::move(atom)));
    }
    if (items.empty()) return "\"\"";
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) out += (k ? " " : "") + items[k];
    return out;
  }

  uint64_t number() {
    const size_t start = i_;
    uint64_t v = 0;
    while (more() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > 10000) fail("repetition count above 10000");
      ++i_;
    }
    if (i_ == start) fail("expected a number in {}");
    return v;
  }

  std::string quantified(std::string atom) {
    if (!more()) return atom;
    uint64_t min = 1, max = 1;
    const uint32_t c = peek();
    if (c == '*') {
      min = 0, max = kInf, ++i_;
    } else if (c == '+') {
      min = 1, max = kInf, ++i_;
    } else if (c == '?') {
      min = 0, max = 1, ++i_;
    } else if (c == '{') {
      ++i_;
      min = number();
      max = min;
      if (peek() == ',') {
        ++i_;
        max = peek() == '}' ? kInf : number();
      }
      if (peek() != '}') fail("expected '}' after the repetition count");
      ++i_;
      if (max < min) fail("repetition {" + std::to_string(min) + "," + std::to_string(max) + "} has max < min");
    } else {
      return atom;
    }
    if (more() && peek() == '?') ++i_;  // lazy: same language
    if (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) fail("nothing to repeat");
    if (max == 0) return "\"\"";
    return repeat(atom, min, max);
  }

  std::string atom() {
    const uint32_t c = peek();
    ++i_;
    switch (c) {
      case '(': {
        if (++depth_ > 200) fail("groups nested deeper than 200");
        if (peek() == '?') {
          ++i_;
          const uint32_t k = peek();
          if (k == ':') {
            ++i_;
          } else if (k == '<' && i_ + 1 < end_ && cps_[i_ + 1] != '=' && cps_[i_ + 1] != '!') {
            while (more() && peek() != '>') ++i_;  // named group
            ++i_;
          } else {
            fail("lookahead and lookbehind are not supported");
          }
        }
        const std::string inner = alternation();
        if (!more() || peek() != ')') fail("unbalanced parentheses: '(' is never closed");
        ++i_;
        --depth_;
        return "(" + inner + ")";
      }
      case '[':
        return json_class(char_class());
      case '.':
        return json_class(complement(normalize({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}})));
      case '\\': {
        Ranges set;
        const uint32_t cp = escape(false, set);
        return set.empty() ? json_char(cp) : json_class(set);
      }
      case '^':
      case '$':
        fail("anchors are supported only at the start and end of the pattern");
      case '*':
      case '+':
      case '?':
      case '{':
        fail("nothing to repeat before '" + utf8(c) + "'");
      case ')':
        fail("unbalanced parentheses: ')' without '('");
      default:
        return json_char(c);
    }
  }

  static Ranges digit() { return {{'0', '9'}}; }
  static Ranges word() { return normalize({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}); }
  static Ranges space() {
    return normalize({{'\t', '\r'},
                      {' ', ' '},
                      {0xA0, 0xA0},
                      {0x1680, 0x1680},
                      {0x2000, 0x200A},
                      {0x2028, 0x2029},
                      {0x202F, 0x202F},
                      {0x205F, 0x205F},
                      {0x3000, 0x3000},
                      {0xFEFF, 0xFEFF}});
  }

  uint32_t hex_digits(int n) {
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      const uint32_t c = peek();
      int h = -1;
      if (c >= '0' && c <= '9') h = static_cast<int>(c - '0');
      if (c >= 'a' && c <= 'f') h = static_cast<int>(c - 'a' + 10);
      if (c >= 'A' && c <= 'F') h = static_cast<int>(c - 'A' + 10);
      if (h < 0 || !more()) fail("bad hex escape");
      v = v << 4 | static_cast<uint32_t>(h);
      ++i_;
    }
    return v;
  }

  // After a '\': a single code point (returned) or a class escape (filled into `set`).
  uint32_t escape(bool in_class, Ranges& set) {
    if (!more()) fail("pattern ends with '\\'");
    const uint32_t c = peek();
    ++i_;
    switch (c) {
      case 'd':
        set = digit();
        return 0;
      case 'D':
        set = complement(digit());
        return 0;
      case 'w':
        set = word();
        return 0;
      case 'W':
        set = complement(word());
        return 0;
      case 's':
        set = space();
        return 0;
      case 'S':
        set = complement(space());
        return 0;
      case 't':
        return '\t';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 'f':
        return '\f';
      case 'v':
        return '\v';
      case '0':
        return 0;
      case 'x':
        return hex_digits(2);
      case 'u': {
        if (peek() == '{') {
          ++i_;
          uint32_t v = 0;
          while (more() && peek() != '}') {
            v = v << 4 | hex_digits(1);
            if (v > kMaxCp) fail("\\u{...} beyond U+10FFFF");
          }
          if (!more()) fail("\\u{ is never closed");
          ++i_;
          return v;
        }
        return hex_digits(4);
      }
      case 'c': {
        const uint32_t l = peek();
        if (!((l >= 'a' && l <= 'z') || (l >= 'A' && l <= 'Z'))) fail("bad control escape \\c");
        ++i_;
        return l % 32;
      }
      case 'b':
        if (in_class) return '\b';
        fail("word boundaries (\\b) are not supported");
      case 'B':
        fail("word boundaries (\\B) are not supported");
      case 'k':
        fail("named backreferences are not supported");
      case 'p':
      case 'P':
        fail("Unicode property escapes (\\p) are not supported");
      default:
        if (c >= '1' && c <= '9') fail("backreferences are not supported");
        return c;
    }
  }

  Ranges char_class() {
    bool negated = false;
    if (peek() == '^') {
      negated = true;
      ++i_;
    }
    Ranges r;
    bool first = true;
    while (true) {
      if (!more()) fail("character class '[' is never closed");
      if (peek() == ']' && !first) break;
      if (peek() == ']') fail("empty character class []");
      first = false;
      Ranges set;
      uint32_t lo = peek();
      ++i_;
      if (lo == '\\') lo = escape(true, set);
      if (!set.empty()) {
        r.insert(r.end(), set.begin(), set.end());
        continue;
      }
      if (peek() == '-' && i_ + 1 < end_ && cps_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi = peek();
        ++i_;
        if (hi == '\\') {
          Ranges hs;
          hi = escape(true, hs);
          if (!hs.empty()) fail("a class escape cannot end a range");
        }
        if (hi < lo) fail("reversed range in a character class");
        r.emplace_back(lo, hi);
      } else {
        r.emplace_back(lo, lo);
      }
    }
    ++i_;
    r = normalize(r);
    if (negated) r = complement(r);
    if (r.empty()) fail("character class matches nothing");
    return r;
  }

  std::vector<uint32_t> cps_;
  size_t i_ = 0, end_ = 0;
  int depth_ = 0;
  std::string where_;
};

// ----- the converter --------------------------------------------------------------------------

std::string sanitize(const std::string& name) {
  std::string out;
  bool run = false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (ok) {
      out += c;
      run = false;
    } else if (!run) {
      out += '-';
      run = true;
    }
  }
  return out;
}

std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

const char* const kPlaceholder = "\x01";

class SchemaConverter {
 public:
  explicit SchemaConverter(const ojson& root) : root_(root) {}

  std::string run() {
    const std::string top = visit(root_, "", "");
    if (top != "root") rules_["root"] = top;
    std::string out;
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out;
  }

 private:
  [[noreturn]] static void fail(const std::string& ptr, const std::string& what) {
    throw Error("json schema: at #" + ptr + ": " + what);
  }

  static bool reserved(const std::string& name) { return name == "root" || primitives().count(name) != 0; }

  std::string add_rule(const std::string& name, const std::string& body) {
    const std::string esc = sanitize(name);
    const auto it = rules_.find(esc);
    if (it == rules_.end() || it->second == body || it->second == kPlaceholder) {
      rules_[esc] = body;
      return esc;
    }
    for (int i = 0;; ++i) {
      const std::string key = esc + std::to_string(i);
      const auto jt = rules_.find(key);
      if (jt == rules_.end() || jt->second == body) {
        rules_[key] = body;
        return key;
      }
    }
  }

  std::string add_primitive(const std::string& name) {
    const Primitive& p = primitives().at(name);
    if (!rules_.count(name)) {
      rules_[name] = p.body;
      for (const char* dep : p.deps) add_primitive(dep);
    }
    return name;
  }

  static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "-" + b; }

  static uint64_t count(const ojson& s, const char* key, const std::string& ptr) {
    const ojson& v = s.at(key);
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) return v.get<uint64_t>();
    if (v.is_number_float() && v.get<double>() >= 0 && std::floor(v.get<double>()) == v.get<double>() &&
        v.get<double>() < 1e18) {
      return static_cast<uint64_t>(v.get<double>());
    }
    fail(ptr, std::string("'") + key + "' must be a non-negative integer, got " + v.dump());
  }

  void check_keywords(const ojson& s, const std::string& ptr) const {
    for (const auto& [key, value] : s.items()) {
      if (rejected_keywords().count(key)) fail(ptr, "keyword '" + key + "' is not supported");
    }
  }

  // Validation keywords of `s` other than those in `allowed`.
  static std::optional<std::string> other_keyword(const ojson& s, const std::set<std::string>& allowed) {
    for (const auto& [key, value] : s.items()) {
      if (validation_keywords().count(key) && !allowed.count(key)) return key;
    }
    return std::nullopt;
  }

  std::string visit(const ojson& s, const std::string& name, const std::string& ptr) {
    struct Depth {
      int& d;
      explicit Depth(int& x) : d(x) { ++d; }
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxDepth) fail(ptr, "schemas nested deeper than " + std::to_string(kMaxDepth) + " levels");
    const std::string rule_name = name.empty() ? "root" : reserved(name) ? name + "-" : name;
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail(ptr, "the schema false accepts nothing");
      return add_rule(rule_name, add_primitive("value"));
    }
    if (!s.is_object()) fail(ptr, "a schema must be an object or a boolean, got " + s.dump());
    check_keywords(s, ptr);

    if (s.contains("$ref")) {
      if (auto k = other_keyword(s, {"$ref"})) fail(ptr, "keyword '" + *k + "' next to $ref is not supported");
      if (!s["$ref"].is_string()) fail(ptr, "'$ref' must be a string");
      return add_rule(rule_name, resolve_ref(s["$ref"].get<std::string>(), ptr));
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      if (auto k = other_keyword(s, {key})) {
        fail(ptr, "keyword '" + *k + "' next to '" + key + "' is not supported (move it into the alternatives)");
      }
      const ojson& alts = s[key];
      if (!alts.is_array() || alts.empty()) fail(ptr, std::string("'") + key + "' must be a non-empty array");
      std::string body;
      for (size_t i = 0; i < alts.size(); ++i) {
        const std::string alt_name = name.empty() ? "alternative-" + std::to_string(i) : name + "-" + std::to_string(i);
        body += (i ? " | " : "") + visit(alts[i], alt_name, ptr + "/" + key + "/" + std::to_string(i));
      }
      return add_rule(rule_name, body);
    }
    if (s.contains("allOf")) return visit(merge_all_of(s, ptr), name, ptr);

    std::string type;
    if (s.contains("type")) {
      const ojson& t = s["type"];
      if (t.is_array()) {
        if (t.empty()) fail(ptr, "'type' must not be an empty list");
        if (t.size() > 1) {
          std::string body;
          for (size_t i = 0; i < t.size(); ++i) {
            ojson copy = s;
            copy["type"] = t[i];
            const std::string alt_name =
                name.empty() ? "alternative-" + std::to_string(i) : name + "-" + std::to_string(i);
            body += (i ? " | " : "") + visit(copy, alt_name, ptr);
          }
          return add_rule(rule_name, body);
        }
        if (!t[0].is_string()) fail(ptr, "'type' must name types, got " + t.dump());
        type = t[0].get<std::string>();
      } else if (t.is_string()) {
        type = t.get<std::string>();
      } else {
        fail(ptr, "'type' must be a string or a list of strings, got " + t.dump());
      }
      static const std::set<std::string> known = {"object", "array", "string", "number", "integer", "boolean", "null"};
      if (!known.count(type)) fail(ptr, "unknown type '" + type + "'");
    }

    if (s.contains("const")) return add_rule(rule_name, literal(s["const"].dump()) + " space");
    if (s.contains("enum")) {
      const ojson& e = s["enum"];
      if (!e.is_array() || e.empty()) fail(ptr, "'enum' must be a non-empty array");
      std::string body = "(";
      for (size_t i = 0; i < e.size(); ++i) body += (i ? " | " : "") + literal(e[i].dump());
      add_primitive("space");
      return add_rule(rule_name, body + ") space");
    }

    if (type.empty()) {
      std::vector<std::string> kinds;
      auto has_any = [&](const std::set<std::string>& keys) {
        return std::any_of(keys.begin(), keys.end(), [&](const std::string& k) { return s.contains(k); });
      };
      if (has_any(kObjectKeys)) kinds.push_back("object");
      if (has_any(kArrayKeys)) kinds.push_back("array");
      if (has_any(kStringKeys)) kinds.push_back("string");
      if (has_any(kNumberKeys)) kinds.push_back("number");
      if (kinds.empty()) return add_rule(rule_name, add_primitive("value"));
      if (kinds.size() > 1) fail(ptr, "keywords of both " + kinds[0] + " and " + kinds[1] + " without 'type'");
      type = kinds[0];
    }

    if (type == "object") return visit_object(s, name, rule_name, ptr);
    if (type == "array") return visit_array(s, name, rule_name, ptr);
    if (type == "string") return visit_string(s, rule_name, ptr);
    if (type == "integer" || type == "number") return visit_number(s, type == "integer", rule_name, ptr);
    return add_rule(rule_name, add_primitive(type));  // boolean, null
  }

  // The schema a local reference "#/a/b" points to (JSON pointer, RFC 6901).
  const ojson& target_of(const std::string& ref, const std::string& ptr) const {
    if (ref.empty() || ref[0] != '#') fail(ptr, "$ref '" + ref + "': only local references (#...) are supported");
    const std::string fragment = ref.substr(1);
    const ojson* target = &root_;
    if (fragment.empty()) return *target;
    if (fragment[0] != '/') fail(ptr, "$ref '" + ref + "': anchors are not supported, use a JSON pointer");
    size_t i = 1;
    while (i <= fragment.size()) {
      size_t j = fragment.find('/', i);
      if (j == std::string::npos) j = fragment.size();
      std::string token;
      for (size_t k = i; k < j; ++k) {
        if (fragment[k] == '~' && k + 1 < j && (fragment[k + 1] == '0' || fragment[k + 1] == '1')) {
          token += fragment[k + 1] == '0' ? '~' : '/';
          ++k;
        } else {
          token += fragment[k];
        }
      }
      const bool index = !token.empty() && token.size() < 10 &&
                         std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (target->is_object() && target->contains(token)) {
        target = &(*target)[token];
      } else if (target->is_array() && index && std::stoull(token) < target->size()) {
        target = &(*target)[std::stoull(token)];
      } else {
        fail(ptr, "$ref '" + ref + "' points to nothing ('" + token + "' not found)");
      }
      i = j + 1;
    }
    return *target;
  }

  std::string resolve_ref(const std::string& ref, const std::string& ptr) {
    const auto known = ref_rules_.find(ref);
    if (known != ref_rules_.end()) return known->second;
    const ojson& target = target_of(ref, ptr);
    const std::string fragment = ref.substr(1);
    std::string name = sanitize("ref" + fragment);
    if (rules_.count(name)) {
      int k = 0;
      while (rules_.count(name + std::to_string(k))) ++k;
      name += std::to_string(k);
    }
    rules_[name] = kPlaceholder;  // reserved: recursive references find it
    ref_rules_[ref] = name;
    const std::string got = visit(target, name, fragment);
    if (got != name) rules_[name] = got;
    return name;
  }

  // allOf of object schemas: one object schema with the properties and required names of all.
  ojson merge_all_of(const ojson& s, const std::string& ptr) {
    const ojson& all = s["allOf"];
    if (!all.is_array() || all.empty()) fail(ptr, "'allOf' must be a non-empty array");
    ojson merged = ojson::object();
    ojson props = ojson::object();
    ojson required = ojson::array();
    auto absorb = [&](const ojson& part, const std::string& where) {
      const ojson* p = &part;
      std::set<std::string> seen;
      while (p->is_object() && p->contains("$ref")) {
        const std::string ref = (*p)["$ref"].is_string() ? (*p)["$ref"].get<std::string>() : "";
        if (!seen.insert(ref).second) fail(where, "allOf: cyclic $ref");
        p = &target_of(ref, where);
      }
      if (!p->is_object()) fail(where, "allOf is supported for object schemas only");
      for (const auto& [key, value] : p->items()) {
        if (key == "properties") {
          if (!value.is_object()) fail(where, "'properties' must be an object");
          for (const auto& [k, v] : value.items()) props[k] = v;
        } else if (key == "required") {
          if (!value.is_array()) fail(where, "'required' must be an array");
          for (const auto& r : value) required.push_back(r);
        } else if (key == "type") {
          if (value != "object") fail(where, "allOf is supported for object schemas only");
        } else if (key == "additionalProperties" || key == "allOf") {
          if (key == "allOf" && &part != &s) fail(where, "nested allOf is not supported");
          if (key == "additionalProperties") merged[key] = value;
        } else if (validation_keywords().count(key)) {
          fail(where, "keyword '" + key + "' inside allOf is not supported (objects only)");
        }
      }
    };
    absorb(s, ptr);
    for (size_t i = 0; i < all.size(); ++i) absorb(all[i], ptr + "/allOf/" + std::to_string(i));
    merged["type"] = "object";
    merged["properties"] = props;
    if (!required.empty()) merged["required"] = required;
    return merged;
  }

  // A JSON string (with quotes) that is none of `names`: a trie of the names, where each
  // branch either follows a name or leaves it (llama.cpp's _not_strings construction).
  std::string not_strings(const std::vector<std::string>& names) {
    struct Node {
      std::map<uint32_t, Node> children;
      bool end = false;
    };
    Node trie;
    for (const std::string& n : names) {
      if (n.find('\\') != std::string::npos || n.find('"') != std::string::npos) continue;
      Node* node = &trie;
      for (size_t i = 0; i < n.size();) {
        const auto b0 = static_cast<uint8_t>(n[i]);
        const int len = b0 < 0x80 ? 1 : b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
        uint32_t cp = len == 1 ? b0 : b0 & (0x7F >> len);
        for (int k = 1; k < len && i + static_cast<size_t>(k) < n.size(); ++k) {
          cp = cp << 6 | (static_cast<uint8_t>(n[i + static_cast<size_t>(k)]) & 0x3F);
        }
        node = &node->children[cp];
        i += static_cast<size_t>(len);
      }
      node->end = true;
    }
    add_primitive("char");
    std::function<std::string(const Node&)> rest = [&](const Node& node) -> std::string {
      // Strings s such that (the path to node) + s is not a name.
      std::vector<std::string> alts;
      Ranges taken;
      for (const auto& [cp, child] : node.children) {
        alts.push_back(class_text({{cp, cp}}) + " " + rest(child));
        taken.emplace_back(cp, cp);
      }
      const Ranges others = intersect(raw_json_chars(), complement(normalize(taken)));
      std::string leave =
          "(" + (others.empty() ? std::string() : class_text(others) + " | ") + "[\\\\] char-escape) char*";
      if (node.children.empty()) leave = "char+";
      alts.push_back(leave);
      std::string out = "(";
      for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
      return out + ")" + (node.end ? "" : "?");
    };
    add_primitive("space");
    return "\"\\\"\" " + rest(trie) + " \"\\\"\" space";
  }

  std::string visit_object(const ojson& s, const std::string& name, const std::string& rule_name,
                           const std::string& ptr) {
    std::vector<std::pair<std::string, ojson>> props;
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) fail(ptr, "'properties' must be an object");
      for (const auto& [k, v] : s["properties"].items()) props.emplace_back(k, v);
    }
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail(ptr, "'required' must be an array of strings");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) fail(ptr, "'required' must be an array of strings");
        const std::string k = r.get<std::string>();
        required.insert(k);
        const bool listed = std::any_of(props.begin(), props.end(), [&](const auto& p) { return p.first == k; });
        if (!listed) props.emplace_back(k, ojson::object());
      }
    }
    ojson additional = s.contains("properties") ? ojson(false) : ojson(true);
    if (s.contains("additionalProperties")) additional = s["additionalProperties"];
    if (!additional.is_boolean() && !additional.is_object()) {
      fail(ptr, "'additionalProperties' must be a boolean or a schema");
    }
    const bool any_extra = additional.is_object() || additional.get<bool>();  // object: is_object() first
    if (props.empty() && additional == ojson(true)) return add_rule(rule_name, add_primitive("object"));

    add_primitive("space");
    std::vector<std::string> kvs, keys, names;
    std::vector<bool> is_required;
    for (const auto& [k, v] : props) {
      const std::string value = visit(v, join(name, k), ptr + "/properties/" + pointer_token(k));
      kvs.push_back(add_rule(join(name, k) + "-kv", literal(ojson(k).dump()) + " space \":\" space " + value));
      keys.push_back(k);
      is_required.push_back(required.count(k) != 0);
      names.push_back(k);
    }
    bool extra = false;
    if (any_extra) {
      const std::string sub = join(name, "additional");
      const std::string value = additional.is_object()
                                    ? visit(additional, sub + "-value", ptr + "/additionalProperties")
                                    : add_primitive("value");
      const std::string key = names.empty() ? add_primitive("string") : add_rule(sub + "-k", not_strings(names));
      kvs.push_back(add_rule(sub + "-kv", key + " \":\" space " + value));
      keys.push_back("additional");
      is_required.push_back(false);
      extra = true;
    }

    // Properties in schema order. Before the first required one, each optional property is
    // followed by its comma; after it, each is preceded by one. Without required properties,
    // one alternative per first property present, then a chain of the later ones.
    std::string body = "\"{\" space";
    const size_t n = kvs.size();
    size_t first_req = n;
    for (size_t i = 0; i < n; ++i) {
      if (is_required[i]) {
        first_req = i;
        break;
      }
    }
    if (first_req < n) {
      for (size_t i = 0; i < first_req; ++i) body += " ( " + kvs[i] + " \",\" space )?";
      body += " " + kvs[first_req];
      for (size_t i = first_req + 1; i < n; ++i) {
        if (is_required[i]) {
          body += " \",\" space " + kvs[i];
        } else {
          body += " ( \",\" space " + kvs[i] + " )" + (extra && i == n - 1 ? "*" : "?");
        }
      }
    } else if (n > 0) {
      std::vector<std::string> rest(n + 1);  // rest[i]: the optional tail from property i on
      for (size_t i = n; i-- > 1;) {
        std::string b = "( \",\" space " + kvs[i] + " )" + (extra && i == n - 1 ? "*" : "?");
        if (!rest[i + 1].empty()) b += " " + rest[i + 1];
        rest[i] = add_rule(join(name, keys[i]) + "-rest", b);
      }
      std::string alts;
      for (size_t i = 0; i < n; ++i) {
        std::string a = kvs[i];
        if (extra && i == n - 1) a += " ( \",\" space " + kvs[i] + " )*";
        if (!rest[i + 1].empty()) a += " " + rest[i + 1];
        alts += (i ? " | " : "") + a;
      }
      body += " ( " + alts + " )?";
    }
    return add_rule(rule_name, body + " \"}\" space");
  }

  std::string visit_array(const ojson& s, const std::string& name, const std::string& rule_name,
                          const std::string& ptr) {
    add_primitive("space");
    const uint64_t min = s.contains("minItems") ? count(s, "minItems", ptr) : 0;
    const uint64_t max = s.contains("maxItems") ? count(s, "maxItems", ptr) : kInf;
    if (max < min) fail(ptr, "maxItems is below minItems");
    const ojson* tuple = nullptr;
    const ojson* extra = nullptr;
    if (s.contains("prefixItems")) {
      tuple = &s["prefixItems"];
      if (s.contains("items")) extra = &s["items"];
    } else if (s.contains("items") && s["items"].is_array()) {
      tuple = &s["items"];
    }
    if (tuple) {
      if (!tuple->is_array()) fail(ptr, "'prefixItems' must be an array of schemas");
      const uint64_t n = tuple->size();
      std::string body = "\"[\" space";
      for (size_t i = 0; i < tuple->size(); ++i) {
        body += (i ? " \",\" space " : " ") +
                visit((*tuple)[i], join(name, "tuple-" + std::to_string(i)),
                      ptr + (s.contains("prefixItems") ? "/prefixItems/" : "/items/") + std::to_string(i));
      }
      const bool more = extra && !(extra->is_boolean() && !extra->get<bool>());
      if (more) {
        if (max != kInf && max < n) fail(ptr, "maxItems is below the number of prefixItems");
        const std::string item = visit(*extra, join(name, "item"), ptr + "/items");
        const std::string r =
            repeat("( \",\" space " + item + " )", min > n ? min - n : 0, max == kInf ? kInf : max - n);
        if (n == 0) {
          body += " " + repeat_separated(item, min, max, "\",\" space");
        } else if (!r.empty()) {
          body += " " + r;
        }
      } else if (min > n || (max != kInf && max < n)) {
        fail(ptr, "minItems/maxItems contradict the " + std::to_string(n) + " prefixItems");
      }
      return add_rule(rule_name, body + " \"]\" space");
    }
    if (!s.contains("items") && !s.contains("minItems") && !s.contains("maxItems")) {
      return add_rule(rule_name, add_primitive("array"));
    }
    std::string item;
    uint64_t max_items = max;
    if (s.contains("items") && s["items"].is_boolean() && !s["items"].get<bool>()) {
      max_items = 0;
      if (min > 0) fail(ptr, "items: false with minItems > 0 accepts nothing");
    } else {
      item = s.contains("items") ? visit(s["items"], join(name, "item"), ptr + "/items") : add_primitive("value");
    }
    const std::string rep = repeat_separated(item, min, max_items, "\",\" space");
    return add_rule(rule_name, "\"[\" space " + (rep.empty() ? "" : rep + " ") + "\"]\" space");
  }

  std::string visit_string(const ojson& s, const std::string& rule_name, const std::string& ptr) {
    add_primitive("space");
    const bool lengths = s.contains("minLength") || s.contains("maxLength");
    if (s.contains("pattern")) {
      if (lengths) fail(ptr, "'pattern' together with 'minLength'/'maxLength' is not supported");
      if (!s["pattern"].is_string()) fail(ptr, "'pattern' must be a string");
      add_primitive("char");
      const std::string expr = PatternConverter(s["pattern"].get<std::string>(), "json schema: at #" + ptr).convert();
      return add_rule(rule_name, "\"\\\"\" " + expr + " \"\\\"\" space");
    }
    if (s.contains("format")) {
      if (!s["format"].is_string()) fail(ptr, "'format' must be a string");
      const std::string f = s["format"].get<std::string>();
      if (f == "date" || f == "time" || f == "date-time") {
        return add_rule(rule_name, add_primitive(f + "-string"));
      }
      if (f == "uuid") return add_rule(rule_name, add_primitive("uuid"));
    }
    if (lengths) {
      const uint64_t min = s.contains("minLength") ? count(s, "minLength", ptr) : 0;
      const uint64_t max = s.contains("maxLength") ? count(s, "maxLength", ptr) : kInf;
      if (max < min) fail(ptr, "maxLength is below minLength");
      if (min > 10000 || (max != kInf && max > 10000)) fail(ptr, "string lengths above 10000 are not supported");
      add_primitive("char");
      const std::string rep = repeat("char", min, max);
      return add_rule(rule_name, "\"\\\"\" " + (rep.empty() ? "" : rep + " ") + "\"\\\"\" space");
    }
    return add_rule(rule_name, add_primitive("string"));
  }

  // Bounds of an integer or number schema: (inclusive min, inclusive max) as doubles plus
  // whether each was exclusive.
  std::string visit_number(const ojson& s, bool integer, const std::string& rule_name, const std::string& ptr) {
    auto num = [&](const char* key) -> double {
      const ojson& v = s[key];
      if (!v.is_number()) fail(ptr, std::string("'") + key + "' must be a number, got " + v.dump());
      return v.get<double>();
    };
    std::optional<double> lo, hi;
    bool lo_excl = false, hi_excl = false;
    if (s.contains("minimum")) lo = num("minimum");
    if (s.contains("maximum")) hi = num("maximum");
    if (s.contains("exclusiveMinimum")) {
      if (s["exclusiveMinimum"].is_boolean()) {  // draft 4: a flag on minimum
        lo_excl = s["exclusiveMinimum"].get<bool>() && lo.has_value();
      } else {
        const double v = num("exclusiveMinimum");
        if (!lo || v >= *lo) lo = v, lo_excl = true;
      }
    }
    if (s.contains("exclusiveMaximum")) {
      if (s["exclusiveMaximum"].is_boolean()) {
        hi_excl = s["exclusiveMaximum"].get<bool>() && hi.has_value();
      } else {
        const double v = num("exclusiveMaximum");
        if (!hi || v <= *hi) hi = v, hi_excl = true;
      }
    }
    if (!lo && !hi) return add_rule(rule_name, add_primitive(integer ? "integer" : "number"));
    constexpr double kLimit = 9.0e18;
    auto to_int = [&](double v, const char* what) -> int64_t {
      if (!(std::fabs(v) < kLimit)) fail(ptr, std::string(what) + " out of range");
      return static_cast<int64_t>(v);
    };
    if (integer) {
      std::optional<int64_t> a, b;
      if (lo) a = to_int(lo_excl ? std::floor(*lo) + 1 : std::ceil(*lo), "minimum");
      if (hi) b = to_int(hi_excl ? std::ceil(*hi) - 1 : std::floor(*hi), "maximum");
      if (a && b && *a > *b) fail(ptr, "no integer lies between the minimum and the maximum");
      add_primitive("space");
      return add_rule(rule_name, "(" + integer_range(a, b) + ") space");
    }
    // Numbers: inclusive integer bounds only, written without exponent.
    if (lo_excl || hi_excl) fail(ptr, "exclusive bounds on type number are not supported (only on integer)");
    if ((lo && std::floor(*lo) != *lo) || (hi && std::floor(*hi) != *hi)) {
      fail(ptr, "non-integer bounds on type number are not supported");
    }
    std::optional<int64_t> a, b;
    if (lo) a = to_int(*lo, "minimum");
    if (hi) b = to_int(*hi, "maximum");
    if (a && b && *a > *b) fail(ptr, "the minimum is above the maximum");
    add_primitive("space");
    add_primitive("decimal-part");
    const std::string frac = "(\".\" decimal-part)?";
    const std::string zero_frac = "(\".\" \"0\"{1,16})?";
    // Magnitudes in [m, n] (n = kInf: unbounded), as written after an optional "-".
    auto magnitudes = [&](uint64_t m, uint64_t n) -> std::string {
      if (n == kInf) return natural_range(m, kInf) + " " + frac;
      if (m == n) return literal(std::to_string(n)) + " " + zero_frac;
      return natural_range(m, n - 1) + " " + frac + " | " + literal(std::to_string(n)) + " " + zero_frac;
    };
    std::string body;
    if (a && b) {
      if (*a >= 0) {
        body = magnitudes(static_cast<uint64_t>(*a), static_cast<uint64_t>(*b));
      } else if (*b <= 0) {
        body = "\"-\" (" + magnitudes(magnitude(*b), magnitude(*a)) + ")";
        if (*b == 0) body += " | \"0\" " + zero_frac;
      } else {
        body = "\"-\" (" + magnitudes(0, magnitude(*a)) + ") | " + magnitudes(0, static_cast<uint64_t>(*b));
      }
    } else if (a) {
      body = *a >= 0 ? magnitudes(static_cast<uint64_t>(*a), kInf)
                     : "\"-\" (" + magnitudes(0, magnitude(*a)) + ") | " + magnitudes(0, kInf);
    } else {
      body = *b >= 0 ? "\"-\" (" + magnitudes(0, kInf) + ") | " + magnitudes(0, static_cast<uint64_t>(*b))
                     : "\"-\" (" + magnitudes(magnitude(*b), kInf) + ")";
    }
    return add_rule(rule_name, "(" + body + ") space");
  }

  static constexpr int kMaxDepth = 200;
  const ojson& root_;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> ref_rules_;
  int depth_ = 0;
};

}  // namespace

std::string json_schema_to_grammar(const nlohmann::ordered_json& schema) {
  try {
    return SchemaConverter(schema).run();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // e.g. a string that is not UTF-8 in a programmatic schema
    throw Error(std::string("json schema: ") + e.what());
  }
}

std::string json_schema_to_grammar(const nlohmann::json& schema) {
  return json_schema_to_grammar(nlohmann::ordered_json::parse(schema.dump()));
}

std::string json_schema_rules(const nlohmann::ordered_json& schema, std::string_view prefix,
                              std::map<std::string, std::string>& rules) {
  if (prefix.empty() || sanitize(std::string(prefix)) != prefix)
    throw Error("json schema: rule prefix '" + std::string(prefix) + "' is not a grammar rule name");
  const std::string gbnf = json_schema_to_grammar(schema);
  const auto rename = [&](const std::string& name) {
    if (primitives().count(name)) return name;
    return name == "root" ? std::string(prefix) : std::string(prefix) + "-" + name;
  };
  size_t line = 0;
  while (line < gbnf.size()) {
    size_t end = gbnf.find('\n', line);
    if (end == std::string::npos) end = gbnf.size();
    const std::string text = gbnf.substr(line, end - line);
    line = end + 1;
    const size_t def = text.find(" ::= ");
    if (def == std::string::npos) continue;
    // Rename the rule references of the body: words outside literals, classes and {m,n} bounds.
    const std::string body = text.substr(def + 5);
    std::string out;
    for (size_t i = 0; i < body.size();) {
      const char c = body[i];
      if (c == '"' || c == '[' || c == '{') {
        const char close = c == '"' ? '"' : c == '[' ? ']' : '}';
        size_t j = i + 1;
        while (j < body.size() && body[j] != close) j += body[j] == '\\' ? 2 : 1;
        j = std::min(j + 1, body.size());
        out.append(body, i, j - i);
        i = j;
      } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
        size_t j = i;
        while (j < body.size() && ((body[j] >= 'a' && body[j] <= 'z') || (body[j] >= 'A' && body[j] <= 'Z') ||
                                   (body[j] >= '0' && body[j] <= '9') || body[j] == '-'))
          ++j;
        out += rename(body.substr(i, j - i));
        i = j;
      } else {
        out += c;
        ++i;
      }
    }
    const std::string name = rename(text.substr(0, def));
    const auto [it, added] = rules.emplace(name, out);
    if (!added && it->second != out)
      throw Error("json schema: rule '" + name + "' is already defined with another body (prefix '" +
                  std::string(prefix) + "' used twice?)");
  }
  return std::string(prefix);
}

const std::string& json_object_grammar() {
  static const std::string g = json_schema_to_grammar(nlohmann::ordered_json{{"type", "object"}});
  return g;
}

}  // namespace hearth::sample

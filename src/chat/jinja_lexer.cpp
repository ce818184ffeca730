// The Jinja lexer: data text and tags, with jinja2's whitespace control.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "chat/jinja_ast.h"
#include "chat/pystr.h"

namespace hearth::chat {

TemplateError::TemplateError(const std::string& name, int line, int column, const std::string& message)
    : Error(line > 0 ? name + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message
                     : name + ": " + message),
      line_(line),
      column_(column),
      message_(message) {}

namespace detail {

Source::Source(std::string n, std::string_view raw) : name(std::move(n)) {
  text.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      text.push_back('\n');
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      text.push_back(raw[i]);
    }
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();  // keep_trailing_newline=False
  line_starts.push_back(0);
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') line_starts.push_back(i + 1);
}

std::pair<int, int> Source::location(size_t offset) const {
  offset = std::min(offset, text.size());
  const auto it = std::upper_bound(line_starts.begin(), line_starts.end(), offset) - 1;
  const size_t start = *it;
  const int column = static_cast<int>(py::length(std::string_view(text).substr(start, offset - start))) + 1;
  return {static_cast<int>(it - line_starts.begin()) + 1, column};
}

void Source::fail(size_t offset, const std::string& message) const {
  const auto [line, column] = location(offset);
  throw TemplateError(name, line, column, message);
}

namespace {

class Lexer {
 public:
  Lexer(const Source& src, const ParseOptions& opts) : src_(src), s_(src.text), opts_(opts) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < s_.size()) {
      const size_t start = find_tag(pos);
      if (start == std::string_view::npos) {
        emit_data(s_.substr(pos), pos);
        break;
      }
      const char kind = s_[start + 1];  // '%', '{' or '#'
      char sign = 0;
      if (start + 2 < s_.size() && (s_[start + 2] == '-' || s_[start + 2] == '+')) sign = s_[start + 2];
      size_t raw_content = std::string_view::npos;
      if (kind == '%') raw_content = match_raw_begin(start + 2 + (sign ? 1 : 0));
      emit_data(strip_text(s_.substr(pos, start - pos), sign, kind != '{', line_starting), pos);
      size_t end;
      if (kind == '#') {
        end = lex_comment(start, start + 2 + (sign ? 1 : 0));
      } else if (raw_content != std::string_view::npos) {
        line_starting = s_[raw_content - 1] == '\n';
        end = lex_raw(start, raw_content, line_starting);
      } else {
        end = lex_tag(start, kind == '%', sign ? start + 3 : start + 2);
      }
      line_starting = s_[end - 1] == '\n';
      pos = end;
    }
    Token eof;
    eof.type = Tok::Eof;
    eof.offset = s_.size();
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  const Source& src_;
  std::string_view s_;
  ParseOptions opts_;
  std::vector<Token> tokens_;

  // Earliest "{%", "{{" or "{#" at or after `pos`.
  size_t find_tag(size_t pos) const {
    for (size_t i = s_.find('{', pos); i != std::string_view::npos; i = s_.find('{', i + 1))
      if (i + 1 < s_.size() && (s_[i + 1] == '%' || s_[i + 1] == '{' || s_[i + 1] == '#')) return i;
    return std::string_view::npos;
  }

  // Length of the whitespace code point at `pos` (Python's \s), or 0.
  size_t space_at(size_t pos) const {
    uint32_t cp;
    const size_t len = py::next_cp(s_, pos, cp);
    return len != 0 && py::is_space(cp) ? len : 0;
  }

  size_t skip_space(size_t pos) const {
    for (size_t len; (len = space_at(pos)) != 0;) pos += len;
    return pos;
  }

  bool at(size_t pos, std::string_view what) const { return s_.substr(pos, what.size()) == what; }

  // Whitespace control of the text before a tag: "-" strips all trailing whitespace; otherwise
  // lstrip_blocks (for block tags and comments, not "{%+") strips the spaces and tabs that stand
  // between the start of the line and the tag.
  std::string_view strip_text(std::string_view text, char sign, bool block_like, bool line_starting) const {
    if (sign == '-') {
      size_t e = text.size();
      while (e > 0) {
        size_t b = e - 1;
        while (b > 0 && (static_cast<uint8_t>(text[b]) & 0xC0) == 0x80) --b;
        uint32_t cp;
        if (py::next_cp(text, b, cp) != e - b || !py::is_space(cp)) break;
        e = b;
      }
      return text.substr(0, e);
    }
    if (sign != '+' && block_like && opts_.lstrip_blocks) {
      const size_t nl = text.rfind('\n');
      const size_t l = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l > 0 || line_starting) && l < text.size()) {
        bool all_space = true;
        uint32_t cp;
        for (size_t p = l, len; (len = py::next_cp(text, p, cp)) != 0; p += len)
          if (!py::is_space(cp)) {
            all_space = false;
            break;
          }
        if (all_space) return text.substr(0, l);
      }
    }
    return text;
  }

  void emit_data(std::string_view text, size_t offset) {
    if (text.empty()) return;
    Token t;
    t.type = Tok::Data;
    t.text = std::string(text);
    t.offset = offset;
    tokens_.push_back(std::move(t));
  }

  void emit(Tok type, size_t offset, std::string text = {}) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.offset = offset;
    tokens_.push_back(std::move(t));
  }

  // End of the closing "%}" (or "#}") at `pos` with its trim: "+%}" keeps what follows, "-%}"
  // drops all following whitespace, "%}" drops one newline when trim_blocks is on.
  size_t block_close(size_t pos, char sign) const {
    if (sign == '-') return skip_space(pos + 2);
    if (sign == '+') return pos + 2;
    if (opts_.trim_blocks && pos + 2 < s_.size() && s_[pos + 2] == '\n') return pos + 3;
    return pos + 2;
  }

  // If `pos` (just after "{%" and its sign) starts "raw %}" / "raw -%}", the offset where the
  // raw content begins; else npos.
  size_t match_raw_begin(size_t pos) const {
    size_t p = skip_space(pos);
    if (!at(p, "raw")) return std::string_view::npos;
    p = skip_space(p + 3);
    if (at(p, "-%}")) return skip_space(p + 3);
    if (at(p, "%}")) return p + 2;
    return std::string_view::npos;
  }

  size_t lex_comment(size_t start, size_t content) {
    const size_t e = s_.find("#}", content);
    if (e == std::string_view::npos) src_.fail(start, "Missing end of comment tag");
    char sign = 0;
    if (e > content && (s_[e - 1] == '-' || s_[e - 1] == '+')) sign = s_[e - 1];
    return block_close(e, sign);
  }

  // The raw block whose content starts at `content`: its text up to {% endraw %} becomes data.
  size_t lex_raw(size_t start, size_t content, bool line_starting) {
    for (size_t i = s_.find("{%", content); i != std::string_view::npos; i = s_.find("{%", i + 1)) {
      char sign = 0;
      size_t p = i + 2;
      if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) sign = s_[p++];
      p = skip_space(p);
      if (!at(p, "endraw")) continue;
      p = skip_space(p + 6);
      char close_sign = 0;
      if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) close_sign = s_[p++];
      if (!at(p, "%}")) continue;
      emit_data(strip_text(s_.substr(content, i - content), sign, true, line_starting), content);
      return block_close(p, close_sign);
    }
    src_.fail(start, "Missing end of raw directive");
  }

  // Lexes the inside of a {% %} or {{ }} tag from `pos`; returns the offset after its end.
  size_t lex_tag(size_t start, bool block, size_t pos) {
    emit(block ? Tok::BlockBegin : Tok::VarBegin, start);
    std::vector<char> brackets;
    while (true) {
      pos = skip_space(pos);
      if (pos >= s_.size())
        src_.fail(start, block ? "Unexpected end of template. Jinja was looking for the end of the block tag '%}'."
                               : "Unexpected end of template. Jinja was looking for the end of the print '}}'.");
      if (brackets.empty()) {
        if (block) {
          if ((s_[pos] == '-' || s_[pos] == '+') && at(pos + 1, "%}")) {
            emit(Tok::BlockEnd, pos);
            return block_close(pos + 1, s_[pos]);
          }
          if (at(pos, "%}")) {
            emit(Tok::BlockEnd, pos);
            return block_close(pos, 0);
          }
        } else {
          if (at(pos, "-}}")) {
            emit(Tok::VarEnd, pos);
            return skip_space(pos + 3);
          }
          if (at(pos, "}}")) {
            emit(Tok::VarEnd, pos);
            return pos + 2;
          }
        }
      }
      const unsigned char c = static_cast<unsigned char>(s_[pos]);
      if (std::isdigit(c)) {
        pos = lex_number(pos);
      } else if (std::isalpha(c) || c == '_' || c >= 0x80) {
        size_t e = pos;
        while (e < s_.size()) {
          const unsigned char d = static_cast<unsigned char>(s_[e]);
          if (!(std::isalnum(d) || d == '_' || d >= 0x80)) break;
          ++e;
        }
        emit(Tok::Name, pos, std::string(s_.substr(pos, e - pos)));
        pos = e;
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        static constexpr std::string_view kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~",
                                                    "[",  "]",  "(",  ")",  "{",  "}",  ">", "<", "=", ".", ":", "|",
                                                    ",",  ";"};
        std::string_view op;
        for (std::string_view o : kOps)
          if (at(pos, o)) {
            op = o;
            break;
          }
        if (op.empty()) {
          uint32_t cp;
          const size_t len = py::next_cp(s_, pos, cp);
          src_.fail(pos, "unexpected char " + py::repr(s_.substr(pos, len)));
        }
        if (op == "(" || op == "[" || op == "{") {
          brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (brackets.empty()) src_.fail(pos, "unexpected '" + std::string(op) + "'");
          if (brackets.back() != op[0])
            src_.fail(pos, "unexpected '" + std::string(op) + "', expected '" + std::string(1, brackets.back()) + "'");
          brackets.pop_back();
        }
        emit(Tok::Op, pos, std::string(op));
        pos += op.size();
      }
    }
  }

  // Digits with optional '_' separators from `pos`; returns the end.
  size_t digits(size_t pos, int base) const {
    auto ok = [&](char ch) {
      const unsigned char u = static_cast<unsigned char>(ch);
      if (base == 16) return std::isxdigit(u) != 0;
      return u >= '0' && u < '0' + base;
    };
    if (pos >= s_.size() || !ok(s_[pos])) return pos;
    size_t e = pos + 1;
    while (e < s_.size()) {
      if (ok(s_[e])) ++e;
      else if (s_[e] == '_' && e + 1 < s_.size() && ok(s_[e + 1])) e += 2;
      else break;
    }
    return e;
  }

  size_t lex_number(size_t pos) {
    auto clean = [](std::string_view t) {
      std::string r;
      for (char ch : t)
        if (ch != '_') r.push_back(ch);
      return r;
    };
    // 0x / 0o / 0b integers.
    if (s_[pos] == '0' && pos + 2 < s_.size()) {
      const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[pos + 1])));
      const int base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (base) {
        size_t b = pos + 2;
        if (b < s_.size() && s_[b] == '_') ++b;
        const size_t e = digits(b, base);
        if (e > b) {
          Token t;
          t.type = Tok::Int;
          t.offset = pos;
          t.ival = static_cast<int64_t>(std::stoull(clean(s_.substr(b, e - b)), nullptr, base));
          tokens_.push_back(std::move(t));
          return e;
        }
      }
    }
    const size_t int_end = digits(pos, 10);
    size_t e = int_end;
    bool is_float = false;
    const bool after_dot = pos > 0 && s_[pos - 1] == '.';  // "a.0.1" is two subscripts
    if (!after_dot) {
      if (e + 1 < s_.size() && s_[e] == '.' && std::isdigit(static_cast<unsigned char>(s_[e + 1]))) {
        e = digits(e + 1, 10);
        is_float = true;
      }
      if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
        size_t x = e + 1;
        if (x < s_.size() && (s_[x] == '+' || s_[x] == '-')) ++x;
        const size_t xe = digits(x, 10);
        if (xe > x) {
          e = xe;
          is_float = true;
        }
      }
    }
    Token t;
    t.offset = pos;
    const std::string text = clean(s_.substr(pos, e - pos));
    if (is_float) {
      t.type = Tok::Float;
      t.fval = std::strtod(text.c_str(), nullptr);
    } else {
      t.type = Tok::Int;
      errno = 0;
      const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
      if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX))
        src_.fail(pos, "integer literal " + text + " is too large");
      t.ival = static_cast<int64_t>(v);
    }
    tokens_.push_back(std::move(t));
    return e;
  }

  // A quoted string with Python's backslash escapes (\n \t \xhh \uXXXX ...; unknown escapes keep
  // the backslash).
  size_t lex_string(size_t pos) {
    const char quote = s_[pos];
    std::string out;
    size_t p = pos + 1;
    auto hex = [&](size_t at_pos, int n, uint32_t& v) {
      v = 0;
      for (int i = 0; i < n; ++i) {
        if (at_pos + i >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[at_pos + i]))) return false;
        const char ch = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[at_pos + i])));
        v = v * 16 + static_cast<uint32_t>(ch <= '9' ? ch - '0' : ch - 'a' + 10);
      }
      return true;
    };
    while (true) {
      if (p >= s_.size()) src_.fail(pos, "unexpected char " + py::repr(std::string(1, quote)));
      const char ch = s_[p];
      if (ch == quote) break;
      if (ch != '\\') {
        out.push_back(ch);
        ++p;
        continue;
      }
      if (p + 1 >= s_.size()) src_.fail(pos, "unexpected char " + py::repr(std::string(1, quote)));
      const char e = s_[p + 1];
      p += 2;
      uint32_t v;
      switch (e) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (!hex(p, n, v) || v > 0x10FFFF) src_.fail(p - 2, std::string("truncated \\") + e + " escape in string");
          py::append_cp(out, v);
          p += static_cast<size_t>(n);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < s_.size() && s_[p] >= '0' && s_[p] <= '7'; ++i, ++p)
              v = v * 8 + static_cast<uint32_t>(s_[p] - '0');
            py::append_cp(out, v);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    Token t;
    t.type = Tok::String;
    t.text = std::move(out);
    t.offset = pos;
    tokens_.push_back(std::move(t));
    return p + 1;
  }
};

}  // namespace

std::vector<Token> lex(const Source& src, const ParseOptions& opts) { return Lexer(src, opts).run(); }

}  // namespace detail
}  // namespace hearth::chat

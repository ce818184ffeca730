// Readers of tool-call blocks (tool_syntax.h). The syntax of each family is the one its chat
// template writes for an assistant turn with tool calls (formats.h).
#include "chat/tool_syntax.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include "hearth/error.h"

namespace hearth::chat::detail {
namespace {

using json = nlohmann::ordered_json;
using Status = BlockResult::Status;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
// Function names as models write them: identifiers, dotted paths, dashes.
bool is_name_char(char c) { return is_ident_char(c) || c == '.' || c == '-'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && is_ws(s[i])) ++i;
  return i;
}

std::string quote(std::string_view s, size_t max = 40) {
  std::string q(s.substr(0, max));
  if (s.size() > max) q += "...";
  return "'" + q + "'";
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One past the bracket closing the one at text[pos]; strings in "..." (and '...' when `python`)
// are skipped with their backslash escapes.
size_t bracket_extent(std::string_view text, size_t pos, bool python, size_t* mismatch) {
  std::string stack;
  char in_string = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == in_string) {
        in_string = 0;
      }
      continue;
    }
    if (c == '"' || (python && c == '\'')) {
      in_string = c;
    } else if (c == '{' || c == '[' || (python && c == '(')) {
      stack += c == '{' ? '}' : c == '[' ? ']' : ')';
    } else if (c == '}' || c == ']' || (python && c == ')')) {
      if (stack.empty() || stack.back() != c) {
        if (mismatch != nullptr) *mismatch = i + 1;
        return std::string_view::npos;
      }
      stack.pop_back();
      if (stack.empty()) return i + 1;
    }
  }
  return std::string_view::npos;
}

// Compact JSON text; bytes that are not UTF-8 (a model can write any) become U+FFFD.
std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

BlockResult need_more() { return {}; }

BlockResult invalid(size_t consumed, std::string error) {
  BlockResult r;
  r.status = Status::Invalid;
  r.consumed = consumed == 0 ? 1 : consumed;
  r.error = std::move(error);
  return r;
}

BlockResult done(size_t consumed, std::vector<RawCall> calls) {
  BlockResult r;
  r.status = Status::Done;
  r.consumed = consumed;
  r.calls = std::move(calls);
  return r;
}

// A JSON text, or the parser's message.
std::optional<json> parse_json(std::string_view text, std::string* error) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    *error = std::string("invalid JSON: ") + e.what();
    return std::nullopt;
  }
}

// A call from a JSON object {"name": ..., "arguments" | "parameters": {...}, "id"?}; returns
// the problem, or "" when `out` is filled.
std::string call_from_json(const json& j, RawCall* out) {
  if (!j.is_object()) return "a tool call must be a JSON object, not " + compact(j);
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty())
    return "the tool call has no \"name\" string";
  out->name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  if (args == j.end() || args->is_null()) {
    out->arguments = "{}";
  } else if (args->is_object()) {
    out->arguments = compact(*args);
  } else if (args->is_string()) {
    out->arguments = args->get<std::string>();  // already a JSON text (OpenAI form)
  } else {
    return "the arguments of tool call '" + out->name + "' must be a JSON object, not " + compact(*args);
  }
  if (const auto id = j.find("id"); id != j.end() && id->is_string()) out->id = id->get<std::string>();
  return "";
}

// ---- Python literals (Llama 4 pythonic calls, Llama 3 builtin calls) ----

class PyReader {
 public:
  explicit PyReader(std::string_view s) : s_(s) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(what + " at offset " + std::to_string(p_) + " of " + quote(s_, 80));
  }
  void ws() { p_ = skip_ws(s_, p_); }
  bool at_end() const { return p_ >= s_.size(); }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  std::string ident(bool dotted) {
    ws();
    const size_t b = p_;
    if (p_ >= s_.size() || !is_ident_start(s_[p_])) fail("expected a name");
    while (p_ < s_.size() && (is_ident_char(s_[p_]) || (dotted && s_[p_] == '.'))) ++p_;
    return std::string(s_.substr(b, p_ - b));
  }
  bool eat_word(std::string_view w) {
    ws();
    if (s_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }

  json value() {
    ws();
    if (at_end()) fail("expected a value");
    const char c = s_[p_];
    if (c == '"' || c == '\'') return string();
    if (c == '[' || c == '(') {
      const char close = c == '[' ? ']' : ')';
      ++p_;
      json a = json::array();
      while (!eat(close)) {
        a.push_back(value());
        if (!eat(',')) {
          expect(close);
          break;
        }
      }
      return a;
    }
    if (c == '{') {
      ++p_;
      json o = json::object();
      while (!eat('}')) {
        const json key = value();
        expect(':');
        o[key.is_string() ? key.get<std::string>() : compact(key)] = value();
        if (!eat(',')) {
          expect('}');
          break;
        }
      }
      return o;
    }
    if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')) return number();
    const std::string word = ident(false);
    if (word == "True" || word == "true") return true;
    if (word == "False" || word == "false") return false;
    if (word == "None" || word == "null") return nullptr;
    fail("unknown name '" + word + "'");
  }

  size_t pos() const { return p_; }

 private:
  json string() {
    const char q = s_[p_++];
    std::string out;
    while (true) {
      if (p_ >= s_.size()) fail("unterminated string");
      const char c = s_[p_++];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= s_.size()) fail("unterminated string");
      const char e = s_[p_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p_ + n > s_.size()) fail("truncated escape");
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            const char h = s_[p_++];
            const int d = h >= '0' && h <= '9'   ? h - '0'
                          : h >= 'a' && h <= 'f' ? h - 'a' + 10
                          : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                 : -1;
            if (d < 0) fail("bad escape");
            cp = cp * 16 + static_cast<uint32_t>(d);
          }
          if (cp > 0x10FFFF) fail("bad escape");
          append_utf8(out, cp);
          break;
        }
        default:  // Python keeps unknown escapes as written
          out += '\\';
          out += e;
      }
    }
    return out;
  }

  json number() {
    const size_t b = p_;
    while (p_ < s_.size() && (std::string_view("+-0123456789.eE_").find(s_[p_]) != std::string_view::npos)) ++p_;
    std::string t;
    for (char c : s_.substr(b, p_ - b))
      if (c != '_') t += c;
    if (!t.empty() && t[0] == '+') t.erase(0, 1);
    if (!t.empty() && t[0] == '.') t.insert(0, "0");
    if (t.size() >= 2 && t[0] == '-' && t[1] == '.') t.insert(1, "0");
    if (!t.empty() && t.back() == '.') t += '0';
    const json j = json::parse(t, nullptr, false);
    if (j.is_discarded() || !j.is_number()) fail("bad number '" + std::string(s_.substr(b, p_ - b)) + "'");
    return j;
  }

  std::string_view s_;
  size_t p_ = 0;
};

// (k=v, ...) at the reader's position, as a JSON object.
json read_python_kwargs(PyReader& r) {
  r.expect('(');
  json args = json::object();
  while (!r.eat(')')) {
    const std::string key = r.ident(false);
    r.expect('=');
    args[key] = r.value();
    if (!r.eat(',')) {
      r.expect(')');
      break;
    }
  }
  return args;
}

// NAME(k=v, ...) at the reader's position into `out`.
void read_python_call(PyReader& r, RawCall* out) {
  out->name = r.ident(true);
  out->arguments = compact(read_python_kwargs(r));
}

// [f(k=v), g()] (the whole text).
std::vector<RawCall> read_pythonic_list(std::string_view text) {
  PyReader r(text);
  r.expect('[');
  std::vector<RawCall> calls;
  while (!r.eat(']')) {
    read_python_call(r, &calls.emplace_back());
    if (!r.eat(',')) {
      r.expect(']');
      break;
    }
  }
  r.ws();
  if (!r.at_end()) r.fail("unexpected text after the call list");
  if (calls.empty()) throw Error("the call list is empty");
  return calls;
}

// ---- Gemma 4 ----

constexpr std::string_view kGemmaQuote = "<|\"|>";

class GemmaReader {
 public:
  explicit GemmaReader(std::string_view s) : s_(s) {}
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(what + " at offset " + std::to_string(p_) + " of " + quote(s_, 80));
  }
  void ws() { p_ = skip_ws(s_, p_); }
  bool at_end() const { return p_ >= s_.size(); }
  size_t pos() const { return p_; }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }

  json value() {
    ws();
    if (at_end()) fail("expected a value");
    if (s_.substr(p_, kGemmaQuote.size()) == kGemmaQuote) return quoted();
    const char c = s_[p_];
    if (c == '"') {
      size_t i = p_ + 1;
      while (i < s_.size() && s_[i] != '"') i += s_[i] == '\\' ? 2 : 1;
      if (i >= s_.size()) fail("unterminated string");
      std::string err;
      const auto j = parse_json(s_.substr(p_, i + 1 - p_), &err);
      if (!j) fail(err);
      p_ = i + 1;
      return *j;
    }
    if (c == '{') {
      ++p_;
      json o = json::object();
      while (!eat('}')) {
        ws();
        std::string key;
        if (s_.substr(p_, kGemmaQuote.size()) == kGemmaQuote) {
          key = quoted().get<std::string>();
        } else {
          const size_t colon = s_.find(':', p_);
          if (colon == std::string_view::npos) fail("expected 'key:'");
          key = std::string(trim(s_.substr(p_, colon - p_)));
          if (key.empty()) fail("empty key");
          p_ = colon;
        }
        expect(':');
        o[key] = value();
        if (!eat(',')) {
          expect('}');
          break;
        }
      }
      return o;
    }
    if (c == '[') {
      ++p_;
      json a = json::array();
      while (!eat(']')) {
        a.push_back(value());
        if (!eat(',')) {
          expect(']');
          break;
        }
      }
      return a;
    }
    // A bare scalar up to the next separator: true, false, null, a number, else a word.
    const size_t b = p_;
    while (p_ < s_.size() && s_[p_] != ',' && s_[p_] != '}' && s_[p_] != ']') ++p_;
    const std::string_view word = trim(s_.substr(b, p_ - b));
    if (word.empty()) fail("expected a value");
    if (word == "true") return true;
    if (word == "false") return false;
    if (word == "null" || word == "None") return nullptr;
    const json j = json::parse(word, nullptr, false);
    if (!j.is_discarded() && j.is_number()) return j;
    return std::string(word);
  }

 private:
  json quoted() {
    p_ += kGemmaQuote.size();
    const size_t end = s_.find(kGemmaQuote, p_);
    if (end == std::string_view::npos) fail("unterminated <|\"|> string");
    std::string v(s_.substr(p_, end - p_));
    p_ = end + kGemmaQuote.size();
    return v;
  }

  std::string_view s_;
  size_t p_ = 0;
};

// ---- Qwen 3.5 / Qwen3-Coder XML-ish calls ----

// The declared JSON type of parameter `key` of function `name` in `tools`, or "".
std::string parameter_type(const json& tools, const std::string& name, const std::string& key) {
  if (!tools.is_array()) return "";
  for (const json& tool : tools) {
    if (!tool.is_object()) continue;
    const json& f = tool.contains("function") ? tool["function"] : tool;
    if (!f.is_object() || !f.contains("name") || f["name"] != name) continue;
    const auto params = f.find("parameters");
    if (params == f.end() || !params->is_object()) return "";
    const auto props = params->find("properties");
    if (props == params->end() || !props->is_object()) return "";
    const auto prop = props->find(key);
    if (prop == props->end() || !prop->is_object()) return "";
    const auto type = prop->find("type");
    if (type == prop->end()) return "";
    if (type->is_string()) return type->get<std::string>();
    if (type->is_array())
      for (const json& t : *type)
        if (t == "string") return "string";
    return "";
  }
  return "";
}

// A <parameter=K> value: a string where the schema says so, else JSON where it is JSON, or the
// Python True/False/None the template's `|string` writes for booleans and None.
json parameter_value(const std::string& text, const std::string& type) {
  if (type == "string") return text;
  if (text == "True") return true;
  if (text == "False") return false;
  if (text == "None") return nullptr;
  const json j = json::parse(text, nullptr, false);
  if (!j.is_discarded()) return j;
  return text;
}

// <function=NAME><parameter=K>\nV\n</parameter>...</function> at the start of `text`; returns the
// offset after </function>, or npos with *error set.
size_t read_xml_function(std::string_view text, const json& tools, RawCall* out, std::string* error) {
  constexpr std::string_view kOpen = "<function=", kParam = "<parameter=", kParamEnd = "</parameter>",
                             kEnd = "</function>";
  if (text.substr(0, kOpen.size()) != kOpen) {
    *error = "expected <function=NAME>";
    return std::string_view::npos;
  }
  size_t p = kOpen.size();
  const size_t gt = text.find('>', p);
  if (gt == std::string_view::npos || gt == p || text.substr(p, gt - p).find('\n') != std::string_view::npos) {
    *error = "bad <function=NAME> tag";
    return std::string_view::npos;
  }
  out->name = std::string(trim(text.substr(p, gt - p)));
  p = gt + 1;
  json args = json::object();
  while (true) {
    p = skip_ws(text, p);
    if (text.substr(p, kEnd.size()) == kEnd) {
      p += kEnd.size();
      break;
    }
    if (text.substr(p, kParam.size()) != kParam) {
      *error = p >= text.size() ? "missing </function>"
                                : "unexpected " + quote(text.substr(p)) + " in <function=" + out->name + ">";
      return std::string_view::npos;
    }
    p += kParam.size();
    const size_t kgt = text.find('>', p);
    if (kgt == std::string_view::npos || kgt == p) {
      *error = "bad <parameter=NAME> tag";
      return std::string_view::npos;
    }
    const std::string key(trim(text.substr(p, kgt - p)));
    const size_t vend = text.find(kParamEnd, kgt + 1);
    if (vend == std::string_view::npos) {
      *error = "missing </parameter> of parameter '" + key + "'";
      return std::string_view::npos;
    }
    std::string_view v = text.substr(kgt + 1, vend - kgt - 1);
    // The template writes "\n" VALUE "\n" between the tags.
    if (!v.empty() && v.front() == '\n') v.remove_prefix(1);
    if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    args[key] = parameter_value(std::string(v), parameter_type(tools, out->name, key));
    p = vend + kParamEnd.size();
  }
  out->arguments = compact(args);
  return p;
}

// ---- the blocks ----

// A block that runs to `close` (or the end of the answer): the body before it and the bytes it
// takes; nullopt while neither has arrived.
std::optional<std::pair<std::string_view, size_t>> closed_body(std::string_view text, std::string_view close,
                                                               bool at_end) {
  const size_t c = text.find(close);
  if (c != std::string_view::npos) return std::make_pair(text.substr(0, c), c + close.size());
  if (at_end) return std::make_pair(text, text.size());
  return std::nullopt;
}

BlockResult read_hermes(std::string_view text, bool at_end, const json& tools) {
  const auto body = closed_body(text, "</tool_call>", at_end);
  if (!body) return need_more();
  const auto [raw, consumed] = *body;
  const std::string_view b = trim(raw);
  RawCall call;
  std::string error;
  if (!b.empty() && b.front() == '{') {
    const auto j = parse_json(b, &error);
    if (!j) return invalid(consumed, error);
    if (error = call_from_json(*j, &call); !error.empty()) return invalid(consumed, error);
  } else if (b.substr(0, 10) == "<function=") {
    const size_t end = read_xml_function(b, tools, &call, &error);
    if (end == std::string_view::npos) return invalid(consumed, error);
    if (!trim(b.substr(end)).empty()) return invalid(consumed, "unexpected text after </function>");
  } else {
    return invalid(consumed, "expected a JSON object or <function=NAME> after <tool_call>, not " + quote(b));
  }
  return done(consumed, {call});
}

BlockResult read_xml_block(std::string_view text, bool at_end, const json& tools) {
  const auto body = closed_body(text, "</function>", at_end);
  if (!body) return need_more();
  RawCall call;
  std::string error;
  const size_t end = read_xml_function(text.substr(0, body->second), tools, &call, &error);
  if (end == std::string_view::npos) return invalid(body->second, error);
  return done(end, {call});
}

// One JSON call object (or an array of them) starting at text[0]; `what` names the syntax.
BlockResult read_json_calls(std::string_view text, bool at_end) {
  size_t mismatch = 0;
  const size_t end = json_extent(text, 0, &mismatch);
  if (end == std::string_view::npos) {
    if (mismatch != 0)
      return invalid(mismatch, "invalid JSON: unbalanced brackets in " + quote(text.substr(0, mismatch)));
    if (!at_end) return need_more();
    return invalid(text.size(), "unterminated JSON " + quote(text));
  }
  std::string error;
  const auto j = parse_json(text.substr(0, end), &error);
  if (!j) return invalid(end, error);
  std::vector<RawCall> calls;
  if (j->is_array()) {
    for (const json& e : *j)
      if (error = call_from_json(e, &calls.emplace_back()); !error.empty()) return invalid(end, error);
    if (calls.empty()) return invalid(end, "the list of tool calls is empty");
  } else if (error = call_from_json(*j, &calls.emplace_back()); !error.empty()) {
    return invalid(end, error);
  }
  return done(end, std::move(calls));
}

BlockResult read_python_tag(std::string_view text, bool at_end) {
  const size_t i = skip_ws(text, 0);
  if (i == text.size()) return at_end ? invalid(text.size(), "nothing after <|python_tag|>") : need_more();
  if (text[i] == '{') {
    BlockResult r = read_json_calls(text.substr(i), at_end);
    if (r.status != Status::NeedMore) r.consumed += i;
    return r;
  }
  if (!at_end) return need_more();  // code or a builtin call runs to the end of the message
  const std::string_view body = trim(text);
  RawCall call;
  // A builtin tool: NAME.call(k=v, ...).
  const size_t dot = body.find(".call(");
  if (dot != std::string_view::npos && dot > 0 && body.back() == ')') {
    bool ident = is_ident_start(body[0]);
    for (char c : body.substr(0, dot)) ident = ident && is_ident_char(c);
    if (ident) {
      try {
        PyReader r(body);
        call.name = r.ident(false);
        if (!r.eat_word(".call")) r.fail("expected .call");
        call.arguments = compact(read_python_kwargs(r));
        r.ws();
        if (!r.at_end()) r.fail("unexpected text after the call");
        return done(text.size(), {call});
      } catch (const Error& e) {
        return invalid(text.size(), e.what());
      }
    }
  }
  call.name = "python";
  call.arguments = compact(json{{"code", std::string(body)}});
  return done(text.size(), {call});
}

BlockResult read_llama4_tag(std::string_view text, bool at_end) {
  const auto body = closed_body(text, "<|python_end|>", at_end);
  if (!body) return need_more();
  const auto [raw, consumed] = *body;
  const std::string_view b = trim(raw);
  size_t start = 0;
  if (match_pythonic_start(b, &start) == Match::Yes) {
    try {
      return done(consumed, read_pythonic_list(b));
    } catch (const Error& e) {
      return invalid(consumed, e.what());
    }
  }
  // One or more JSON calls (objects or arrays), separated by whitespace, ';' or ','.
  std::vector<RawCall> calls;
  size_t p = 0;
  while (true) {
    while (p < b.size() && (is_ws(b[p]) || b[p] == ';' || b[p] == ',')) ++p;
    if (p == b.size()) break;
    if (b[p] != '{' && b[p] != '[') return invalid(consumed, "expected JSON or a call list, not " + quote(b.substr(p)));
    const BlockResult r = read_json_calls(b.substr(p), true);
    if (r.status != Status::Done) return invalid(consumed, r.error);
    calls.insert(calls.end(), r.calls.begin(), r.calls.end());
    p += r.consumed;
  }
  if (calls.empty()) return invalid(consumed, "empty <|python_start|> block");
  return done(consumed, std::move(calls));
}

BlockResult read_pythonic(std::string_view text, bool at_end) {
  size_t mismatch = 0;
  const size_t end = bracket_extent(text, 0, true, &mismatch);
  if (end == std::string_view::npos) {
    if (mismatch != 0) return invalid(mismatch, "unbalanced brackets in " + quote(text.substr(0, mismatch)));
    return at_end ? invalid(text.size(), "unterminated call list " + quote(text)) : need_more();
  }
  try {
    return done(end, read_pythonic_list(text.substr(0, end)));
  } catch (const Error& e) {
    return invalid(end, e.what());
  }
}

BlockResult read_gemma4(std::string_view text, bool at_end) {
  const auto body = closed_body(text, "<tool_call|>", at_end);
  if (!body) return need_more();
  const auto [raw, consumed] = *body;
  const std::string_view b = trim(raw);
  if (b.substr(0, 5) != "call:") return invalid(consumed, "expected call:NAME{...}, not " + quote(b));
  size_t p = 5;
  while (p < b.size() && is_name_char(b[p])) ++p;
  RawCall call;
  call.name = std::string(b.substr(5, p - 5));
  if (call.name.empty()) return invalid(consumed, "the call has no function name");
  const std::string_view args = trim(b.substr(p));
  if (args.empty() || args.front() != '{') return invalid(consumed, "expected {...} after call:" + call.name);
  try {
    GemmaReader r(args);
    const json v = r.value();
    r.ws();
    if (!r.at_end()) r.fail("unexpected text after the arguments");
    call.arguments = compact(v);
  } catch (const Error& e) {
    return invalid(consumed, e.what());
  }
  return done(consumed, {call});
}

constexpr std::string_view kDsCallBegin = "<｜tool▁call▁begin｜>", kDsCallEnd = "<｜tool▁call▁end｜>",
                           kDsSep = "<｜tool▁sep｜>";

// The inside of <｜tool▁call▁begin｜>...<｜tool▁call▁end｜>: "function<｜tool▁sep｜>NAME\n```json\n{...}\n```"
// (R1) or "NAME<｜tool▁sep｜>{...}" (later DeepSeek versions).
std::string read_deepseek_call(std::string_view inner, RawCall* out) {
  const size_t sep = inner.find(kDsSep);
  if (sep == std::string_view::npos) return "no <｜tool▁sep｜> in the tool call";
  const std::string_view head = trim(inner.substr(0, sep));
  std::string_view rest = inner.substr(sep + kDsSep.size());
  if (head.empty() || head == "function") {
    const size_t nl = rest.find('\n');
    out->name = std::string(trim(rest.substr(0, nl)));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  } else {
    out->name = std::string(head);
  }
  if (out->name.empty()) return "the tool call has no function name";
  std::string_view args = trim(rest);
  if (args.substr(0, 3) == "```") {
    const size_t nl = args.find('\n');
    args = nl == std::string_view::npos ? std::string_view() : args.substr(nl + 1);
    if (args.size() >= 3 && args.substr(args.size() - 3) == "```") args.remove_suffix(3);
    args = trim(args);
  }
  std::string error;
  const auto j = parse_json(args, &error);
  if (!j) return error;
  if (!j->is_object()) return "the arguments of tool call '" + out->name + "' must be a JSON object";
  out->arguments = compact(*j);
  return "";
}

BlockResult read_deepseek_calls(std::string_view text, bool at_end) {
  const auto body = closed_body(text, "<｜tool▁calls▁end｜>", at_end);
  if (!body) return need_more();
  const auto [b, consumed] = *body;
  std::vector<RawCall> calls;
  size_t p = 0;
  while (true) {
    p = skip_ws(b, p);
    if (p == b.size()) break;
    if (b.substr(p, kDsCallBegin.size()) != kDsCallBegin)
      return invalid(consumed, "expected <｜tool▁call▁begin｜>, not " + quote(b.substr(p)));
    p += kDsCallBegin.size();
    // The answer may end without the closing markers; the call then runs to the end.
    const size_t end = std::min(b.find(kDsCallEnd, p), b.size());
    if (const std::string e = read_deepseek_call(b.substr(p, end - p), &calls.emplace_back()); !e.empty())
      return invalid(consumed, e);
    p = std::min(end + kDsCallEnd.size(), b.size());
  }
  if (calls.empty()) return invalid(consumed, "no tool call between the tool-call markers");
  return done(consumed, std::move(calls));
}

BlockResult read_deepseek_call_block(std::string_view text, bool at_end) {
  const auto body = closed_body(text, kDsCallEnd, at_end);
  if (!body) return need_more();
  const auto [b, consumed] = *body;
  RawCall call;
  if (const std::string e = read_deepseek_call(b.substr(kDsCallBegin.size()), &call); !e.empty())
    return invalid(consumed, e);
  return done(consumed, {call});
}

BlockResult read_mistral(std::string_view text, bool at_end) {
  const size_t i = skip_ws(text, 0);
  if (i == text.size()) return at_end ? invalid(text.size(), "nothing after [TOOL_CALLS]") : need_more();
  if (text[i] == '[' || text[i] == '{') {
    BlockResult r = read_json_calls(text.substr(i), at_end);
    if (r.status != Status::NeedMore) r.consumed += i;
    return r;
  }
  // NAME[ARGS]{...} or NAME[CALL_ID]ID[ARGS]{...} (tokenizers v11+).
  size_t p = i;
  while (p < text.size() && is_name_char(text[p])) ++p;
  RawCall call;
  call.name = std::string(text.substr(i, p - i));
  const auto partial = [&](std::string_view marker) {
    return text.size() - p < marker.size() && marker.substr(0, text.size() - p) == text.substr(p);
  };
  if (p == text.size() || partial("[ARGS]") || partial("[CALL_ID]"))
    return at_end ? invalid(text.size(), "unfinished tool call " + quote(text)) : need_more();
  if (call.name.empty())
    return invalid(p + 1, "expected a JSON list or NAME[ARGS] after [TOOL_CALLS], not " + quote(text.substr(i, 1)));
  if (text.substr(p, 9) == "[CALL_ID]") {
    const size_t args = text.find("[ARGS]", p + 9);
    if (args == std::string_view::npos)
      return at_end ? invalid(text.size(), "missing [ARGS] after [CALL_ID]") : need_more();
    call.id = std::string(trim(text.substr(p + 9, args - p - 9)));
    p = args;
  }
  if (text.substr(p, 6) != "[ARGS]") return invalid(p, "expected [ARGS] after the tool name '" + call.name + "'");
  p = skip_ws(text, p + 6);
  if (p == text.size()) return at_end ? invalid(text.size(), "missing arguments after [ARGS]") : need_more();
  if (text[p] != '{') return invalid(p + 1, "the arguments after [ARGS] must be a JSON object");
  size_t mismatch = 0;
  const size_t end = json_extent(text, p, &mismatch);
  if (end == std::string_view::npos) {
    if (mismatch != 0) return invalid(mismatch, "invalid JSON: unbalanced brackets");
    return at_end ? invalid(text.size(), "unterminated JSON arguments") : need_more();
  }
  std::string error;
  const auto j = parse_json(text.substr(p, end - p), &error);
  if (!j) return invalid(end, error);
  call.arguments = compact(*j);
  return done(end, {call});
}

// Shared by the two prefix tests: literal tokens, " " = optional whitespace.
Match match_tokens(std::string_view s, size_t i, std::initializer_list<std::string_view> tokens) {
  for (std::string_view t : tokens) {
    if (t == " ") {
      i = skip_ws(s, i);
      continue;
    }
    if (i >= s.size()) return Match::Maybe;
    const size_t n = std::min(t.size(), s.size() - i);
    if (s.substr(i, n) != t.substr(0, n)) return Match::No;
    if (n < t.size()) return Match::Maybe;
    i += n;
  }
  return Match::Yes;
}

}  // namespace

size_t json_extent(std::string_view text, size_t pos, size_t* mismatch) {
  return bracket_extent(text, pos, false, mismatch);
}

json parse_python_literal(std::string_view text) {
  PyReader r(text);
  json v = r.value();
  r.ws();
  if (!r.at_end()) r.fail("unexpected text after the value");
  return v;
}

json parse_gemma4_value(std::string_view text) {
  GemmaReader r(text);
  json v = r.value();
  r.ws();
  if (!r.at_end()) r.fail("unexpected text after the value");
  return v;
}

Match match_json_call_start(std::string_view text, std::string_view skip, size_t* start) {
  size_t i = 0;
  while (i < text.size() && (is_ws(text[i]) || skip.find(text[i]) != std::string_view::npos)) ++i;
  if (i == text.size()) return Match::Maybe;
  if (text[i] != '{') return Match::No;
  const Match plain = match_tokens(text, i + 1, {" ", "\"name\"", " ", ":"});
  const Match typed =
      match_tokens(text, i + 1, {" ", "\"type\"", " ", ":", " ", "\"function\"", " ", ",", " ", "\"name\"", " ", ":"});
  if (plain == Match::Yes || typed == Match::Yes) {
    *start = i;
    return Match::Yes;
  }
  return plain == Match::Maybe || typed == Match::Maybe ? Match::Maybe : Match::No;
}

Match match_pythonic_start(std::string_view text, size_t* start) {
  size_t i = skip_ws(text, 0);
  if (i == text.size()) return Match::Maybe;
  if (text[i] != '[') return Match::No;
  const size_t bracket = i;
  i = skip_ws(text, i + 1);
  if (i == text.size()) return Match::Maybe;
  if (!is_ident_start(text[i])) return Match::No;
  while (i < text.size() && (is_ident_char(text[i]) || text[i] == '.')) ++i;
  i = skip_ws(text, i);
  if (i == text.size()) return Match::Maybe;
  if (text[i] != '(') return Match::No;
  *start = bracket;
  return Match::Yes;
}

BlockResult read_block(BlockKind kind, std::string_view text, bool at_end, const json& tools) {
  switch (kind) {
    case BlockKind::Hermes: return read_hermes(text, at_end, tools);
    case BlockKind::XmlFunction: return read_xml_block(text, at_end, tools);
    case BlockKind::Llama3Json: return read_json_calls(text, at_end);
    case BlockKind::Llama3PythonTag: return read_python_tag(text, at_end);
    case BlockKind::Llama4Tag: return read_llama4_tag(text, at_end);
    case BlockKind::Pythonic: return read_pythonic(text, at_end);
    case BlockKind::Gemma4: return read_gemma4(text, at_end);
    case BlockKind::DeepSeekCalls: return read_deepseek_calls(text, at_end);
    case BlockKind::DeepSeekCall: return read_deepseek_call_block(text, at_end);
    case BlockKind::Mistral: return read_mistral(text, at_end);
  }
  return invalid(text.size(), "unknown block kind");
}

// ---- partial blocks (streaming) ----

namespace {

// A partial JSON reader that appends the compact text of what is certain.
class PartialJson {
 public:
  enum Result { Ok, More, Bad };
  PartialJson(std::string_view s, size_t p) : s_(s), p_(p) {}

  Result value() {
    ws();
    if (p_ >= s_.size()) return More;
    const char c = s_[p_];
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      out += c;
      ++p_;
      ws();
      if (p_ >= s_.size()) return More;
      if (s_[p_] == close) {
        out += close;
        ++p_;
        return Ok;
      }
      while (true) {
        if (c == '{') {
          ws();
          if (p_ >= s_.size()) return More;
          if (s_[p_] != '"') return Bad;
          if (const Result r = string(); r != Ok) return r;
          ws();
          if (p_ >= s_.size()) return More;
          if (s_[p_] != ':') return Bad;
          out += ':';
          ++p_;
        }
        if (const Result r = value(); r != Ok) return r;
        ws();
        if (p_ >= s_.size()) return More;
        if (s_[p_] == ',') {
          out += ',';
          ++p_;
          continue;
        }
        if (s_[p_] != close) return Bad;
        out += close;
        ++p_;
        return Ok;
      }
    }
    if (c == '"') return string();
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t e = p_;
      while (e < s_.size() && std::string_view("+-0123456789.eE").find(s_[e]) != std::string_view::npos) ++e;
      if (e >= s_.size()) return More;  // the number may go on
      const json j = json::parse(s_.substr(p_, e - p_), nullptr, false);
      if (j.is_discarded()) return Bad;
      out += compact(j);
      p_ = e;
      return Ok;
    }
    for (std::string_view w : {"true", "false", "null"}) {
      const size_t n = std::min(w.size(), s_.size() - p_);
      if (s_.substr(p_, n) != w.substr(0, n)) continue;
      if (n < w.size()) return More;
      out += w;
      p_ += w.size();
      return Ok;
    }
    return Bad;
  }

  size_t pos() const { return p_; }
  std::string out;

 private:
  void ws() { p_ = skip_ws(s_, p_); }

  static int hex(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    return h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
  }

  // A string: its characters up to the last one that is complete (an escape, a surrogate pair, a
  // UTF-8 sequence), re-escaped as dump() does; the closing quote once it came.
  Result string() {
    size_t i = p_ + 1;
    size_t safe = i;  // end of the decided characters
    bool closed = false;
    while (i < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i]);
      if (c == '"') {
        closed = true;
        break;
      }
      if (c < 0x20) return Bad;
      size_t len = 1;
      if (c == '\\') {
        if (i + 1 >= s_.size()) break;
        len = 2;
        if (s_[i + 1] == 'u') {
          if (i + 6 > s_.size()) break;
          int v = 0;
          for (size_t k = i + 2; k < i + 6; ++k) {
            if (hex(s_[k]) < 0) return Bad;
            v = v * 16 + hex(s_[k]);
          }
          len = 6;
          if (v >= 0xD800 && v <= 0xDBFF) {  // the low surrogate must come with it
            if (i + 12 > s_.size()) break;
            len = 12;
          }
        }
      } else if (c >= 0xC0) {
        len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      }
      if (i + len > s_.size()) break;
      i += len;
      safe = i;
    }
    std::string text = "\"";
    text.append(s_.substr(p_ + 1, safe - p_ - 1));
    text += '"';
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return Bad;
    std::string dumped = compact(j);
    if (!closed) dumped.pop_back();  // no closing quote yet
    out += dumped;
    if (!closed) return More;
    p_ = i + 1;
    return Ok;
  }

  std::string_view s_;
  size_t p_;
};

// {"name": ..., "arguments" | "parameters": {...}} at text[pos]: the name once complete, and the
// arguments so far once both the name and the start of an object of arguments have come.
void partial_json_call(std::string_view text, size_t pos, std::vector<PartialCall>& out) {
  if (pos >= text.size() || text[pos] != '{') return;
  size_t p = pos + 1;
  std::string name;
  while (true) {
    p = skip_ws(text, p);
    if (p >= text.size() || text[p] != '"') break;
    PartialJson key(text, p);
    if (key.value() != PartialJson::Ok) break;
    p = skip_ws(text, key.pos());
    if (p >= text.size() || text[p] != ':') break;
    p = skip_ws(text, p + 1);
    const std::string k = json::parse(key.out).get<std::string>();
    if ((k == "arguments" || k == "parameters") && p < text.size() && text[p] == '{') {
      if (!name.empty()) out.push_back({name, "", compact_json_prefix(text, p, nullptr)});
      return;
    }
    PartialJson v(text, p);
    if (v.value() != PartialJson::Ok) break;
    if (k == "name") {
      const json n = json::parse(v.out);
      if (!n.is_string()) return;
      name = n.get<std::string>();
    }
    p = skip_ws(text, v.pos());
    if (p >= text.size() || text[p] != ',') break;
    ++p;
  }
  if (!name.empty()) out.push_back({name, "", ""});
}

// <function=NAME>...: the name once the tag is complete, then the closed parameters.
void partial_xml_call(std::string_view text, size_t pos, const json& tools, std::vector<PartialCall>& out) {
  constexpr std::string_view kOpen = "<function=", kParam = "<parameter=", kParamEnd = "</parameter>";
  if (text.substr(pos, kOpen.size()) != kOpen) return;
  size_t p = pos + kOpen.size();
  const size_t gt = text.find('>', p);
  if (gt == std::string_view::npos || gt == p || text.substr(p, gt - p).find('\n') != std::string_view::npos) return;
  PartialCall call;
  call.name = std::string(trim(text.substr(p, gt - p)));
  call.arguments = "{";
  json seen = json::object();
  p = gt + 1;
  while (true) {
    p = skip_ws(text, p);
    if (text.substr(p, kParam.size()) != kParam) break;
    p += kParam.size();
    const size_t kgt = text.find('>', p);
    if (kgt == std::string_view::npos || kgt == p) break;
    const std::string key(trim(text.substr(p, kgt - p)));
    const size_t vend = text.find(kParamEnd, kgt + 1);
    if (vend == std::string_view::npos || seen.contains(key)) break;  // a repeated key: the end decides
    std::string_view v = text.substr(kgt + 1, vend - kgt - 1);
    if (!v.empty() && v.front() == '\n') v.remove_prefix(1);
    if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    const json value = parameter_value(std::string(v), parameter_type(tools, call.name, key));
    if (!seen.empty()) call.arguments += ',';
    seen[key] = true;
    call.arguments += compact(json(key)) + ":" + compact(value);
    p = vend + kParamEnd.size();
  }
  out.push_back(std::move(call));
}

// <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}: the name once its line ended.
void partial_deepseek_call(std::string_view inner, std::vector<PartialCall>& out) {
  const size_t sep = inner.find(kDsSep);
  if (sep == std::string_view::npos) return;
  const std::string_view head = trim(inner.substr(0, sep));
  std::string_view rest = inner.substr(sep + kDsSep.size());
  std::string name;
  if (head.empty() || head == "function") {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return;
    name = std::string(trim(rest.substr(0, nl)));
    rest = rest.substr(nl + 1);
  } else {
    name = std::string(head);
  }
  if (name.empty()) return;
  size_t p = skip_ws(rest, 0);
  if (rest.substr(p, 3) == "```") {
    const size_t nl = rest.find('\n', p);
    if (nl == std::string_view::npos) {
      out.push_back({name, "", ""});
      return;
    }
    p = skip_ws(rest, nl + 1);
  } else if (p < rest.size() && rest.size() - p < 3 && std::string_view("```").starts_with(rest.substr(p))) {
    out.push_back({name, "", ""});
    return;
  }
  out.push_back({name, "", p < rest.size() && rest[p] == '{' ? compact_json_prefix(rest, p, nullptr) : ""});
}

}  // namespace

std::string compact_json_prefix(std::string_view text, size_t pos, bool* complete) {
  PartialJson r(text, pos);
  const PartialJson::Result res = r.value();
  if (complete != nullptr) *complete = res == PartialJson::Ok;
  return std::move(r.out);
}

std::vector<PartialCall> read_partial_block(BlockKind kind, std::string_view text, const json& tools) {
  std::vector<PartialCall> out;
  switch (kind) {
    case BlockKind::Hermes: {
      const size_t i = skip_ws(text, 0);
      if (text.substr(i, 1) == "{") partial_json_call(text, i, out);
      else partial_xml_call(text, i, tools, out);
      break;
    }
    case BlockKind::XmlFunction: partial_xml_call(text, 0, tools, out); break;
    case BlockKind::Llama3Json: partial_json_call(text, 0, out); break;
    case BlockKind::Llama3PythonTag: partial_json_call(text, skip_ws(text, 0), out); break;
    case BlockKind::Gemma4: {
      const std::string_view b = text.substr(skip_ws(text, 0));
      if (b.substr(0, 5) != "call:") break;
      size_t p = 5;
      while (p < b.size() && is_name_char(b[p])) ++p;
      if (p > 5 && p < b.size()) out.push_back({std::string(b.substr(5, p - 5)), "", ""});
      break;
    }
    case BlockKind::DeepSeekCalls:
    case BlockKind::DeepSeekCall: {
      size_t p = 0;
      while (true) {
        const size_t begin = text.find(kDsCallBegin, p);
        if (begin == std::string_view::npos) break;
        const size_t start = begin + kDsCallBegin.size();
        const size_t end = text.find(kDsCallEnd, start);
        partial_deepseek_call(text.substr(start, end == std::string_view::npos ? text.npos : end - start), out);
        if (end == std::string_view::npos || kind == BlockKind::DeepSeekCall) break;
        p = end + kDsCallEnd.size();
      }
      break;
    }
    case BlockKind::Mistral: {
      // NAME[CALL_ID]ID[ARGS]{...} / NAME[ARGS]{...}; the JSON list form waits for its end (its
      // ids come after the arguments).
      const size_t i = skip_ws(text, 0);
      size_t p = i;
      while (p < text.size() && is_name_char(text[p])) ++p;
      if (p == i) break;
      PartialCall call;
      call.name = std::string(text.substr(i, p - i));
      if (text.substr(p, 9) == "[CALL_ID]") {
        const size_t args = text.find("[ARGS]", p + 9);
        if (args == std::string_view::npos) break;
        call.id = std::string(trim(text.substr(p + 9, args - p - 9)));
        p = args;
      }
      if (text.substr(p, 6) != "[ARGS]") break;
      p = skip_ws(text, p + 6);
      if (p < text.size() && text[p] == '{') call.arguments = compact_json_prefix(text, p, nullptr);
      out.push_back(std::move(call));
      break;
    }
    case BlockKind::Llama4Tag:
    case BlockKind::Pythonic: break;
  }
  return out;
}

}  // namespace hearth::chat::detail

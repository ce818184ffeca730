// Builtins of the Jinja interpreter: filters, tests and globals, with
// jinja2 3.1's signatures and Python's results and error messages.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "chat/jinja_interp.h"
#include "chat/pystr.h"
#include "hearth/error.h"

namespace hearth::chat::detail {

// ---- argument binding and common helpers ------------------------------------------------------

Params::Params(std::string_view fn, CallArgs& args, std::initializer_list<std::string_view> names, size_t required)
    : fn_(fn), names_(names), values_(names.size()), given_(names.size(), false) {
  if (args.pos.size() > names_.size())
    throw Error(fn_ + "() takes at most " + std::to_string(names_.size()) + " argument(s) (" +
                std::to_string(args.pos.size()) + " given)");
  for (size_t i = 0; i < args.pos.size(); ++i) {
    values_[i] = args.pos[i];
    given_[i] = true;
  }
  for (auto& [key, value] : args.kw) {
    size_t i = 0;
    while (i < names_.size() && names_[i] != key) ++i;
    if (i == names_.size()) throw Error(fn_ + "() got an unexpected keyword argument '" + key + "'");
    if (given_[i]) throw Error(fn_ + "() got multiple values for argument '" + key + "'");
    values_[i] = value;
    given_[i] = true;
  }
  for (size_t i = 0; i < required; ++i)
    if (!given_[i]) throw Error(fn_ + "() missing required argument '" + std::string(names_[i]) + "'");
}

int64_t Params::get_int(size_t i, int64_t dflt) const {
  if (!given_[i]) return dflt;
  if (values_[i].is_integral()) return values_[i].as_int();
  if (values_[i].is_undefined()) fail_undefined(values_[i]);
  throw Error(fn_ + "(): '" + std::string(names_[i]) + "' must be an integer, not " + values_[i].type_name());
}

std::string Params::get_str(size_t i, const std::string& dflt) const {
  if (!given_[i]) return dflt;
  if (values_[i].is_string()) return values_[i].str();
  if (values_[i].is_undefined()) fail_undefined(values_[i]);
  throw Error(fn_ + "(): '" + std::string(names_[i]) + "' must be a string, not " + values_[i].type_name());
}

void fail_undefined(const Value& v) { throw Error(v.undefined_hint()); }

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return {};
    case Value::Type::List: return v.list().items;
    case Value::Type::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict().items.size());
      for (const auto& kv : v.dict().items) keys.push_back(kv.first);
      return keys;
    }
    case Value::Type::String: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      uint32_t cp;
      for (size_t pos = 0, len; (len = py::next_cp(s, pos, cp)) != 0; pos += len)
        chars.emplace_back(s.substr(pos, len));
      return chars;
    }
    default: throw Error("'" + v.type_name() + "' object is not iterable");
  }
}

int64_t length_of(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return 0;
    case Value::Type::String: return static_cast<int64_t>(py::length(v.str()));
    case Value::Type::List:
      if (v.list().kind == ListData::Kind::Generator) break;
      return static_cast<int64_t>(v.list().items.size());
    case Value::Type::Dict: return static_cast<int64_t>(v.dict().items.size());
    default: break;
  }
  throw Error("object of type '" + v.type_name() + "' has no len()");
}

std::string require_str(const Value& v, const std::string& what) {
  if (v.is_string()) return v.str();
  if (v.is_undefined()) fail_undefined(v);
  throw Error(what + " must be str, not " + v.type_name());
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, char align) {
  const int64_t len = static_cast<int64_t>(py::length(s));
  if (width <= len) return s;
  const int64_t marg = width - len;
  int64_t left = 0;
  if (align == '^') left = marg / 2 + (marg & width & 1);
  else if (align == '>') left = marg;
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return out;
}

namespace {

using T = Value::Type;

Value generator(std::vector<Value> items) { return Value::make_list(std::move(items), ListData::Kind::Generator); }

// str() of a value where a filter takes text (soft_str).
std::string text_of(const Value& v) { return v.to_str(); }

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Python's string-to-float (float("1e3"), " inf ", "1_000.5"); nullopt if not a float literal.
std::optional<double> parse_float(const std::string& text) {
  std::string s = py::strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return std::nullopt;
      continue;
    }
    clean.push_back(s[i]);
  }
  if (clean.empty()) return std::nullopt;
  const std::string low = py::lower(clean);
  const std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  const double sign = low[0] == '-' ? -1.0 : 1.0;
  if (body == "inf" || body == "infinity") return sign * INFINITY;
  if (body == "nan") return NAN;
  // Digits, optional fraction, optional exponent (no hex floats, as Python).
  size_t i = 0;
  bool digits = false;
  while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, digits = true;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, digits = true;
  }
  if (!digits) return std::nullopt;
  if (i < body.size() && body[i] == 'e') {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    const size_t e0 = i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i;
    if (i == e0) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  return std::strtod(clean.c_str(), nullptr);
}

// Python int(text, base); nullopt if not an integer literal in that base.
std::optional<int64_t> parse_int(const std::string& text, int64_t base) {
  std::string s = py::strip(text, std::nullopt, true, true);
  bool neg = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (i + 1 < s.size() && s[i] == '0') {
      const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i + 1])));
      const int64_t pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (pb && (base == 0 || base == pb)) {
        base = pb;
        i += 2;
        if (i < s.size() && s[i] == '_') ++i;
      }
    }
    if (base == 0) base = 10;
  }
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool any = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_' && any && i + 1 < s.size() && s[i + 1] != '_') continue;
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (std::isalpha(static_cast<unsigned char>(c))) d = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    else return std::nullopt;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
      throw Error("integer too large: " + text);
    any = true;
  }
  if (!any) return std::nullopt;
  return neg ? -v : v;
}

// Splits "a.b.0" into getitem steps (digit parts are integers), as jinja2's attribute paths.
std::vector<Value> attribute_parts(const Value& attr) {
  if (!attr.is_string()) return {attr};
  std::vector<Value> parts;
  for (const std::string& p : py::split(attr.str(), std::string("."), -1)) {
    bool digits = !p.empty();
    for (char c : p) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (digits) parts.emplace_back(static_cast<int64_t>(std::stoll(p)));
    else parts.emplace_back(p);
  }
  return parts;
}

Value get_path(Interpreter& in, Value item, const std::vector<Value>& parts) {
  for (const Value& p : parts) item = in.getitem(item, p);
  return item;
}

Value lower_if_str(const Value& v) { return v.is_string() ? Value(py::lower(v.str())) : v; }

// Sort key of sort/min/max/unique: the attribute path (comma-separated list for sort), made
// case-insensitive unless asked otherwise.
struct KeyFn {
  std::vector<std::vector<Value>> paths;
  bool case_sensitive = false;
  bool multi = false;

  Value operator()(Interpreter& in, const Value& item) const {
    if (paths.empty()) return case_sensitive ? item : lower_if_str(item);
    if (!multi) {
      Value v = get_path(in, item, paths[0]);
      return case_sensitive ? v : lower_if_str(v);
    }
    std::vector<Value> keys;
    for (const auto& p : paths) {
      Value v = get_path(in, item, p);
      keys.push_back(case_sensitive ? v : lower_if_str(v));
    }
    return Value::make_list(std::move(keys));
  }
};

KeyFn make_key(const Value& attribute, bool case_sensitive, bool multi) {
  KeyFn k;
  k.case_sensitive = case_sensitive;
  k.multi = multi;
  if (attribute.is_none() || attribute.is_undefined()) return k;
  if (multi && attribute.is_string()) {
    for (const std::string& part : py::split(attribute.str(), std::string(","), -1))
      k.paths.push_back(attribute_parts(Value(part)));
  } else {
    k.paths.push_back(attribute_parts(attribute));
  }
  return k;
}

std::vector<Value> sorted(Interpreter& in, std::vector<Value> items, const KeyFn& key, bool reverse) {
  std::vector<std::pair<Value, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(key(in, items[i]), i);
  // Python's sort is stable, and reverse=True keeps equal items in their original order.
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (const auto& k : keyed) out.push_back(items[k.second]);
  return out;
}

std::string indent_text(const std::string& s, const std::string& indention, bool first, bool blank) {
  std::vector<std::string> lines = py::splitlines(s + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += '\n';
      if (!lines[i].empty()) rv += indention + lines[i];
    }
  }
  return first ? indention + rv : rv;
}

// Python's round(x, n) for floats: correctly rounded (half to even on the exact binary value).
double py_round(double x, int64_t n) {
  if (!std::isfinite(x)) return x;
  if (n > 300) return x;
  if (n < -300) return 0.0 * x;
  char buf[512];
  if (n >= 0) {
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(n), x);
    return std::strtod(buf, nullptr);
  }
  const double p = std::pow(10.0, static_cast<double>(-n));
  return std::nearbyint(x / p) * p;
}

// Python's round(int, n): unchanged for n >= 0, else to a multiple of 10**-n, ties to even.
int64_t round_int(int64_t x, int64_t n) {
  if (n >= 0) return x;
  if (n < -18) return 0;
  int64_t q = 1;
  for (int64_t i = 0; i < -n; ++i) q *= 10;
  const int64_t r = x % q < 0 ? x % q + q : x % q;  // 0 <= r < q
  const int64_t down = x - r;
  if (2 * r < q) return down;
  if (2 * r > q) return down + q;
  return (down / q) % 2 == 0 ? down : down + q;
}

std::string json_of(const Value& v, Params& p) {
  JsonOptions o;
  o.ensure_ascii = p.get(0, Value(false)).truthy();
  const Value indent = p.get(1, Value::none());
  if (indent.is_string()) o.indent = indent.str();
  else if (indent.is_integral())
    o.indent = std::string(static_cast<size_t>(std::max<int64_t>(indent.as_int(), 0)), ' ');
  else if (!indent.is_none()) throw Error("tojson(): indent must be an int or a string, not " + indent.type_name());
  const Value seps = p.get(2, Value::none());
  if (seps.is_list()) {
    const auto& s = seps.list().items;
    if (s.size() != 2 || !s[0].is_string() || !s[1].is_string())
      throw Error("tojson(): separators must be a pair of strings");
    o.item_separator = s[0].str();
    o.key_separator = s[1].str();
  } else if (!seps.is_none()) {
    throw Error("tojson(): separators must be a pair of strings, not " + seps.type_name());
  }
  o.sort_keys = p.get(3, Value(false)).truthy();
  return to_json(v, o);
}

// ---- filters ----------------------------------------------------------------------------------

std::vector<Value> select_or_reject(Interpreter& in, const Value& value, CallArgs& args, bool select, bool attr) {
  std::vector<Value> out;
  if (!value.truthy()) return out;
  size_t off = 0;
  std::vector<Value> path;
  if (attr) {
    if (args.pos.empty()) throw Error("Missing parameter for attribute name");
    path = attribute_parts(args.pos[0]);
    off = 1;
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (args.pos.size() > off) {
    if (!args.pos[off].is_string()) throw Error("test name must be a string");
    test = args.pos[off].str();
    test_args.pos.assign(args.pos.begin() + static_cast<std::ptrdiff_t>(off + 1), args.pos.end());
    test_args.kw = args.kw;
  }
  for (const Value& item : iterate(value)) {
    const Value x = attr ? get_path(in, item, path) : item;
    bool ok;
    if (test) {
      CallArgs a = test_args;
      ok = in.test(*test, x, a);
    } else {
      ok = x.truthy();
    }
    if (ok == select) out.push_back(item);
  }
  return out;
}

Value min_or_max(Interpreter& in, const Value& value, CallArgs& args, bool max) {
  Params p(max ? "max" : "min", args, {"case_sensitive", "attribute"});
  const std::vector<Value> items = iterate(value);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const KeyFn key = make_key(p.get(1, Value::none()), p.get(0, Value(false)).truthy(), false);
  size_t best = 0;
  Value best_key = key(in, items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(in, items[i]);
    if (max ? less_than(best_key, k) : less_than(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

Value filter_map(Interpreter& in, const Value& value, CallArgs& args) {
  std::vector<Value> out;
  if (!value.truthy()) return generator(std::move(out));
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, v] : args.kw) {
    if (k == "attribute") attribute = &v;
    else if (k == "default") dflt = &v;
  }
  if (args.pos.empty() && attribute != nullptr) {
    for (const auto& [k, v] : args.kw)
      if (k != "attribute" && k != "default") throw Error("Unexpected keyword argument '" + k + "'");
    const std::vector<Value> path = attribute_parts(*attribute);
    for (const Value& item : iterate(value)) {
      Value x = item;
      for (const Value& part : path) {
        x = in.getitem(x, part);
        if (dflt != nullptr && !dflt->is_none() && x.is_undefined()) x = *dflt;
      }
      out.push_back(std::move(x));
    }
    return generator(std::move(out));
  }
  if (args.pos.empty()) throw Error("map requires a filter argument");
  if (!args.pos[0].is_string()) throw Error("map: the filter name must be a string");
  const std::string name = args.pos[0].str();
  CallArgs rest;
  rest.pos.assign(args.pos.begin() + 1, args.pos.end());
  rest.kw = args.kw;
  for (const Value& item : iterate(value)) {
    CallArgs a = rest;
    out.push_back(in.filter(name, item, a));
  }
  return generator(std::move(out));
}

}  // namespace

Value apply_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  if (name == "tojson") {
    Params p("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    return Value(json_of(v, p));
  }
  if (name == "trim") {
    Params p("trim", args, {"chars"});
    std::optional<std::string> chars;
    if (p.has(0) && !p.get(0).is_none()) chars = p.get_str(0, "");
    return Value(py::strip(text_of(v), chars, true, true));
  }
  if (name == "length" || name == "count") {
    Params p(name, args, {});
    return Value(length_of(v));
  }
  if (name == "join") {
    Params p("join", args, {"d", "attribute"});
    const std::string sep = text_of(p.get(0, Value("")));
    std::vector<Value> items = iterate(v);
    std::string out;
    const Value attr = p.get(1, Value::none());
    const std::vector<Value> path = attr.is_none() ? std::vector<Value>{} : attribute_parts(attr);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += sep;
      out += text_of(path.empty() ? items[i] : get_path(in, items[i], path));
    }
    return Value(std::move(out));
  }
  if (name == "map") return filter_map(in, v, args);
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return generator(select_or_reject(in, v, args, name[0] == 's', name.size() > 6));
  if (name == "first") {
    Params p("first", args, {});
    const std::vector<Value> items = iterate(v);
    if (!items.empty()) return items[0];
    return Value::undefined("No first item, sequence was empty.");
  }
  if (name == "last") {
    Params p("last", args, {});
    if (v.is_list() && v.list().kind == ListData::Kind::Generator)
      throw Error("'generator' object is not reversible");
    const std::vector<Value> items = iterate(v);
    if (!items.empty()) return items.back();
    return Value::undefined("No last item, sequence was empty.");
  }
  if (name == "default" || name == "d") {
    Params p(name, args, {"default_value", "boolean"});
    const bool boolean = p.get(1, Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return p.get(0, Value(""));
    return v;
  }
  if (name == "replace") {
    Params p("replace", args, {"old", "new", "count"}, 2);
    const Value count = p.get(2, Value::none());
    return Value(py::replace(text_of(v), text_of(p.get(0)), text_of(p.get(1)),
                             count.is_none() ? -1 : p.get_int(2, -1)));
  }
  if (name == "lower" || name == "upper" || name == "title" || name == "capitalize") {
    Params p(name, args, {});
    const std::string s = text_of(v);
    if (name == "lower") return Value(py::lower(s));
    if (name == "upper") return Value(py::upper(s));
    if (name == "capitalize") return Value(py::capitalize(s));
    // jinja2's title: split at runs of -, whitespace, ( { [ <; upper-case each part's first
    // character and lower-case the rest.
    std::string out;
    std::string part;
    auto flush = [&] {
      if (part.empty()) return;
      uint32_t cp;
      const size_t len = py::next_cp(part, 0, cp);
      out += py::upper(part.substr(0, len)) + py::lower(part.substr(len));
      part.clear();
    };
    uint32_t cp;
    bool in_sep = false;
    for (size_t pos = 0, len; (len = py::next_cp(s, pos, cp)) != 0; pos += len) {
      const bool sep = py::is_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
      if (sep != in_sep) flush();
      in_sep = sep;
      part.append(s, pos, len);
    }
    flush();
    return Value(std::move(out));
  }
  if (name == "list") {
    Params p("list", args, {});
    return Value::make_list(iterate(v));
  }
  if (name == "unique") {
    Params p("unique", args, {"case_sensitive", "attribute"});
    const KeyFn key = make_key(p.get(1, Value::none()), p.get(0, Value(false)).truthy(), false);
    std::vector<Value> out, seen;
    for (const Value& item : iterate(v)) {
      Value k = key(in, item);
      if (k.is_list() || k.is_dict()) throw Error("unhashable type: '" + k.type_name() + "'");
      bool dup = false;
      for (const Value& s : seen) dup = dup || equals(s, k);
      if (dup) continue;
      seen.push_back(std::move(k));
      out.push_back(item);
    }
    return generator(std::move(out));
  }
  if (name == "dictsort") {
    Params p("dictsort", args, {"case_sensitive", "by", "reverse"});
    if (!v.is_dict()) throw Error("'" + v.type_name() + "' object has no attribute 'items'");
    const bool cs = p.get(0, Value(false)).truthy();
    const std::string by = p.get_str(1, "key");
    if (by != "key" && by != "value") throw Error("You can only sort by either \"key\" or \"value\"");
    const size_t pos = by == "key" ? 0 : 1;
    std::vector<Value> items;
    for (const auto& [k, val] : v.dict().items) items.push_back(Value::make_tuple({k, val}));
    KeyFn key = make_key(Value(static_cast<int64_t>(pos)), cs, false);
    return Value::make_list(sorted(in, std::move(items), key, p.get(2, Value(false)).truthy()));
  }
  if (name == "items") {
    Params p("items", args, {});
    if (v.is_undefined()) return generator({});
    if (!v.is_dict()) throw Error("Can only get item pairs from a mapping.");
    std::vector<Value> items;
    for (const auto& [k, val] : v.dict().items) items.push_back(Value::make_tuple({k, val}));
    return generator(std::move(items));
  }
  if (name == "int") {
    Params p("int", args, {"default", "base"});
    const Value dflt = p.get(0, Value(int64_t{0}));
    const int64_t base = p.get_int(1, 10);
    if (v.is_string()) {
      if (auto i = parse_int(v.str(), base)) return Value(*i);
      if (auto f = parse_float(v.str()); f && std::isfinite(*f)) return Value(static_cast<int64_t>(*f));
      return dflt;
    }
    if (v.is_integral()) return Value(v.as_int());
    if (v.is_float() && std::isfinite(v.as_double())) return Value(static_cast<int64_t>(v.as_double()));
    return dflt;
  }
  if (name == "float") {
    Params p("float", args, {"default"});
    const Value dflt = p.get(0, Value(0.0));
    if (v.is_number()) return Value(v.as_double());
    if (v.is_string())
      if (auto f = parse_float(v.str())) return Value(*f);
    return dflt;
  }
  if (name == "string") {
    Params p("string", args, {});
    return Value(text_of(v));
  }
  if (name == "safe") {
    Params p("safe", args, {});
    return Value(text_of(v));
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    Params p(name, args, {});
    return Value(html_escape(text_of(v)));
  }
  if (name == "abs") {
    Params p("abs", args, {});
    if (v.is_integral()) {
      if (v.as_int() == INT64_MIN) throw Error("integer overflow in abs()");
      return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    if (v.is_undefined()) fail_undefined(v);
    throw Error("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "round") {
    Params p("round", args, {"precision", "method"});
    const int64_t precision = p.get_int(0, 0);
    const std::string method = p.get_str(1, "common");
    if (method != "common" && method != "ceil" && method != "floor")
      throw Error("method must be common, ceil or floor");
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_number()) throw Error("type " + v.type_name() + " doesn't define __round__ method");
    if (method == "common") {
      if (v.is_integral()) return Value(round_int(v.as_int(), precision));
      return Value(py_round(v.as_double(), precision));
    }
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_double() * scale;
    return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
  }
  if (name == "min" || name == "max") return min_or_max(in, v, args, name == "max");
  if (name == "sum") {
    Params p("sum", args, {"attribute", "start"});
    Value total = p.get(1, Value(int64_t{0}));
    const Value attr = p.get(0, Value::none());
    const std::vector<Value> path = attr.is_none() ? std::vector<Value>{} : attribute_parts(attr);
    for (const Value& item : iterate(v)) total = in.add(total, path.empty() ? item : get_path(in, item, path));
    return total;
  }
  if (name == "sort") {
    Params p("sort", args, {"reverse", "case_sensitive", "attribute"});
    const KeyFn key = make_key(p.get(2, Value::none()), p.get(1, Value(false)).truthy(), true);
    return Value::make_list(sorted(in, iterate(v), key, p.get(0, Value(false)).truthy()));
  }
  if (name == "reverse") {
    Params p("reverse", args, {});
    if (v.is_string()) {
      const std::vector<size_t> off = py::cp_offsets(v.str());
      std::string out;
      for (size_t i = off.size() - 1; i > 0; --i) out.append(v.str(), off[i - 1], off[i] - off[i - 1]);
      return Value(std::move(out));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return generator(std::move(items));
  }
  if (name == "batch") {
    Params p("batch", args, {"linecount", "fill_with"}, 1);
    const int64_t n = p.get_int(0, 1);
    const Value fill = p.get(1, Value::none());
    std::vector<Value> out, tmp;
    for (const Value& item : iterate(v)) {
      if (static_cast<int64_t>(tmp.size()) == n) {
        out.push_back(Value::make_list(std::move(tmp)));
        tmp.clear();
      }
      tmp.push_back(item);
    }
    if (!tmp.empty()) {
      if (!fill.is_none())
        while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(fill);
      out.push_back(Value::make_list(std::move(tmp)));
    }
    return generator(std::move(out));
  }
  if (name == "slice") {
    Params p("slice", args, {"slices", "fill_with"}, 1);
    const int64_t slices = p.get_int(0, 1);
    if (slices <= 0) throw Error("slice(): slices must be positive");
    const Value fill = p.get(1, Value::none());
    const std::vector<Value> seq = iterate(v);
    const int64_t len = static_cast<int64_t>(seq.size());
    const int64_t per = len / slices, extra = len % slices;
    int64_t offset = 0;
    std::vector<Value> out;
    for (int64_t k = 0; k < slices; ++k) {
      const int64_t start = offset + k * per;
      if (k < extra) ++offset;
      const int64_t end = offset + (k + 1) * per;
      std::vector<Value> tmp(seq.begin() + start, seq.begin() + end);
      if (!fill.is_none() && k >= extra) tmp.push_back(fill);
      out.push_back(Value::make_list(std::move(tmp)));
    }
    return generator(std::move(out));
  }
  if (name == "indent") {
    Params p("indent", args, {"width", "first", "blank"});
    const Value width = p.get(0, Value(int64_t{4}));
    std::string indention;
    if (width.is_string()) indention = width.str();
    else indention = std::string(static_cast<size_t>(std::max<int64_t>(p.get_int(0, 4), 0)), ' ');
    return Value(indent_text(text_of(v), indention, p.get(1, Value(false)).truthy(), p.get(2, Value(false)).truthy()));
  }
  if (name == "wordcount") {
    Params p("wordcount", args, {});
    const std::string s = text_of(v);
    int64_t n = 0;
    bool in_word = false;
    uint32_t cp;
    for (size_t pos = 0, len; (len = py::next_cp(s, pos, cp)) != 0; pos += len) {
      const bool w = py::is_word(cp);
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value(n);
  }
  if (name == "center") {
    Params p("center", args, {"width"});
    return Value(pad(text_of(v), p.get_int(0, 80), " ", '^'));
  }
  if (name == "attr") {
    Params p("attr", args, {"name"}, 1);
    const std::string attr = p.get_str(0, "");
    if (v.is_dict() && !has_method(v, attr))
      return Value::undefined("'dict object' has no attribute '" + attr + "'");
    return in.getattr(v, attr);
  }
  if (name == "format") {
    if (!args.pos.empty() && !args.kw.empty())
      throw Error("can't handle positional and keyword arguments at the same time");
    if (!args.kw.empty()) {
      Value d = Value::make_dict();
      for (const auto& [k, val] : args.kw) d.dict().set(Value(k), val);
      return Value(percent_format(text_of(v), d));
    }
    return Value(percent_format(text_of(v), Value::make_tuple(args.pos)));
  }
  if (name == "truncate") {
    Params p("truncate", args, {"length", "killwords", "end", "leeway"});
    const std::string s = text_of(v);
    const int64_t length = p.get_int(0, 255);
    const std::string end = p.get_str(2, "...");
    const int64_t leeway = p.get_int(3, 5);
    const int64_t end_len = static_cast<int64_t>(py::length(end));
    if (length < end_len)
      throw Error("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
    if (leeway < 0) throw Error("expected leeway >= 0, got " + std::to_string(leeway));
    const std::vector<size_t> off = py::cp_offsets(s);
    const int64_t n = static_cast<int64_t>(off.size()) - 1;
    if (n <= length + leeway) return Value(s);
    const std::string head = s.substr(0, off[static_cast<size_t>(length - end_len)]);
    if (p.get(1, Value(false)).truthy()) return Value(head + end);
    return Value(py::rsplit(head, std::string(" "), 1)[0] + end);
  }
  throw Error("the filter '" + name + "' is not supported");
}

// ---- tests ------------------------------------------------------------------------------------

bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  auto arg = [&](const char* fn) {
    Params p(fn, args, {"other"}, 1);
    return p.get(0);
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "callable") return v.is_object() && v.object().callable();
  if (name == "escaped") return false;
  if (name == "iterable")
    return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence")
    return v.is_undefined() || v.is_string() || v.is_dict() ||
           (v.is_list() && v.list().kind != ListData::Kind::Generator);
  if (name == "lower" || name == "upper") {
    const std::string s = text_of(v);
    bool cased = false;
    uint32_t cp;
    for (size_t pos = 0, len; (len = py::next_cp(s, pos, cp)) != 0; pos += len) {
      if (!py::is_cased(cp)) continue;
      cased = true;
      const bool is_lower = py::to_upper(cp) != cp || cp == 0xDF;
      if (is_lower != (name == "lower")) return false;
    }
    return cased;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, arg(name.c_str()));
  if (name == "ne" || name == "!=") return !equals(v, arg(name.c_str()));
  if (name == "lt" || name == "lessthan" || name == "<") return less_than(v, arg(name.c_str()));
  if (name == "le" || name == "<=") {
    const Value o = arg(name.c_str());
    return less_than(v, o) || equals(v, o);
  }
  if (name == "gt" || name == "greaterthan" || name == ">") return less_than(arg(name.c_str()), v);
  if (name == "ge" || name == ">=") {
    const Value o = arg(name.c_str());
    return less_than(o, v) || equals(v, o);
  }
  if (name == "sameas") {
    const Value o = arg("sameas");
    if (v.type() != o.type()) return false;
    switch (v.type()) {
      case T::Undefined: return false;
      case T::None: return true;
      case T::Bool: return v.as_bool() == o.as_bool();
      case T::Int: return v.as_int() == o.as_int();
      case T::Float: return false;
      case T::String: return v.str() == o.str();
      default: return v.identity() == o.identity();
    }
  }
  if (name == "in") {
    Params p("in", args, {"seq"}, 1);
    const Value seq = p.get(0);
    if (seq.is_string()) {
      if (!v.is_string()) throw Error("'in <string>' requires string as left operand, not " + v.type_name());
      return seq.str().find(v.str()) != std::string::npos;
    }
    if (seq.is_dict()) return seq.dict().find(v) != nullptr;
    for (const Value& item : iterate(seq))
      if (equals(item, v)) return true;
    return false;
  }
  if (name == "filter" || name == "test") {
    Params p(name, args, {});
    static const char* const kFilters[] = {
        "abs",  "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
        "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map",
        "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "slice",
        "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "wordcount"};
    static const char* const kTests[] = {
        "!=", "<", "<=", "==", ">", ">=", "boolean", "callable", "defined", "divisibleby", "eq", "equalto",
        "escaped", "even", "false", "filter", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le",
        "lessthan", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test",
        "true", "undefined", "upper"};
    const Value& n = v;
    if (!n.is_string()) return false;
    if (name == "filter") {
      for (const char* f : kFilters)
        if (n.str() == f) return true;
    } else {
      for (const char* t : kTests)
        if (n.str() == t) return true;
    }
    return false;
  }
  throw Error("the test '" + name + "' is not supported");
}

// ---- globals ----------------------------------------------------------------------------------

namespace {

// Joiner, cycler: small stateful objects.
class Cycler : public Object {
 public:
  explicit Cycler(std::vector<Value> items) : state_(std::make_shared<State>()) { state_->items = std::move(items); }
  std::string type_name() const override { return "Cycler"; }
  Value attr(const std::string& name) const override {
    auto st = state_;
    if (name == "current") return st->items[st->pos];
    if (name == "next")
      return Value::object(
          std::make_shared<NativeFunction>("<bound method Cycler.next>", [st](Interpreter&, CallArgs&) {
            Value v = st->items[st->pos];
            st->pos = (st->pos + 1) % st->items.size();
            return v;
          }));
    if (name == "reset")
      return Value::object(
          std::make_shared<NativeFunction>("<bound method Cycler.reset>", [st](Interpreter&, CallArgs&) {
            st->pos = 0;
            return Value::none();
          }));
    return Object::attr(name);
  }

 private:
  struct State {
    std::vector<Value> items;
    size_t pos = 0;
  };
  std::shared_ptr<State> state_;
};

Value native(const std::string& name, NativeFunction::Fn fn) {
  return Value::object(std::make_shared<NativeFunction>("<built-in function " + name + ">", std::move(fn)));
}

// dict(mapping_or_pairs, **kwargs) semantics shared by dict() and namespace().
void fill_dict(DictData& d, CallArgs& args, const char* fn) {
  if (args.pos.size() > 1)
    throw Error(std::string(fn) + " expected at most 1 argument, got " + std::to_string(args.pos.size()));
  if (!args.pos.empty()) {
    const Value& src = args.pos[0];
    if (src.is_dict() || src.is_namespace()) {
      for (const auto& kv : (src.is_dict() ? src.dict() : src.ns()).items) d.set(kv.first, kv.second);
    } else {
      for (const Value& pair : iterate(src)) {
        const std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2)
          throw Error("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : args.kw) d.set(Value(k), v);
}

}  // namespace

void add_globals(Frame& frame) {
  frame.set("range", native("range", [](Interpreter&, CallArgs& args) {
    if (!args.kw.empty()) throw Error("range() takes no keyword arguments");
    if (args.pos.empty() || args.pos.size() > 3)
      throw Error("range expected at most 3 arguments, got " + std::to_string(args.pos.size()));
    for (const Value& a : args.pos) {
      if (a.is_undefined()) fail_undefined(a);
      if (!a.is_integral()) throw Error("'" + a.type_name() + "' object cannot be interpreted as an integer");
    }
    int64_t start = 0, stop, step = 1;
    if (args.pos.size() == 1) {
      stop = args.pos[0].as_int();
    } else {
      start = args.pos[0].as_int();
      stop = args.pos[1].as_int();
      if (args.pos.size() == 3) step = args.pos[2].as_int();
    }
    if (step == 0) throw Error("range() arg 3 must not be zero");
    int64_t n = 0;
    if (step > 0 && start < stop) n = (stop - start + step - 1) / step;
    if (step < 0 && start > stop) n = (start - stop - step - 1) / -step;
    if (n > 100000) throw Error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    std::vector<Value> items;
    items.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) items.emplace_back(start + i * step);
    return Value::make_list(std::move(items));
  }));
  frame.set("dict", native("dict", [](Interpreter&, CallArgs& args) {
    Value d = Value::make_dict();
    fill_dict(d.dict(), args, "dict");
    return d;
  }));
  frame.set("namespace", native("namespace", [](Interpreter&, CallArgs& args) {
    Value ns = Value::make_namespace();
    fill_dict(ns.ns(), args, "namespace");
    return ns;
  }));
  frame.set("raise_exception", native("raise_exception", [](Interpreter&, CallArgs& args) -> Value {
    Params p("raise_exception", args, {"message"}, 1);
    throw Error(p.get(0).to_str());
  }));
  frame.set("strftime_now", native("strftime_now", [](Interpreter& in, CallArgs& args) {
    Params p("strftime_now", args, {"format"}, 1);
    const std::string fmt = p.get_str(0, "");
    std::tm t = in.now();
    std::string out(256 + fmt.size() * 4, '\0');
    const size_t n = fmt.empty() ? 0 : std::strftime(out.data(), out.size(), fmt.c_str(), &t);
    out.resize(n);
    return Value(std::move(out));
  }));
  frame.set("joiner", native("joiner", [](Interpreter&, CallArgs& args) {
    Params p("joiner", args, {"sep"});
    const std::string sep = p.get_str(0, ", ");
    auto used = std::make_shared<bool>(false);
    return Value::object(
        std::make_shared<NativeFunction>("<jinja2.utils.Joiner object>", [sep, used](Interpreter&, CallArgs&) {
          if (!*used) {
            *used = true;
            return Value("");
          }
          return Value(sep);
        }));
  }));
  frame.set("cycler", native("cycler", [](Interpreter&, CallArgs& args) {
    if (args.pos.empty()) throw Error("at least one item has to be provided");
    return Value::object(std::make_shared<Cycler>(args.pos));
  }));
}

}  // namespace hearth::chat::detail

// Methods of str, list and dict, str.format and printf-style formatting, with Python's results
// and error messages.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/jinja_interp.h"
#include "chat/pystr.h"
#include "hearth/error.h"

namespace hearth::chat::detail {

namespace {

using T = Value::Type;

const char* const kStrMethods[] = {
    "capitalize", "casefold", "center",  "count",   "endswith",   "find",   "format",  "index",      "isalnum",
    "isalpha",    "isdigit",  "isdecimal", "islower", "isnumeric", "isspace", "istitle", "isupper", "join",
    "ljust",      "lower",    "lstrip",  "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
    "rjust",      "rpartition", "rsplit", "rstrip",  "split",      "splitlines", "startswith", "strip", "swapcase",
    "title",      "upper",    "zfill"};
const char* const kListMethods[] = {"append", "clear", "copy",   "count", "extend",
                                    "index",  "insert", "pop",   "remove", "reverse"};
const char* const kTupleMethods[] = {"count", "index"};
const char* const kDictMethods[] = {"copy", "get", "items", "keys", "values"};

template <size_t N>
bool in_list(const char* const (&names)[N], const std::string& name) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

// Start/end code-point bounds as str methods take them (None means the default).
std::optional<int64_t> opt_index(const Params& p, size_t i) {
  if (!p.has(i) || p.get(i).is_none()) return std::nullopt;
  return p.get_int(i, 0);
}

bool starts_or_ends(const std::string& s, const Value& affix, std::optional<int64_t> start, std::optional<int64_t> end,
                    bool ends) {
  std::vector<std::string> options;
  if (affix.is_string()) {
    options.push_back(affix.str());
  } else if (affix.is_list() && affix.list().kind == ListData::Kind::Tuple) {
    for (const Value& a : affix.list().items) options.push_back(require_str(a, "tuple for startswith/endswith item"));
  } else {
    throw Error(std::string(ends ? "endswith" : "startswith") + " first arg must be str or a tuple of str, not " +
                affix.type_name());
  }
  // The window [start, end) in code points, as a slice.
  const std::vector<size_t> off = py::cp_offsets(s);
  const int64_t n = static_cast<int64_t>(off.size()) - 1;
  auto clamp = [n](std::optional<int64_t> v, int64_t d) {
    if (!v) return d;
    const int64_t x = *v < 0 ? *v + n : *v;
    return std::clamp<int64_t>(x, 0, n);
  };
  const int64_t a = clamp(start, 0), b = clamp(end, n);
  if (start && *start > n) return false;
  const std::string window =
      a <= b ? s.substr(off[static_cast<size_t>(a)], off[static_cast<size_t>(b)] - off[static_cast<size_t>(a)]) : "";
  if (a > b) return false;
  for (const std::string& o : options) {
    if (o.size() > window.size()) continue;
    if (ends ? window.compare(window.size() - o.size(), o.size(), o) == 0 : window.compare(0, o.size(), o) == 0)
      return true;
  }
  return false;
}

// str.format: {} {0} {name} {name.attr} {name[key]} with !s/!r and a format spec (fill, align,
// sign, width, precision, type s d f e g x o b %).
std::string format_spec(const Value& v, const std::string& spec);

std::string str_format(Interpreter& in, const std::string& fmt, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      throw Error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) throw Error("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    std::string spec, conv;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field.resize(bang);
    }
    size_t name_end = 0;
    while (name_end < field.size() && field[name_end] != '.' && field[name_end] != '[') ++name_end;
    const std::string head = field.substr(0, name_end);
    Value v;
    if (head.empty()) {
      if (auto_index >= args.pos.size())
        throw Error("Replacement index " + std::to_string(auto_index) + " out of range");
      v = args.pos[auto_index++];
    } else if (std::all_of(head.begin(), head.end(),
                           [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); })) {
      const size_t k = std::stoul(head);
      if (k >= args.pos.size()) throw Error("Replacement index " + head + " out of range");
      v = args.pos[k];
    } else {
      bool found = false;
      for (const auto& [k, val] : args.kw)
        if (k == head) {
          v = val;
          found = true;
        }
      if (!found) throw Error("KeyError: '" + head + "'");
    }
    for (size_t p = name_end; p < field.size();) {
      if (field[p] == '.') {
        size_t e = p + 1;
        while (e < field.size() && field[e] != '.' && field[e] != '[') ++e;
        v = in.getattr(v, field.substr(p + 1, e - p - 1));
        p = e;
      } else {
        const size_t e = field.find(']', p);
        if (e == std::string::npos) throw Error("Missing ']' in format string");
        const std::string key = field.substr(p + 1, e - p - 1);
        const bool digits = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) {
          return std::isdigit(static_cast<unsigned char>(ch));
        });
        v = in.getitem(v, digits ? Value(static_cast<int64_t>(std::stoll(key))) : Value(key));
        p = e + 1;
      }
    }
    if (conv == "r") v = Value(v.repr());
    else if (conv == "s") v = Value(v.to_str());
    else if (!conv.empty()) throw Error("Unknown conversion specifier " + conv);
    out += format_spec(v, spec);
  }
  return out;
}

std::string format_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return v.to_str();
  size_t i = 0;
  std::string fill = " ";
  char align = 0;
  uint32_t cp;
  const size_t first_len = py::next_cp(spec, 0, cp);
  if (first_len < spec.size() && std::string("<>^=").find(spec[first_len]) != std::string::npos) {
    fill = spec.substr(0, first_len);
    align = spec[first_len];
    i = first_len + 1;
  } else if (std::string("<>^=").find(spec[0]) != std::string::npos) {
    align = spec[0];
    i = 1;
  }
  char sign = '-';
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) sign = spec[i++];
  if (i < spec.size() && spec[i] == '#') ++i;
  if (i < spec.size() && spec[i] == '0') {
    if (!align) {
      fill = "0";
      align = '=';
    }
    ++i;
  }
  int64_t width = 0;
  while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i]))) width = width * 10 + (spec[i++] - '0');
  char grouping = 0;
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) grouping = spec[i++];
  int precision = -1;
  if (i < spec.size() && spec[i] == '.') {
    precision = 0;
    ++i;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i])))
      precision = precision * 10 + (spec[i++] - '0');
  }
  char type = i < spec.size() ? spec[i++] : 0;
  if (i != spec.size()) throw Error("Invalid format specifier '" + spec + "'");
  std::string body;
  bool numeric = false;
  if (v.is_string() || (!v.is_number() && (type == 0 || type == 's'))) {
    if (type != 0 && type != 's')
      throw Error("Unknown format code '" + std::string(1, type) + "' for object of type 'str'");
    body = v.to_str();
    if (precision >= 0) {
      const std::vector<size_t> off = py::cp_offsets(body);
      if (static_cast<size_t>(precision) + 1 < off.size()) body.resize(off[static_cast<size_t>(precision)]);
    }
  } else {
    numeric = true;
    char buf[512];
    const bool neg = v.as_double() < 0 || (v.is_float() && std::signbit(v.as_double()));
    if (type == 0 && v.is_integral()) type = 'd';
    if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' || type == 'c') {
      if (!v.is_integral())
        throw Error("Unknown format code '" + std::string(1, type) + "' for object of type 'float'");
      const int64_t x = v.as_int();
      const uint64_t mag = x < 0 ? 0 - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
      if (type == 'b') {
        std::string bits;
        for (uint64_t m = mag; m; m >>= 1) bits.insert(bits.begin(), static_cast<char>('0' + (m & 1)));
        body = bits.empty() ? "0" : bits;
      } else if (type == 'c') {
        body.clear();
        py::append_cp(body, static_cast<uint32_t>(mag));
      } else {
        std::snprintf(buf, sizeof buf, type == 'd' ? "%llu" : type == 'x' ? "%llx" : type == 'X' ? "%llX" : "%llo",
                      static_cast<unsigned long long>(mag));
        body = buf;
      }
    } else if (type == 0) {
      if (precision >= 0) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, std::fabs(v.as_double()));
        body = buf;
      } else {
        body = py::float_repr(std::fabs(v.as_double()));
      }
    } else if (type == 'f' || type == 'F' || type == 'e' || type == 'E' || type == 'g' || type == 'G' || type == '%') {
      const double x = std::fabs(v.as_double()) * (type == '%' ? 100.0 : 1.0);
      const std::string f = std::string("%.*") + (type == '%' ? 'f' : type);
      std::snprintf(buf, sizeof buf, f.c_str(), precision < 0 ? 6 : precision, x);
      body = buf;
      if (type == '%') body += '%';
    } else {
      throw Error("Unknown format code '" + std::string(1, type) + "' for object of type '" + v.type_name() + "'");
    }
    if (grouping && (type == 'd' || type == 0 || type == 'f' || type == 'F' || type == '%')) {
      size_t int_end = 0;
      while (int_end < body.size() && std::isdigit(static_cast<unsigned char>(body[int_end]))) ++int_end;
      std::string grouped;
      for (size_t k = 0; k < int_end; ++k) {
        if (k > 0 && (int_end - k) % 3 == 0) grouped += grouping;
        grouped += body[k];
      }
      body = grouped + body.substr(int_end);
    }
    const std::string sign_text = neg ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
    if (align == '=') {
      const int64_t len = static_cast<int64_t>(py::length(body) + sign_text.size());
      std::string padding;
      for (int64_t k = len; k < width; ++k) padding += fill;
      return sign_text + padding + body;
    }
    body = sign_text + body;
  }
  if (!align) align = numeric ? '>' : '<';
  if (align == '=') align = '>';
  return pad(body, width, fill, align);
}

Value str_method(Interpreter& in, const std::string& s, const std::string& name, CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Params p(name, args, {"chars"});
    std::optional<std::string> chars;
    if (p.has(0) && !p.get(0).is_none()) chars = p.get_str(0, "");
    return Value(py::strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Params p(name, args, {"sep", "maxsplit"});
    std::optional<std::string> sep;
    if (p.has(0) && !p.get(0).is_none()) sep = p.get_str(0, "");
    const int64_t maxsplit = p.get_int(1, -1);
    std::vector<Value> parts;
    for (std::string& part : name == "split" ? py::split(s, sep, maxsplit) : py::rsplit(s, sep, maxsplit))
      parts.emplace_back(std::move(part));
    return Value::make_list(std::move(parts));
  }
  if (name == "splitlines") {
    Params p(name, args, {"keepends"});
    std::vector<Value> lines;
    for (std::string& l : py::splitlines(s, p.get(0, Value(false)).truthy())) lines.emplace_back(std::move(l));
    return Value::make_list(std::move(lines));
  }
  if (name == "startswith" || name == "endswith") {
    Params p(name, args, {"prefix", "start", "end"}, 1);
    return Value(starts_or_ends(s, p.get(0), opt_index(p, 1), opt_index(p, 2), name == "endswith"));
  }
  if (name == "upper" || name == "lower" || name == "casefold" || name == "title" || name == "capitalize" ||
      name == "swapcase") {
    Params p(name, args, {});
    if (name == "upper") return Value(py::upper(s));
    if (name == "title") return Value(py::title(s));
    if (name == "capitalize") return Value(py::capitalize(s));
    if (name == "swapcase") return Value(py::swapcase(s));
    return Value(py::lower(s));
  }
  if (name == "replace") {
    Params p(name, args, {"old", "new", "count"}, 2);
    return Value(py::replace(s, p.get_str(0, ""), p.get_str(1, ""), p.get_int(2, -1)));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    Params p(name, args, {"sub", "start", "end"}, 1);
    const int64_t r = py::find(s, p.get_str(0, ""), opt_index(p, 1), opt_index(p, 2), name[0] == 'r');
    if (r < 0 && (name == "index" || name == "rindex")) throw Error("substring not found");
    return Value(r);
  }
  if (name == "count") {
    Params p(name, args, {"sub", "start", "end"}, 1);
    std::string window = s;
    if (p.has(1) || p.has(2)) {
      const std::vector<size_t> off = py::cp_offsets(s);
      const int64_t n = static_cast<int64_t>(off.size()) - 1;
      auto clamp = [n](std::optional<int64_t> v, int64_t d) {
        if (!v) return d;
        const int64_t x = *v < 0 ? *v + n : *v;
        return std::clamp<int64_t>(x, 0, n);
      };
      const int64_t a = clamp(opt_index(p, 1), 0), b = clamp(opt_index(p, 2), n);
      if (a > b) return Value(int64_t{0});
      window = s.substr(off[static_cast<size_t>(a)], off[static_cast<size_t>(b)] - off[static_cast<size_t>(a)]);
    }
    return Value(py::count(window, p.get_str(0, "")));
  }
  if (name == "join") {
    Params p(name, args, {"iterable"}, 1);
    std::string out;
    size_t i = 0;
    for (const Value& item : iterate(p.get(0))) {
      if (!item.is_string())
        throw Error("sequence item " + std::to_string(i) + ": expected str instance, " + item.type_name() + " found");
      if (i++) out += s;
      out += item.str();
    }
    return Value(std::move(out));
  }
  if (name == "format") return Value(str_format(in, s, args));
  if (name == "center" || name == "ljust" || name == "rjust") {
    Params p(name, args, {"width", "fillchar"}, 1);
    const std::string fill = p.get_str(1, " ");
    if (py::length(fill) != 1) throw Error("The fill character must be exactly one character long");
    return Value(pad(s, p.get_int(0, 0), fill, name == "center" ? '^' : name == "ljust" ? '<' : '>'));
  }
  if (name == "zfill") {
    Params p(name, args, {"width"}, 1);
    const int64_t width = p.get_int(0, 0);
    const int64_t len = static_cast<int64_t>(py::length(s));
    if (width <= len) return Value(s);
    const bool has_sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    const std::string zeros(static_cast<size_t>(width - len), '0');
    return Value(has_sign ? s.substr(0, 1) + zeros + s.substr(1) : zeros + s);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Params p(name, args, {"affix"}, 1);
    const std::string a = p.get_str(0, "");
    if (name == "removeprefix") return Value(s.compare(0, a.size(), a) == 0 ? s.substr(a.size()) : s);
    if (a.size() <= s.size() && s.compare(s.size() - a.size(), a.size(), a) == 0)
      return Value(s.substr(0, s.size() - a.size()));
    return Value(s);
  }
  if (name == "partition" || name == "rpartition") {
    Params p(name, args, {"sep"}, 1);
    const std::string sep = p.get_str(0, "");
    if (sep.empty()) throw Error("empty separator");
    const size_t f = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (f == std::string::npos)
      return name == "partition" ? Value::make_tuple({Value(s), Value(""), Value("")})
                                 : Value::make_tuple({Value(""), Value(""), Value(s)});
    return Value::make_tuple({Value(s.substr(0, f)), Value(sep), Value(s.substr(f + sep.size()))});
  }
  // is* predicates.
  Params p(name, args, {});
  bool any = false, all = true, cased = false;
  uint32_t cp;
  bool prev_cased = false, title_ok = true;
  for (size_t pos = 0, len; (len = py::next_cp(s, pos, cp)) != 0; pos += len) {
    any = true;
    const bool digit = cp >= '0' && cp <= '9';
    const bool alpha = py::is_cased(cp) || (cp >= 0x80 && py::is_word(cp) && !(cp >= 0x660 && cp <= 0x669));
    if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") all = all && digit;
    else if (name == "isalpha") all = all && alpha;
    else if (name == "isalnum") all = all && (alpha || digit);
    else if (name == "isspace") all = all && py::is_space(cp);
    if (py::is_cased(cp)) {
      cased = true;
      const bool lower_char = py::to_upper(cp) != cp || cp == 0xDF;
      if (name == "islower" && !lower_char) all = false;
      if (name == "isupper" && lower_char) all = false;
      if (name == "istitle" && (prev_cased == !lower_char)) title_ok = false;
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  if (name == "islower" || name == "isupper") return Value(cased && all);
  if (name == "istitle") return Value(cased && title_ok);
  return Value(any && all);
}

Value list_method(const Value& self, const std::string& name, CallArgs& args) {
  std::vector<Value>& items = self.list().items;
  if (name == "append") {
    Params p(name, args, {"object"}, 1);
    items.push_back(p.get(0));
    return Value::none();
  }
  if (name == "extend") {
    Params p(name, args, {"iterable"}, 1);
    for (Value& v : iterate(p.get(0))) items.push_back(std::move(v));
    return Value::none();
  }
  if (name == "insert") {
    Params p(name, args, {"index", "object"}, 2);
    int64_t i = p.get_int(0, 0);
    const int64_t n = static_cast<int64_t>(items.size());
    if (i < 0) i = std::max<int64_t>(i + n, 0);
    items.insert(items.begin() + std::min(i, n), p.get(1));
    return Value::none();
  }
  if (name == "pop") {
    Params p(name, args, {"index"});
    if (items.empty()) throw Error("pop from empty list");
    int64_t i = p.get_int(0, -1);
    const int64_t n = static_cast<int64_t>(items.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw Error("pop index out of range");
    Value v = items[static_cast<size_t>(i)];
    items.erase(items.begin() + i);
    return v;
  }
  if (name == "remove") {
    Params p(name, args, {"value"}, 1);
    for (size_t i = 0; i < items.size(); ++i)
      if (equals(items[i], p.get(0))) {
        items.erase(items.begin() + static_cast<std::ptrdiff_t>(i));
        return Value::none();
      }
    throw Error("list.remove(x): x not in list");
  }
  if (name == "reverse") {
    Params p(name, args, {});
    std::reverse(items.begin(), items.end());
    return Value::none();
  }
  if (name == "clear") {
    Params p(name, args, {});
    items.clear();
    return Value::none();
  }
  if (name == "copy") {
    Params p(name, args, {});
    return Value::make_list(items);
  }
  if (name == "index") {
    Params p(name, args, {"value"}, 1);
    for (size_t i = 0; i < items.size(); ++i)
      if (equals(items[i], p.get(0))) return Value(static_cast<int64_t>(i));
    throw Error(p.get(0).repr() + " is not in list");
  }
  // count
  Params p(name, args, {"value"}, 1);
  int64_t n = 0;
  for (const Value& v : items) n += equals(v, p.get(0)) ? 1 : 0;
  return Value(n);
}

Value dict_method(const Value& self, const std::string& name, CallArgs& args) {
  const DictData& d = self.dict();
  if (name == "get") {
    Params p(name, args, {"key", "default"}, 1);
    const Value key = p.get(0);
    if (key.is_list() || key.is_dict()) throw Error("unhashable type: '" + key.type_name() + "'");
    const Value* v = d.find(key);
    return v ? *v : p.get(1, Value::none());
  }
  Params p(name, args, {});
  std::vector<Value> out;
  out.reserve(d.items.size());
  if (name == "copy") {
    Value c = Value::make_dict();
    c.dict().items = d.items;
    return c;
  }
  for (const auto& [k, v] : d.items) {
    if (name == "items") out.push_back(Value::make_tuple({k, v}));
    else if (name == "keys") out.push_back(k);
    else out.push_back(v);
  }
  return Value::make_list(std::move(out));
}

}  // namespace

bool has_method(const Value& self, const std::string& name) {
  switch (self.type()) {
    case T::String: return in_list(kStrMethods, name);
    case T::List:
      if (self.list().kind == ListData::Kind::List) return in_list(kListMethods, name);
      if (self.list().kind == ListData::Kind::Tuple) return in_list(kTupleMethods, name);
      return false;
    case T::Dict: return in_list(kDictMethods, name);
    default: return false;
  }
}

Value call_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args) {
  switch (self.type()) {
    case T::String: return str_method(in, self.str(), name, args);
    case T::List: return list_method(self, name, args);
    case T::Dict: return dict_method(self, name, args);
    default: throw Error("'" + self.type_name() + "' object has no attribute '" + name + "'");
  }
}

// ---- printf-style formatting ------------------------------------------------------------------

std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> pos;
  const Value* mapping = nullptr;
  if (args.is_list() && args.list().kind == ListData::Kind::Tuple) pos = args.list().items;
  else if (args.is_dict()) mapping = &args;
  else pos.push_back(args);
  size_t next = 0;
  std::string out;
  auto take = [&]() -> Value {
    if (mapping != nullptr && pos.empty()) return *mapping;
    if (next >= pos.size()) throw Error("not enough arguments for format string");
    return pos[next++];
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throw Error("incomplete format");
    Value arg;
    bool have_arg = false;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw Error("incomplete format key");
      if (mapping == nullptr) throw Error("format requires a mapping");
      const Value* v = mapping->dict().find_str(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (v == nullptr) throw Error("KeyError: '" + fmt.substr(i + 1, close - i - 1) + "'");
      arg = *v;
      have_arg = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) flags += fmt[i++];
    std::string width, precision;
    if (i < fmt.size() && fmt[i] == '*') {
      width = std::to_string(take().as_int());
      ++i;
    }
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      precision = ".";
      ++i;
      if (i < fmt.size() && fmt[i] == '*') {
        precision += std::to_string(take().as_int());
        ++i;
      }
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) precision += fmt[i++];
    }
    while (i < fmt.size() && (fmt[i] == 'l' || fmt[i] == 'h' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) throw Error("incomplete format");
    const char type = fmt[i];
    if (type == '%') {
      out += '%';
      continue;
    }
    if (!have_arg) arg = take();
    char buf[512];
    std::string spec = "%" + flags + width + precision;
    std::string piece;
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string text = type == 's' ? arg.to_str() : arg.repr();
        if (precision.size() > 1) {
          const std::vector<size_t> off = py::cp_offsets(text);
          const size_t n = std::stoul(precision.substr(1));
          if (n + 1 < off.size()) text.resize(off[n]);
        }
        const int64_t w = width.empty() ? 0 : std::stoll(width);
        piece = pad(text, w, " ", flags.find('-') != std::string::npos ? '<' : '>');
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        if (!arg.is_number())
          throw Error("%" + std::string(1, type) + " format: a real number is required, not " + arg.type_name());
        const long long x = arg.is_float() ? static_cast<long long>(arg.as_double()) : arg.as_int();
        spec += std::string("ll") + (type == 'i' || type == 'u' ? 'd' : type);
        std::snprintf(buf, sizeof buf, spec.c_str(), x);
        piece = buf;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!arg.is_number()) throw Error("must be real number, not " + arg.type_name());
        spec += type;
        std::snprintf(buf, sizeof buf, spec.c_str(), arg.as_double());
        piece = buf;
        break;
      }
      case 'c': {
        if (arg.is_string() && py::length(arg.str()) == 1) piece = arg.str();
        else if (arg.is_integral()) py::append_cp(piece, static_cast<uint32_t>(arg.as_int()));
        else throw Error("%c requires int or char");
        break;
      }
      default: throw Error("unsupported format character '" + std::string(1, type) + "'");
    }
    out += piece;
  }
  if (mapping == nullptr && next < pos.size()) throw Error("not all arguments converted during string formatting");
  return out;
}

}  // namespace hearth::chat::detail

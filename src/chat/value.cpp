#include "chat/value.h"

#include <algorithm>
#include <cmath>

#include "chat/pystr.h"
#include "hearth/error.h"

namespace hearth::chat {

namespace {

// Deeper nesting than this is a reference cycle (a list appended to itself) or abuse.
constexpr int kMaxDepth = 512;

}  // namespace

const Value* DictData::find(const Value& key) const {
  if (key.is_string()) return find_str(key.str());
  for (const auto& kv : items)
    if (equals(kv.first, key)) return &kv.second;
  return nullptr;
}

Value* DictData::find(const Value& key) { return const_cast<Value*>(static_cast<const DictData*>(this)->find(key)); }

const Value* DictData::find_str(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first.is_string() && kv.first.str() == key) return &kv.second;
  return nullptr;
}

void DictData::set(const Value& key, Value value) {
  if (Value* v = find(key)) {
    *v = std::move(value);
    return;
  }
  items.emplace_back(key, std::move(value));
}

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::move(hint);
  return v;
}

Value Value::none() {
  Value v;
  v.type_ = Type::None;
  return v;
}

Value Value::make_list(std::vector<Value> items, ListData::Kind kind) {
  Value v;
  v.type_ = Type::List;
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->kind = kind;
  v.ptr_ = std::move(data);
  return v;
}

Value Value::make_dict() {
  Value v;
  v.type_ = Type::Dict;
  v.ptr_ = std::make_shared<DictData>();
  return v;
}

Value Value::make_namespace() {
  Value v;
  v.type_ = Type::Namespace;
  v.ptr_ = std::make_shared<DictData>();
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.type_ = Type::Object;
  v.ptr_ = std::move(o);
  return v;
}

Object& Value::object() const { return *static_cast<Object*>(ptr_.get()); }

bool Value::truthy() const {
  switch (type_) {
    case Type::Undefined:
    case Type::None: return false;
    case Type::Bool: return b_;
    case Type::Int: return i_ != 0;
    case Type::Float: return f_ != 0.0;
    case Type::String: return !s_.empty();
    case Type::List: return list().kind == ListData::Kind::Generator || !list().items.empty();
    case Type::Dict: return !dict().items.empty();
    case Type::Namespace:
    case Type::Object: return true;
  }
  return false;
}

namespace {

void write_text(const Value& v, bool quote_strings, int depth, std::string& out);

void write_items(const std::vector<Value>& items, int depth, std::string& out) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    write_text(items[i], true, depth + 1, out);
  }
}

void write_dict(const DictData& d, int depth, std::string& out) {
  out += '{';
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    write_text(d.items[i].first, true, depth + 1, out);
    out += ": ";
    write_text(d.items[i].second, true, depth + 1, out);
  }
  out += '}';
}

void write_text(const Value& v, bool quote_strings, int depth, std::string& out) {
  using T = Value::Type;
  if (depth > kMaxDepth) {
    out += "...";
    return;
  }
  switch (v.type()) {
    case T::Undefined:
      if (quote_strings) out += "Undefined";
      return;
    case T::None: out += "None"; return;
    case T::Bool: out += v.as_bool() ? "True" : "False"; return;
    case T::Int: out += std::to_string(v.as_int()); return;
    case T::Float: out += py::float_repr(v.as_double()); return;
    case T::String: out += quote_strings ? py::repr(v.str()) : v.str(); return;
    case T::List: {
      const ListData& l = v.list();
      if (l.kind == ListData::Kind::Generator) {
        out += "<generator object>";
      } else if (l.kind == ListData::Kind::Tuple) {
        out += '(';
        write_items(l.items, depth, out);
        if (l.items.size() == 1) out += ',';
        out += ')';
      } else {
        out += '[';
        write_items(l.items, depth, out);
        out += ']';
      }
      return;
    }
    case T::Dict: write_dict(v.dict(), depth, out); return;
    case T::Namespace:
      out += "<Namespace ";
      write_dict(v.ns(), depth, out);
      out += '>';
      return;
    case T::Object: out += v.object().repr(); return;
  }
}

}  // namespace

std::string Value::to_str() const {
  if (type_ == Type::String) return s_;
  std::string out;
  write_text(*this, false, 0, out);
  return out;
}

std::string Value::repr() const {
  std::string out;
  write_text(*this, true, 0, out);
  return out;
}

std::string Value::type_name() const {
  switch (type_) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "NoneType";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::String: return "str";
    case Type::List:
      switch (list().kind) {
        case ListData::Kind::List: return "list";
        case ListData::Kind::Tuple: return "tuple";
        case ListData::Kind::Generator: return "generator";
      }
      return "list";
    case Type::Dict: return "dict";
    case Type::Namespace: return "Namespace";
    case Type::Object: return object().type_name();
  }
  return "object";
}

Value Object::attr(const std::string& name) const {
  std::string msg = "'";
  msg += type_name();
  msg += " object' has no attribute '";
  msg += name;
  msg += "'";
  return Value::undefined(std::move(msg));
}

Value Object::call(Interpreter&, CallArgs&) const { throw Error("'" + type_name() + "' object is not callable"); }

namespace {

bool equals_at(const Value& a, const Value& b, int depth) {
  using T = Value::Type;
  if (depth > kMaxDepth) throw Error("maximum recursion depth exceeded in comparison");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case T::Undefined:
    case T::None: return true;
    case T::String: return a.str() == b.str();
    case T::List: {
      const ListData &x = a.list(), &y = b.list();
      if (&x == &y) return true;
      if (x.kind != y.kind || x.kind == ListData::Kind::Generator || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals_at(x.items[i], y.items[i], depth + 1)) return false;
      return true;
    }
    case T::Dict: {
      const DictData &x = a.dict(), &y = b.dict();
      if (&x == &y) return true;
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (other == nullptr || !equals_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 byte order is code-point order
  if (a.is_list() && b.is_list() && a.list().kind == b.list().kind && a.list().kind != ListData::Kind::Generator) {
    const auto &x = a.list().items, &y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw Error("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

namespace {

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return py::float_repr(d);
}

void write_json(const Value& v, const JsonOptions& o, int level, std::string& out) {
  using T = Value::Type;
  if (level > kMaxDepth) throw Error("Circular reference detected");
  const std::string item_sep = o.item_separator ? *o.item_separator : (o.indent ? "," : ", ");
  const std::string key_sep = o.key_separator ? *o.key_separator : ": ";
  auto newline = [&](int lvl) {
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *o.indent;
  };
  switch (v.type()) {
    case T::None: out += "null"; return;
    case T::Bool: out += v.as_bool() ? "true" : "false"; return;
    case T::Int: out += std::to_string(v.as_int()); return;
    case T::Float: out += json_float(v.as_double()); return;
    case T::String: out += py::json_quote(v.str(), o.ensure_ascii); return;
    case T::List: {
      if (v.list().kind == ListData::Kind::Generator) break;
      const auto& items = v.list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (o.indent) newline(level + 1);
        write_json(items[i], o, level + 1, out);
      }
      if (o.indent) newline(level);
      out += ']';
      return;
    }
    case T::Dict: {
      const auto& d = v.dict().items;
      if (d.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> order;
      for (const auto& kv : d) order.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(order.begin(), order.end(),
                         [](const auto* x, const auto* y) { return less_than(x->first, y->first); });
      out += '{';
      for (size_t i = 0; i < order.size(); ++i) {
        const Value& k = order[i]->first;
        std::string key;
        switch (k.type()) {
          case T::String: key = k.str(); break;
          case T::Int: key = std::to_string(k.as_int()); break;
          case T::Float: key = json_float(k.as_double()); break;
          case T::Bool: key = k.as_bool() ? "true" : "false"; break;
          case T::None: key = "null"; break;
          default: throw Error("keys must be str, int, float, bool or None, not " + k.type_name());
        }
        if (i) out += item_sep;
        if (o.indent) newline(level + 1);
        out += py::json_quote(key, o.ensure_ascii);
        out += key_sep;
        write_json(order[i]->second, o, level + 1, out);
      }
      if (o.indent) newline(level);
      out += '}';
      return;
    }
    default: break;
  }
  throw Error("Object of type " + v.type_name() + " is not JSON serializable");
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& opts) {
  std::string out;
  write_json(v, opts, 0, out);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  using J = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case J::null: return Value::none();
    case J::boolean: return Value(j.get<bool>());
    case J::number_integer: return Value(j.get<int64_t>());
    case J::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case J::number_float: return Value(j.get<double>());
    case J::string: return Value(j.get<std::string>());
    case J::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::make_list(std::move(items));
    }
    case J::object: {
      Value d = Value::make_dict();
      auto& items = d.dict().items;
      items.reserve(j.size());
      for (const auto& [k, e] : j.items()) items.emplace_back(Value(k), from_json(e));
      return d;
    }
    default: throw Error("unsupported JSON value (binary data) in the template context");
  }
}

}  // namespace hearth::chat

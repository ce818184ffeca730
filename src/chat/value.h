// The value type of the Jinja interpreter: Python's data model as chat templates see it (None,
// bool, int, float, str, list, tuple, dict, jinja2's Undefined and namespace, callables), with
// Python's equality, ordering, truthiness, str()/repr() text and json.dumps output.
// Source: jinja2 3.1 runtime semantics (Undefined, Namespace) and the Python 3 data model.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::chat {

class Value;
class Object;
class Interpreter;

/// A list, tuple or generator (a one-shot result of map/select/...: always truthy, no len()).
struct ListData {
  enum class Kind : uint8_t { List, Tuple, Generator };
  std::vector<Value> items;
  Kind kind = Kind::List;
};

/// A dict: insertion-ordered (key, value) pairs; keys compare with Python == (1 == 1.0 == True).
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  /// The value stored under `key`, or nullptr.
  const Value* find(const Value& key) const;
  Value* find(const Value& key);
  /// The value stored under the string `key`, or nullptr (fast path for attribute lookups).
  const Value* find_str(std::string_view key) const;
  /// Sets `key` (keeps the first key object and position when it already exists, as Python does).
  void set(const Value& key, Value value);
};

/// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

/// One Python value. Copies share lists, dicts, namespaces and objects (reference semantics, as
/// in Python); scalars and strings are copied.
class Value {
 public:
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Object };

  /// An Undefined whose use as an error says `hint` (jinja2's message, "'x' is undefined").
  Value() = default;
  static Value undefined(std::string hint);
  static Value none();
  Value(bool b) : type_(Type::Bool), b_(b) {}
  Value(int64_t i) : type_(Type::Int), i_(i) {}
  Value(int i) : type_(Type::Int), i_(i) {}
  Value(size_t i) : type_(Type::Int), i_(static_cast<int64_t>(i)) {}
  Value(double f) : type_(Type::Float), f_(f) {}
  Value(std::string s) : type_(Type::String), s_(std::move(s)) {}
  Value(std::string_view s) : type_(Type::String), s_(s) {}
  Value(const char* s) : type_(Type::String), s_(s) {}
  static Value make_list(std::vector<Value> items = {}, ListData::Kind kind = ListData::Kind::List);
  static Value make_tuple(std::vector<Value> items) { return make_list(std::move(items), ListData::Kind::Tuple); }
  static Value make_dict();
  /// A jinja2 namespace(): attributes are assignable with {% set ns.x = ... %}.
  static Value make_namespace();
  static Value object(std::shared_ptr<Object> o);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::Undefined; }
  bool is_none() const { return type_ == Type::None; }
  bool is_bool() const { return type_ == Type::Bool; }
  /// int, excluding bool.
  bool is_int() const { return type_ == Type::Int; }
  bool is_float() const { return type_ == Type::Float; }
  /// bool, int or float (numbers.Number: bool is an int in Python).
  bool is_number() const { return type_ == Type::Bool || type_ == Type::Int || type_ == Type::Float; }
  /// bool or int (usable as an integer).
  bool is_integral() const { return type_ == Type::Bool || type_ == Type::Int; }
  bool is_string() const { return type_ == Type::String; }
  bool is_list() const { return type_ == Type::List; }
  bool is_dict() const { return type_ == Type::Dict; }
  bool is_namespace() const { return type_ == Type::Namespace; }
  bool is_object() const { return type_ == Type::Object; }

  /// Python truthiness: Undefined, None, False, 0, 0.0, "" and empty lists/tuples/dicts are
  /// false; generators, namespaces and objects are true.
  bool truthy() const;

  bool as_bool() const { return b_; }
  /// The integer of an int or bool.
  int64_t as_int() const { return type_ == Type::Bool ? (b_ ? 1 : 0) : i_; }
  /// The number of an int, bool or float as a double.
  double as_double() const { return type_ == Type::Float ? f_ : static_cast<double>(as_int()); }
  const std::string& str() const { return s_; }
  const std::string& undefined_hint() const { return s_; }
  ListData& list() const { return *static_cast<ListData*>(ptr_.get()); }
  DictData& dict() const { return *static_cast<DictData*>(ptr_.get()); }
  /// The attributes of a namespace.
  DictData& ns() const { return *static_cast<DictData*>(ptr_.get()); }
  Object& object() const;
  /// Identity of a shared value (list, dict, namespace, object), for `is sameas` and cycles.
  const void* identity() const { return ptr_.get(); }

  /// Python str(): "None", "True", "1.0", "['a', 1]", "{'k': None}"; Undefined is "".
  std::string to_str() const;
  /// Python repr(): as to_str() but strings quoted ('a'); Undefined is "Undefined".
  std::string repr() const;
  /// Python type name for messages: "str", "int", "float", "bool", "NoneType", "list", "tuple",
  /// "dict", "generator", "Namespace", "Undefined", or the object's own.
  std::string type_name() const;

 private:
  Type type_ = Type::Undefined;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::string s_;              // String text, or the Undefined hint
  std::shared_ptr<void> ptr_;  // ListData, DictData (dict or namespace) or Object
};

/// Something that is not plain data: a macro, a builtin function, a bound method, a loop object,
/// a cycler. Attribute access and calls go through it.
class Object {
 public:
  virtual ~Object() = default;
  /// Python type name ("Macro", "LoopContext", "builtin_function_or_method" ...).
  virtual std::string type_name() const = 0;
  /// Text of str()/repr().
  virtual std::string repr() const { return std::string("<").append(type_name()).append(" object>"); }
  /// The attribute `name`, or an Undefined naming it.
  virtual Value attr(const std::string& name) const;
  virtual bool callable() const { return false; }
  /// Calls the object; throws hearth::Error when it is not callable or the arguments are wrong.
  virtual Value call(Interpreter& in, CallArgs& args) const;
};

/// Python `a == b` (numbers by value across int/float/bool, lists and tuples element-wise, dicts
/// as mappings, Undefined equal only to Undefined; objects by identity).
bool equals(const Value& a, const Value& b);

/// Python `a < b` for numbers, strings (code-point order), and lists or tuples (lexicographic).
/// Throws hearth::Error "'<' not supported between instances of 'int' and 'str'" otherwise.
bool less_than(const Value& a, const Value& b);

/// Options of json.dumps (Python 3): `indent` unset means one line; `item_separator` and
/// `key_separator` default to ", " / ": " (or "," / ": " when indenting).
struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;
  std::optional<std::string> item_separator, key_separator;
  bool sort_keys = false;
};

/// json.dumps(value, ...) byte for byte: Python float repr, NaN/Infinity, dict keys converted
/// from int/float/bool/None to strings. Throws hearth::Error "Object of type Undefined is not JSON
/// serializable" for values JSON cannot hold.
std::string to_json(const Value& v, const JsonOptions& opts = {});

/// A Value from parsed JSON: objects become dicts in document order, integers ints (unsigned
/// values above INT64_MAX become floats), other numbers floats.
Value from_json(const nlohmann::ordered_json& j);

}  // namespace hearth::chat

// Internals of the Jinja interpreter: the tree walker (scopes, statements, expressions, macros,
// loops) and the builtins it dispatches to (filters, tests, str/list/dict methods, globals).
// Source: jinja2 3.1 semantics (runtime.py, filters.py, tests.py, defaults.py, sandbox.py).
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/template.h"
#include "chat/value.h"

namespace hearth::chat {

namespace detail {

/// One scope: the variables a for-loop iteration, a macro call, a block or the template body
/// set. Lookups fall through to the parent; assignments go to the innermost scope, as jinja2
/// scopes them ({% set %} in a loop body does not leak out of it).
struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  explicit Frame(std::shared_ptr<Frame> p = nullptr) : parent(std::move(p)) {}
  Value* find_local(std::string_view name);
  /// The innermost binding of `name`, or nullptr.
  const Value* lookup(std::string_view name) const;
  void set(const std::string& name, Value v);
};
using FramePtr = std::shared_ptr<Frame>;

}  // namespace detail

/// Walks a parsed template. One Interpreter renders one template once (it is not shared
/// between threads).
class Interpreter {
 public:
  Interpreter(const detail::Source& src, const RenderOptions& opts);

  /// Renders `body` with the variables of `context` (a dict) over the globals.
  std::string render(const detail::Body& body, const Value& context);

  // Operations the builtins need. They throw hearth::Error with Python's message; the walker
  // adds the template position.

  /// jinja2's getattr: `obj.name` (a bound method of str/list/dict, a dict key, an attribute of
  /// a namespace or object); missing gives an Undefined naming it. Throws for an Undefined `obj`.
  Value getattr(const Value& obj, const std::string& name);
  /// jinja2's getitem: `obj[key]` (falls back to getattr for string keys). Throws for an
  /// Undefined `obj`.
  Value getitem(const Value& obj, const Value& key);
  /// Calls a macro, builtin function or bound method.
  Value call(const Value& callee, CallArgs& args);
  /// Applies the filter `name` to `input`.
  Value filter(const std::string& name, const Value& input, CallArgs& args);
  /// Applies the test `name`.
  bool test(const std::string& name, const Value& v, CallArgs& args);
  /// Python `a + b` (numbers, str, list, tuple).
  Value add(const Value& a, const Value& b);
  /// The time strftime_now() formats.
  std::tm now() const;

  /// Runs a macro (or a call block's caller) defined by `def` with scope `closure`.
  Value call_macro(const detail::MacroDef& def, const detail::FramePtr& closure, CallArgs& args);
  /// Renders a (recursive) loop over `iterable` at `depth` (loop(...) in a recursive for).
  std::string run_loop(const detail::Stmt& s, const Value& iterable, const detail::FramePtr& frame, int depth);

 private:
  enum class Flow { Normal, Break, Continue };

  const detail::Source& src_;
  RenderOptions opts_;
  int depth_ = 0;                                // macro call depth
  int eval_depth_ = 0;                           // expression nesting being evaluated
  std::vector<detail::FramePtr> keep_alive_;     // scopes that macros were defined in

  Flow exec(const detail::Body& body, const detail::FramePtr& f, std::string& out);
  Flow exec_stmt(const detail::Stmt& s, const detail::FramePtr& f, std::string& out);
  Flow exec_stmt_inner(const detail::Stmt& s, const detail::FramePtr& f, std::string& out);
  Flow loop(const detail::Stmt& s, const Value& iterable, const detail::FramePtr& f, std::string& out, int depth);
  void assign(const detail::Expr& target, const Value& v, const detail::FramePtr& f);
  Value eval(const detail::Expr& e, const detail::FramePtr& f);
  Value eval_inner(const detail::Expr& e, const detail::FramePtr& f);
  Value eval_call(const detail::Expr& e, const detail::FramePtr& f);
  Value eval_filter(const detail::Expr& e, const detail::FramePtr& f, const Value* block_input);
  void eval_args(const detail::Expr& e, const detail::FramePtr& f, CallArgs& args);
  bool compare(detail::CmpOp op, const Value& a, const Value& b);
};

namespace detail {

/// A builtin callable: a global function, a bound method, loop.cycle ...
class NativeFunction : public Object {
 public:
  using Fn = std::function<Value(Interpreter&, CallArgs&)>;
  NativeFunction(std::string repr, Fn fn) : repr_(std::move(repr)), fn_(std::move(fn)) {}
  std::string type_name() const override { return "builtin_function_or_method"; }
  std::string repr() const override { return repr_; }
  bool callable() const override { return true; }
  Value call(Interpreter& in, CallArgs& args) const override { return fn_(in, args); }

 private:
  std::string repr_;
  Fn fn_;
};

/// Binds CallArgs to a Python signature of named parameters: positionals fill the names in
/// order, keywords by name. Throws hearth::Error for too many arguments, an unknown or repeated
/// keyword, or (with `required`) a missing one.
class Params {
 public:
  Params(std::string_view fn, CallArgs& args, std::initializer_list<std::string_view> names, size_t required = 0);
  bool has(size_t i) const { return given_[i]; }
  /// The argument, or `dflt` when it was not given.
  Value get(size_t i, Value dflt = Value()) const { return given_[i] ? values_[i] : std::move(dflt); }
  /// An int argument (bool allowed); throws naming the parameter otherwise.
  int64_t get_int(size_t i, int64_t dflt) const;
  /// A str argument; throws naming the parameter otherwise.
  std::string get_str(size_t i, const std::string& dflt) const;

 private:
  std::string fn_;
  std::vector<std::string_view> names_;
  std::vector<Value> values_;
  std::vector<bool> given_;
};

/// Python iter(v) materialized: list/tuple items, dict keys, the characters of a string, nothing
/// for Undefined. Throws "'int' object is not iterable".
std::vector<Value> iterate(const Value& v);
/// Python len(v): code points of a str, items of a list/tuple/dict, 0 for Undefined. Throws
/// "object of type 'int' has no len()".
int64_t length_of(const Value& v);
/// Throws hearth::Error with the message of an Undefined used where a value is needed.
[[noreturn]] void fail_undefined(const Value& v);
/// The text of a str argument; throws "WHAT must be str, not int" otherwise.
std::string require_str(const Value& v, const std::string& what);
/// `s` padded with `fill` to `width` code points, aligned '<', '>' or '^' (str.center's split: an
/// odd margin puts the extra fill on the left when `width` is odd, as CPython).
std::string pad(const std::string& s, int64_t width, const std::string& fill, char align);

/// Python's binary arithmetic `a op b` on ints, floats, strings (+, * and % formatting), lists and
/// tuples (+, *). Throws hearth::Error with Python's message ("unsupported operand type(s) for -:
/// 'str' and 'int'", "division by zero"; ints that overflow int64 are an error).
Value binary_op(BinOp op, const Value& a, const Value& b);

/// Python `fmt % args` (printf-style: %s %r %d %i %f %e %g %x %o %c %% with flags, width,
/// precision and %(name)s keys).
std::string percent_format(const std::string& fmt, const Value& args);

Value apply_filter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
/// True if `self` (a str, list or dict) has the method `name`.
bool has_method(const Value& self, const std::string& name);
/// Calls the method `name` of a str, list or dict.
Value call_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args);
/// The jinja2 and Hugging Face globals: range, dict, namespace, joiner, cycler,
/// raise_exception, strftime_now.
void add_globals(Frame& frame);

}  // namespace detail
}  // namespace hearth::chat

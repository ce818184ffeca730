// The Jinja tree walker: scopes, statements, expressions, macros and loops.
#include "chat/jinja_interp.h"

#include <cmath>

#include "chat/pystr.h"
#include "hearth/error.h"

namespace hearth::chat {

using detail::BinOp;
using detail::Body;
using detail::CmpOp;
using detail::Expr;
using detail::fail_undefined;
using detail::Frame;
using detail::FramePtr;
using detail::iterate;
using detail::MacroDef;
using detail::NativeFunction;
using detail::Stmt;

namespace detail {

Value* Frame::find_local(std::string_view name) {
  for (auto& kv : vars)
    if (kv.first == name) return &kv.second;
  return nullptr;
}

const Value* Frame::lookup(std::string_view name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent.get())
    for (const auto& kv : f->vars)
      if (kv.first == name) return &kv.second;
  return nullptr;
}

void Frame::set(const std::string& name, Value v) {
  if (Value* x = find_local(name)) {
    *x = std::move(v);
    return;
  }
  vars.emplace_back(name, std::move(v));
}

}  // namespace detail

namespace {

// Macro calls nested deeper than this fail (jinja2 fails on Python's recursion limit).
constexpr int kMaxMacroDepth = 100;
// Expressions nested deeper than this (a + a + ... a thousand times) fail rather than exhaust the
// stack.
constexpr int kMaxEvalDepth = 1000;

using T = Value::Type;

// A macro or a call block's caller. The scope it was defined in stays alive for the whole
// rendering (the Interpreter keeps it), so a weak reference avoids a frame <-> macro cycle.
class MacroObject : public Object {
 public:
  MacroObject(std::shared_ptr<const MacroDef> def, std::weak_ptr<Frame> closure)
      : def_(std::move(def)), closure_(std::move(closure)) {}
  std::string type_name() const override { return "Macro"; }
  std::string repr() const override { return "<Macro '" + def_->name + "'>"; }
  bool callable() const override { return true; }
  Value call(Interpreter& in, CallArgs& args) const override {
    const FramePtr closure = closure_.lock();
    if (!closure) throw Error("macro '" + def_->name + "' outlived its scope");
    return in.call_macro(*def_, closure, args);
  }
  Value attr(const std::string& name) const override {
    if (name == "name") return Value(def_->name);
    if (name == "arguments") {
      std::vector<Value> names;
      for (const std::string& p : def_->params) names.emplace_back(p);
      return Value::make_tuple(std::move(names));
    }
    if (name == "catch_kwargs") return Value(def_->uses_kwargs);
    if (name == "catch_varargs") return Value(def_->uses_varargs);
    if (name == "caller") return Value(def_->uses_caller);
    return Object::attr(name);
  }

 private:
  std::shared_ptr<const MacroDef> def_;
  std::weak_ptr<Frame> closure_;
};

// `loop` inside a for body.
class LoopObject : public Object {
 public:
  struct Changed {
    std::optional<Value> last;
  };
  LoopObject(std::shared_ptr<const std::vector<Value>> items, size_t index, int depth,
             std::shared_ptr<Changed> changed, const Stmt* recursive, FramePtr scope)
      : items_(std::move(items)),
        i_(index),
        depth_(depth),
        changed_(std::move(changed)),
        recursive_(recursive),
        scope_(std::move(scope)) {}

  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(i_ + 1) + "/" + std::to_string(items_->size()) + ">";
  }
  bool callable() const override { return recursive_ != nullptr; }
  Value call(Interpreter& in, CallArgs& args) const override {
    if (recursive_ == nullptr)
      throw Error("The loop must have the 'recursive' marker to be called recursively.");
    if (args.pos.size() != 1 || !args.kw.empty()) throw Error("loop() takes exactly one argument");
    return Value(in.run_loop(*recursive_, args.pos[0], scope_, depth_ + 1));
  }
  Value attr(const std::string& name) const override {
    const int64_t n = static_cast<int64_t>(items_->size());
    const int64_t i = static_cast<int64_t>(i_);
    if (name == "index") return Value(i + 1);
    if (name == "index0") return Value(i);
    if (name == "revindex") return Value(n - i);
    if (name == "revindex0") return Value(n - i - 1);
    if (name == "first") return Value(i == 0);
    if (name == "last") return Value(i == n - 1);
    if (name == "length") return Value(n);
    if (name == "depth") return Value(static_cast<int64_t>(depth_ + 1));
    if (name == "depth0") return Value(static_cast<int64_t>(depth_));
    if (name == "previtem") return i > 0 ? (*items_)[i_ - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem") return i + 1 < n ? (*items_)[i_ + 1] : Value::undefined("there is no next item");
    if (name == "cycle") {
      const size_t index = i_;
      return Value::object(std::make_shared<NativeFunction>("<bound method LoopContext.cycle>",
                                                            [index](Interpreter&, CallArgs& args) {
                                                              if (args.pos.empty())
                                                                throw Error("no items for cycling given");
                                                              return args.pos[index % args.pos.size()];
                                                            }));
    }
    if (name == "changed") {
      auto state = changed_;
      return Value::object(std::make_shared<NativeFunction>("<bound method LoopContext.changed>",
                                                            [state](Interpreter&, CallArgs& args) {
                                                              Value now = Value::make_tuple(args.pos);
                                                              if (state->last && equals(*state->last, now))
                                                                return Value(false);
                                                              state->last = std::move(now);
                                                              return Value(true);
                                                            }));
    }
    return Object::attr(name);
  }

 private:
  std::shared_ptr<const std::vector<Value>> items_;
  size_t i_;
  int depth_;
  std::shared_ptr<Changed> changed_;
  const Stmt* recursive_;
  FramePtr scope_;
};

// "list object", "None": how jinja2 names the object in undefined-attribute messages.
std::string object_desc(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_namespace()) return "jinja2.utils.Namespace object";
  return v.type_name() + " object";
}

Value no_attribute(const Value& obj, const std::string& name) {
  std::string msg = "'";
  msg += object_desc(obj);
  msg += "' has no attribute '";
  msg += name;
  msg += "'";
  return Value::undefined(std::move(msg));
}

Value no_element(const Value& obj, const Value& key) {
  if (key.is_string()) return no_attribute(obj, key.str());
  return Value::undefined(object_desc(obj) + " has no element " + key.repr());
}

bool hashable(const Value& v) {
  if (v.is_list()) {
    if (v.list().kind != ListData::Kind::Tuple) return v.list().kind == ListData::Kind::Generator;
    for (const Value& x : v.list().items)
      if (!hashable(x)) return false;
    return true;
  }
  return !v.is_dict() && !v.is_namespace();
}

void append_text(std::string& out, const Value& v) {
  if (v.is_string()) out += v.str();
  else if (!v.is_undefined()) out += v.to_str();
}

// Python's int // and % (floor semantics); b != 0.
int64_t floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) throw Error("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// Python's float // and % (CPython float_divmod).
std::pair<double, double> float_divmod(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

[[noreturn]] void unsupported(const char* op, const Value& a, const Value& b) {
  throw Error(std::string("unsupported operand type(s) for ") + op + ": '" + a.type_name() + "' and '" +
              b.type_name() + "'");
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    if (n > 0 && seq.str().size() * static_cast<size_t>(n) > (size_t{1} << 30))
      throw Error("repeated string is too large");
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value(std::move(out));
  }
  std::vector<Value> out;
  if (n > 0 && seq.list().items.size() * static_cast<size_t>(n) > (size_t{1} << 24))
    throw Error("repeated list is too large");
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().items.begin(), seq.list().items.end());
  return Value::make_list(std::move(out), seq.list().kind);
}

bool is_sequence_value(const Value& v) {
  return v.is_string() || (v.is_list() && v.list().kind != ListData::Kind::Generator);
}

}  // namespace

namespace detail {

// Python's binary arithmetic on interpreter values.
Value binary_op(BinOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool nums = a.is_number() && b.is_number();
  const bool ints = a.is_integral() && b.is_integral();
  switch (op) {
    case BinOp::Add:
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) throw Error("integer overflow");
        return Value(r);
      }
      if (nums) return Value(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
      if (a.is_list() && b.is_list() && a.list().kind == b.list().kind && a.list().kind != ListData::Kind::Generator) {
        std::vector<Value> items = a.list().items;
        items.insert(items.end(), b.list().items.begin(), b.list().items.end());
        return Value::make_list(std::move(items), a.list().kind);
      }
      if (a.is_string() || (a.is_list() && a.list().kind != ListData::Kind::Generator))
        throw Error("can only concatenate " + a.type_name() + " (not \"" + b.type_name() + "\") to " + a.type_name());
      unsupported("+", a, b);
    case BinOp::Sub:
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) throw Error("integer overflow");
        return Value(r);
      }
      if (nums) return Value(a.as_double() - b.as_double());
      unsupported("-", a, b);
    case BinOp::Mul:
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) throw Error("integer overflow");
        return Value(r);
      }
      if (nums) return Value(a.as_double() * b.as_double());
      if (is_sequence_value(a) && b.is_integral()) return repeat(a, b.as_int());
      if (a.is_integral() && is_sequence_value(b)) return repeat(b, a.as_int());
      if (is_sequence_value(a) || is_sequence_value(b))
        throw Error("can't multiply sequence by non-int of type '" + (is_sequence_value(a) ? b : a).type_name() + "'");
      unsupported("*", a, b);
    case BinOp::Div:
      if (!nums) unsupported("/", a, b);
      if (b.as_double() == 0.0) throw Error("division by zero");
      return Value(a.as_double() / b.as_double());
    case BinOp::FloorDiv:
      if (ints) {
        if (b.as_int() == 0) throw Error("integer division or modulo by zero");
        return Value(floor_div(a.as_int(), b.as_int()));
      }
      if (!nums) unsupported("//", a, b);
      if (b.as_double() == 0.0) throw Error("float floor division by zero");
      return Value(float_divmod(a.as_double(), b.as_double()).first);
    case BinOp::Mod:
      if (a.is_string()) return Value(percent_format(a.str(), b));
      if (ints) {
        if (b.as_int() == 0) throw Error("integer division or modulo by zero");
        return Value(floor_mod(a.as_int(), b.as_int()));
      }
      if (!nums) unsupported("%", a, b);
      if (b.as_double() == 0.0) throw Error("float modulo");
      return Value(float_divmod(a.as_double(), b.as_double()).second);
    case BinOp::Pow:
      if (ints && b.as_int() >= 0) {
        int64_t result = 1, base = a.as_int();
        for (int64_t e = b.as_int(); e > 0; e >>= 1) {
          if ((e & 1) && __builtin_mul_overflow(result, base, &result)) throw Error("integer overflow");
          if (e > 1 && __builtin_mul_overflow(base, base, &base)) throw Error("integer overflow");
        }
        return Value(result);
      }
      if (!nums) unsupported("** or pow()", a, b);
      if (a.as_double() == 0.0 && b.as_double() < 0) throw Error("0.0 cannot be raised to a negative power");
      if (a.as_double() < 0 && b.as_double() != std::floor(b.as_double()))
        throw Error("complex results are not supported");
      return Value(std::pow(a.as_double(), b.as_double()));
  }
  throw Error("unknown operator");
}

}  // namespace detail

Interpreter::Interpreter(const detail::Source& src, const RenderOptions& opts) : src_(src), opts_(opts) {}

std::string Interpreter::render(const Body& body, const Value& context) {
  auto globals = std::make_shared<Frame>();
  detail::add_globals(*globals);
  for (const auto& [k, v] : context.dict().items)
    if (k.is_string()) globals->set(k.str(), v);
  auto top = std::make_shared<Frame>(globals);
  keep_alive_.push_back(top);
  std::string out;
  exec(body, top, out);
  return out;
}

std::tm Interpreter::now() const {
  if (opts_.now) return *opts_.now;
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

Value Interpreter::add(const Value& a, const Value& b) { return detail::binary_op(BinOp::Add, a, b); }

Value Interpreter::filter(const std::string& name, const Value& input, CallArgs& args) {
  return detail::apply_filter(*this, name, input, args);
}

bool Interpreter::test(const std::string& name, const Value& v, CallArgs& args) {
  if (name == "odd" || name == "even" || name == "divisibleby") {
    Value divisor(int64_t{2});
    if (name == "divisibleby") {
      detail::Params p("divisibleby", args, {"num"}, 1);
      divisor = p.get(0);
    } else {
      detail::Params p(name, args, {});
    }
    const Value r = detail::binary_op(BinOp::Mod, v, divisor);
    return equals(r, Value(int64_t{name == "odd" ? 1 : 0}));
  }
  return detail::apply_test(*this, name, v, args);
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_object() && callee.object().callable()) return callee.object().call(*this, args);
  if (callee.is_undefined()) fail_undefined(callee);
  throw Error("'" + callee.type_name() + "' object is not callable");
}

Value Interpreter::getattr(const Value& obj, const std::string& name) {
  switch (obj.type()) {
    case T::Undefined: fail_undefined(obj);
    case T::String:
    case T::List:
    case T::Dict: {
      if (detail::has_method(obj, name)) {
        return Value::object(std::make_shared<NativeFunction>(
            "<built-in method " + name + " of " + obj.type_name() + " object>",
            [obj, name](Interpreter& in, CallArgs& args) { return detail::call_method(in, obj, name, args); }));
      }
      if (obj.is_dict())
        if (const Value* v = obj.dict().find_str(name)) return *v;
      return no_attribute(obj, name);
    }
    case T::Namespace:
      if (const Value* v = obj.ns().find_str(name)) return *v;
      return no_attribute(obj, name);
    case T::Object: return obj.object().attr(name);
    default: return no_attribute(obj, name);
  }
}

Value Interpreter::getitem(const Value& obj, const Value& key) {
  switch (obj.type()) {
    case T::Undefined: fail_undefined(obj);
    case T::Dict:
      if (hashable(key))
        if (const Value* v = obj.dict().find(key)) return *v;
      break;
    case T::List:
      if (key.is_integral() && obj.list().kind != ListData::Kind::Generator) {
        const auto& items = obj.list().items;
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
        return no_element(obj, key);
      }
      break;
    case T::String:
      if (key.is_integral()) {
        const std::string& s = obj.str();
        int64_t i = key.as_int();
        if (py::is_ascii(s)) {
          if (i < 0) i += static_cast<int64_t>(s.size());
          if (i >= 0 && i < static_cast<int64_t>(s.size())) return Value(s.substr(static_cast<size_t>(i), 1));
        } else {
          const std::vector<size_t> off = py::cp_offsets(s);
          const int64_t n = static_cast<int64_t>(off.size()) - 1;
          if (i < 0) i += n;
          if (i >= 0 && i < n)
            return Value(
                s.substr(off[static_cast<size_t>(i)], off[static_cast<size_t>(i) + 1] - off[static_cast<size_t>(i)]));
        }
        return no_element(obj, key);
      }
      break;
    default: break;
  }
  if (key.is_string()) return getattr(obj, key.str());
  return no_element(obj, key);
}

namespace {

// Python slice semantics (PySlice_AdjustIndices) on a str, list or tuple.
Value slice_value(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) fail_undefined(obj);
  auto bound = [](const Value& v, std::optional<int64_t>& out) {
    if (v.is_undefined()) throw Error("slice indices must be integers or None or have an __index__ method");
    if (v.is_none()) return true;
    if (!v.is_integral()) return false;
    out = v.as_int();
    return true;
  };
  std::optional<int64_t> start, stop, step;
  const bool ok = bound(start_v, start) && bound(stop_v, stop) && bound(step_v, step);
  const bool sliceable = obj.is_string() || (obj.is_list() && obj.list().kind != ListData::Kind::Generator);
  if (!ok || !sliceable) {
    return Value::undefined(object_desc(obj) + " has no element slice(" + start_v.repr() + ", " + stop_v.repr() +
                            ", " + step_v.repr() + ")");
  }
  const int64_t st = step.value_or(1);
  if (st == 0) throw Error("slice step cannot be zero");
  const bool ascii = obj.is_string() && py::is_ascii(obj.str());
  std::vector<size_t> off;
  if (obj.is_string() && !ascii) off = py::cp_offsets(obj.str());
  const int64_t n = obj.is_list() ? static_cast<int64_t>(obj.list().items.size())
                    : ascii       ? static_cast<int64_t>(obj.str().size())
                                  : static_cast<int64_t>(off.size()) - 1;
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t a = adjust(start, st < 0 ? n - 1 : 0);
  const int64_t b = adjust(stop, st < 0 ? -1 : n);
  if (obj.is_list()) {
    std::vector<Value> out;
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) out.push_back(obj.list().items[static_cast<size_t>(i)]);
    return Value::make_list(std::move(out), obj.list().kind);
  }
  const std::string& s = obj.str();
  if (st == 1) {
    if (a >= b) return Value("");
    const size_t from = ascii ? static_cast<size_t>(a) : off[static_cast<size_t>(a)];
    const size_t to = ascii ? static_cast<size_t>(b) : off[static_cast<size_t>(b)];
    return Value(s.substr(from, to - from));
  }
  std::string out;
  for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
    if (ascii) out.push_back(s[static_cast<size_t>(i)]);
    else out.append(s, off[static_cast<size_t>(i)], off[static_cast<size_t>(i) + 1] - off[static_cast<size_t>(i)]);
  }
  return Value(std::move(out));
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case T::Undefined: return false;
    case T::String:
      if (!item.is_string())
        throw Error("'in <string>' requires string as left operand, not " + item.type_name());
      return container.str().find(item.str()) != std::string::npos;
    case T::List:
      for (const Value& v : container.list().items)
        if (equals(v, item)) return true;
      return false;
    case T::Dict:
      if (!hashable(item)) throw Error("unhashable type: '" + item.type_name() + "'");
      return container.dict().find(item) != nullptr;
    default: throw Error("argument of type '" + container.type_name() + "' is not iterable");
  }
}

}  // namespace

bool Interpreter::compare(CmpOp op, const Value& a, const Value& b) {
  switch (op) {
    case CmpOp::Eq: return equals(a, b);
    case CmpOp::Ne: return !equals(a, b);
    case CmpOp::In: return contains(b, a);
    case CmpOp::NotIn: return !contains(b, a);
    default: break;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  auto check = [&](const char* sym) {
    try {
      return std::pair<bool, bool>{less_than(a, b), less_than(b, a)};
    } catch (const Error&) {
      throw Error(std::string("'") + sym + "' not supported between instances of '" + a.type_name() + "' and '" +
                  b.type_name() + "'");
    }
  };
  switch (op) {
    case CmpOp::Lt: return check("<").first;
    case CmpOp::Gt: return check(">").second;
    case CmpOp::Le: {
      const auto [lt, gt] = check("<=");
      return lt || (!gt && equals(a, b));
    }
    case CmpOp::Ge: {
      const auto [lt, gt] = check(">=");
      return gt || (!lt && equals(a, b));
    }
    default: return false;
  }
}

Value Interpreter::eval(const Expr& e, const FramePtr& f) {
  struct DepthGuard {
    int& d;
    explicit DepthGuard(int& depth) : d(depth) { ++d; }
    ~DepthGuard() { --d; }
  } guard(eval_depth_);
  try {
    if (eval_depth_ > kMaxEvalDepth) throw Error("expression nested too deeply");
    return eval_inner(e, f);
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& err) {
    src_.fail(e.offset, err.what());
  }
}

void Interpreter::eval_args(const Expr& e, const FramePtr& f, CallArgs& args) {
  args.pos.reserve(e.items.size());
  for (const auto& a : e.items) args.pos.push_back(eval(*a, f));
  if (e.dyn_args) {
    for (Value& v : iterate(eval(*e.dyn_args, f))) args.pos.push_back(std::move(v));
  }
  for (const auto& [k, a] : e.kwargs) args.kw.emplace_back(k, eval(*a, f));
  if (e.dyn_kwargs) {
    const Value d = eval(*e.dyn_kwargs, f);
    if (!d.is_dict()) throw Error("argument after ** must be a mapping, not " + d.type_name());
    for (const auto& [k, v] : d.dict().items) {
      if (!k.is_string()) throw Error("keywords must be strings");
      args.kw.emplace_back(k.str(), v);
    }
  }
}

Value Interpreter::eval_call(const Expr& e, const FramePtr& f) {
  const Expr& callee = *e.a;
  if (callee.kind == Expr::Kind::GetAttr) {
    const Value obj = eval(*callee.a, f);
    CallArgs args;
    eval_args(e, f, args);
    if ((obj.is_string() || obj.is_list() || obj.is_dict()) && detail::has_method(obj, callee.name))
      return detail::call_method(*this, obj, callee.name, args);
    return call(getattr(obj, callee.name), args);
  }
  const Value fn = eval(callee, f);
  CallArgs args;
  eval_args(e, f, args);
  return call(fn, args);
}

Value Interpreter::eval_filter(const Expr& e, const FramePtr& f, const Value* block_input) {
  Value input;
  if (!e.a) input = block_input ? *block_input : Value();
  else if (e.a->kind == Expr::Kind::Filter) input = eval_filter(*e.a, f, block_input);
  else input = eval(*e.a, f);
  try {
    CallArgs args;
    eval_args(e, f, args);
    return filter(e.name, input, args);
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& err) {
    src_.fail(e.offset, err.what());
  }
}

Value Interpreter::eval_inner(const Expr& e, const FramePtr& f) {
  switch (e.kind) {
    case Expr::Kind::Const: return e.value;
    case Expr::Kind::Name:
      if (const Value* v = f->lookup(e.name)) return *v;
      return Value::undefined("'" + e.name + "' is undefined");
    case Expr::Kind::NsRef: throw Error("a namespace reference can only be assigned to");
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const auto& it : e.items) items.push_back(eval(*it, f));
      return Value::make_list(std::move(items),
                              e.kind == Expr::Kind::Tuple ? ListData::Kind::Tuple : ListData::Kind::List);
    }
    case Expr::Kind::Dict: {
      Value d = Value::make_dict();
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], f);
        if (!hashable(k)) throw Error("unhashable type: '" + k.type_name() + "'");
        d.dict().set(k, eval(*e.items[i + 1], f));
      }
      return d;
    }
    case Expr::Kind::GetAttr: return getattr(eval(*e.a, f), e.name);
    case Expr::Kind::GetItem: {
      const Value obj = eval(*e.a, f);
      return getitem(obj, eval(*e.b, f));
    }
    case Expr::Kind::Slice: {
      const Value obj = eval(*e.a, f);
      const Value start = e.b ? eval(*e.b, f) : Value::none();
      const Value stop = e.c ? eval(*e.c, f) : Value::none();
      const Value step = e.d ? eval(*e.d, f) : Value::none();
      return slice_value(obj, start, stop, step);
    }
    case Expr::Kind::Call: return eval_call(e, f);
    case Expr::Kind::Filter: return eval_filter(e, f, nullptr);
    case Expr::Kind::Test: {
      const Value v = eval(*e.a, f);
      CallArgs args;
      eval_args(e, f, args);
      return Value(test(e.name, v, args));
    }
    case Expr::Kind::Not: return Value(!eval(*e.a, f).truthy());
    case Expr::Kind::Neg:
    case Expr::Kind::Pos: {
      const Value v = eval(*e.a, f);
      if (v.is_undefined()) fail_undefined(v);
      const bool neg = e.kind == Expr::Kind::Neg;
      if (v.is_integral()) {
        if (neg && v.as_int() == INT64_MIN) throw Error("integer overflow");
        return Value(neg ? -v.as_int() : v.as_int());
      }
      if (v.is_float()) return Value(neg ? -v.as_double() : v.as_double());
      throw Error(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" + v.type_name() + "'");
    }
    case Expr::Kind::Binary: {
      const Value a = eval(*e.a, f);
      return detail::binary_op(e.op, a, eval(*e.b, f));
    }
    case Expr::Kind::Concat: {
      std::string s;
      for (const auto& it : e.items) append_text(s, eval(*it, f));
      return Value(std::move(s));
    }
    case Expr::Kind::Compare: {
      Value left = eval(*e.a, f);
      for (size_t i = 0; i < e.cmp.size(); ++i) {
        Value right = eval(*e.items[i], f);
        if (!compare(e.cmp[i], left, right)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case Expr::Kind::And: {
      Value l = eval(*e.a, f);
      if (!l.truthy()) return l;
      return eval(*e.b, f);
    }
    case Expr::Kind::Or: {
      Value l = eval(*e.a, f);
      if (l.truthy()) return l;
      return eval(*e.b, f);
    }
    case Expr::Kind::Cond:
      if (eval(*e.a, f).truthy()) return eval(*e.b, f);
      if (e.c) return eval(*e.c, f);
      return Value::undefined("the inline if-expression on line " + std::to_string(src_.location(e.offset).first) +
                              " evaluated to false and no else section was defined.");
  }
  throw Error("unknown expression");
}

void Interpreter::assign(const Expr& target, const Value& v, const FramePtr& f) {
  switch (target.kind) {
    case Expr::Kind::Name: f->set(target.name, v); return;
    case Expr::Kind::NsRef: {
      const Value* ns = f->lookup(target.name);
      if (ns == nullptr || !ns->is_namespace()) throw Error("cannot assign attribute on non-namespace object");
      ns->ns().set(Value(target.attr), v);
      return;
    }
    case Expr::Kind::Tuple: {
      const std::vector<Value> items = iterate(v);
      const size_t n = target.items.size();
      if (items.size() < n)
        throw Error("not enough values to unpack (expected " + std::to_string(n) + ", got " +
                    std::to_string(items.size()) + ")");
      if (items.size() > n) throw Error("too many values to unpack (expected " + std::to_string(n) + ")");
      for (size_t i = 0; i < n; ++i) assign(*target.items[i], items[i], f);
      return;
    }
    default: throw Error("can't assign to this expression");
  }
}

Value Interpreter::call_macro(const MacroDef& def, const FramePtr& closure, CallArgs& args) {
  struct DepthGuard {
    int& d;
    explicit DepthGuard(int& depth) : d(depth) { ++d; }
    ~DepthGuard() { --d; }
  } guard(depth_);
  if (depth_ > kMaxMacroDepth) throw Error("maximum recursion depth exceeded (macro '" + def.name + "')");
  auto frame = std::make_shared<Frame>(closure);
  const size_t np = def.params.size();
  const size_t npos = std::min(args.pos.size(), np);
  std::vector<bool> bound(np, false);
  for (size_t i = 0; i < npos; ++i) {
    frame->set(def.params[i], args.pos[i]);
    bound[i] = true;
  }
  if (args.pos.size() > np && !def.uses_varargs)
    throw Error("macro '" + def.name + "' takes not more than " + std::to_string(np) + " argument(s)");
  Value kwargs = Value::make_dict();
  Value caller = Value::undefined("No caller defined");
  for (auto& [k, v] : args.kw) {
    size_t j = npos;
    while (j < np && def.params[j] != k) ++j;
    if (j < np && !bound[j]) {
      frame->set(k, v);
      bound[j] = true;
    } else if (k == "caller" && def.uses_caller) {
      caller = v;
    } else if (def.uses_kwargs) {
      kwargs.dict().set(Value(k), v);
    } else {
      throw Error("macro '" + def.name + "' takes no keyword argument '" + k + "'");
    }
  }
  const size_t first_default = np - def.defaults.size();
  for (size_t j = 0; j < np; ++j) {
    if (bound[j]) continue;
    if (j >= first_default) frame->set(def.params[j], eval(*def.defaults[j - first_default], frame));
    else frame->set(def.params[j], Value::undefined("parameter '" + def.params[j] + "' was not provided"));
  }
  if (def.uses_varargs)
    frame->set("varargs", Value::make_tuple(args.pos.size() > np
                                                ? std::vector<Value>(args.pos.begin() + static_cast<std::ptrdiff_t>(np),
                                                                     args.pos.end())
                                                : std::vector<Value>{}));
  if (def.uses_kwargs) frame->set("kwargs", kwargs);
  if (def.uses_caller) frame->set("caller", caller);
  std::string out;
  exec(def.body, frame, out);
  return Value(std::move(out));
}

std::string Interpreter::run_loop(const Stmt& s, const Value& iterable, const FramePtr& frame, int depth) {
  std::string out;
  loop(s, iterable, frame, out, depth);
  return out;
}

Interpreter::Flow Interpreter::loop(const Stmt& s, const Value& iterable, const FramePtr& f, std::string& out,
                                    int depth) {
  std::vector<Value> items = iterate(iterable);
  if (s.cond) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto tmp = std::make_shared<Frame>(f);
      assign(*s.target, item, tmp);
      if (eval(*s.cond, tmp).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  // As jinja2 compiles for-else: the else body runs unless some iteration ran its body to the
  // end (an iteration left by break or continue does not count).
  bool completed = false;
  auto shared = std::make_shared<const std::vector<Value>>(std::move(items));
  auto changed = std::make_shared<LoopObject::Changed>();
  for (size_t i = 0; i < shared->size(); ++i) {
    auto frame = std::make_shared<Frame>(f);
    assign(*s.target, (*shared)[i], frame);
    frame->set("loop", Value::object(std::make_shared<LoopObject>(shared, i, depth, changed,
                                                                   s.recursive ? &s : nullptr, f)));
    const Flow flow = exec(s.body, frame, out);
    if (flow == Flow::Break) break;
    if (flow == Flow::Normal) completed = true;
  }
  if (completed || s.else_body.empty()) return Flow::Normal;
  auto inner = std::make_shared<Frame>(f);
  return exec(s.else_body, inner, out);
}

Interpreter::Flow Interpreter::exec(const Body& body, const FramePtr& f, std::string& out) {
  for (const auto& s : body) {
    const Flow flow = exec_stmt(*s, f, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const FramePtr& f, std::string& out) {
  try {
    return exec_stmt_inner(s, f, out);
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& err) {
    src_.fail(s.offset, err.what());
  }
}

Interpreter::Flow Interpreter::exec_stmt_inner(const Stmt& s, const FramePtr& f, std::string& out) {
  switch (s.kind) {
    case Stmt::Kind::Text: out += s.text; return Flow::Normal;
    case Stmt::Kind::Print: append_text(out, eval(*s.expr, f)); return Flow::Normal;
    case Stmt::Kind::If:
      for (const auto& [cond, body] : s.branches)
        if (eval(*cond, f).truthy()) return exec(body, f, out);
      return exec(s.else_body, f, out);
    case Stmt::Kind::For: return loop(s, eval(*s.expr, f), f, out, 0);
    case Stmt::Kind::Set: assign(*s.target, eval(*s.expr, f), f); return Flow::Normal;
    case Stmt::Kind::SetBlock: {
      auto inner = std::make_shared<Frame>(f);
      std::string text;
      exec(s.body, inner, text);
      Value v(std::move(text));
      if (s.filter) v = eval_filter(*s.filter, f, &v);
      assign(*s.target, v, f);
      return Flow::Normal;
    }
    case Stmt::Kind::Macro:
      keep_alive_.push_back(f);
      f->set(s.macro->name, Value::object(std::make_shared<MacroObject>(s.macro, f)));
      return Flow::Normal;
    case Stmt::Kind::CallBlock: {
      keep_alive_.push_back(f);
      const Expr& call_expr = *s.expr;
      const Expr& callee = *call_expr.a;
      Value fn;
      if (callee.kind == Expr::Kind::GetAttr) fn = getattr(eval(*callee.a, f), callee.name);
      else fn = eval(callee, f);
      CallArgs args;
      eval_args(call_expr, f, args);
      args.kw.emplace_back("caller", Value::object(std::make_shared<MacroObject>(s.macro, f)));
      append_text(out, call(fn, args));
      return Flow::Normal;
    }
    case Stmt::Kind::FilterBlock: {
      auto inner = std::make_shared<Frame>(f);
      std::string text;
      exec(s.body, inner, text);
      const Value v(std::move(text));
      append_text(out, eval_filter(*s.filter, f, &v));
      return Flow::Normal;
    }
    case Stmt::Kind::Break: return Flow::Break;
    case Stmt::Kind::Continue: return Flow::Continue;
    case Stmt::Kind::Scope: {
      auto inner = std::make_shared<Frame>(f);
      for (const auto& [target, value] : s.assigns) assign(*target, eval(*value, f), inner);
      return exec(s.body, inner, out);
    }
  }
  return Flow::Normal;
}

}  // namespace hearth::chat

// The Jinja parser: statements and expressions with jinja2's grammar and precedence
// (condexpr < or < and < not < comparisons < + - < ~ < * / // % < ** < unary < postfix/filters).
#include <set>

#include "chat/jinja_ast.h"

namespace hearth::chat::detail {

namespace {

// Filters and tests jinja2 knows; a name outside these lists fails at parse time as in jinja2
// (where unknown names fail when the template is compiled).
const std::set<std::string, std::less<>> kJinjaFilters = {
    "abs",         "attr",    "batch",    "capitalize", "center",     "count",     "d",       "default",
    "dictsort",    "e",       "escape",   "filesizeformat", "first",  "float",     "forceescape", "format",
    "groupby",     "indent",  "int",      "items",      "join",       "last",      "length",  "list",
    "lower",       "map",     "max",      "min",        "pprint",     "random",    "reject",  "rejectattr",
    "replace",     "reverse", "round",    "safe",       "select",     "selectattr", "slice",  "sort",
    "string",      "striptags", "sum",    "title",      "tojson",     "trim",      "truncate", "unique",
    "upper",       "urlencode", "urlize", "wordcount",  "wordwrap",   "xmlattr"};
const std::set<std::string, std::less<>> kJinjaTests = {
    "!=",      "<",       "<=",        "==",     ">",        ">=",      "boolean",     "callable", "defined",
    "divisibleby", "eq",  "equalto",   "escaped", "even",    "false",   "filter",      "float",    "ge",
    "greaterthan", "gt",  "in",        "integer", "iterable", "le",     "lessthan",    "lower",    "lt",
    "mapping", "ne",      "none",      "number", "odd",      "sameas",  "sequence",    "string",   "test",
    "true",    "undefined", "upper"};

// jinja2's names for token kinds in messages ("end of print statement").
std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::VarEnd: return "end of print statement";
    case Tok::BlockEnd: return "end of statement block";
    case Tok::VarBegin: return "begin of print statement";
    case Tok::BlockBegin: return "begin of statement block";
    case Tok::Eof: return "end of template";
    case Tok::Data: return "template data";
    case Tok::String: return "string";
    case Tok::Int: return "integer";
    case Tok::Float: return "float";
    default: return t.text;
  }
}

class Parser {
 public:
  Parser(const Source& src, std::vector<Token> toks) : src_(src), toks_(std::move(toks)) {}

  Body parse_template() {
    Body body = subparse({});
    if (cur().type != Tok::Eof) fail("unexpected " + describe(cur()));
    return body;
  }

 private:
  const Source& src_;
  std::vector<Token> toks_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;  // depth of nested expressions and blocks being parsed
  std::vector<MacroDef*> macros_;  // macros (and call blocks) being parsed, innermost last
  std::vector<std::pair<std::string, std::vector<std::string>>> blocks_;  // open blocks and their end tags

  const Token& cur() const { return toks_[i_]; }
  const Token& look(size_t n = 1) const { return toks_[std::min(i_ + n, toks_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  [[noreturn]] void fail(const std::string& msg) const { src_.fail(cur().offset, msg); }
  [[noreturn]] void fail_at(size_t offset, const std::string& msg) const { src_.fail(offset, msg); }

  bool is_op(std::string_view op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected token '" + std::string(op) + "', got '" + describe(cur()) + "'");
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail("expected token 'name', got '" + describe(cur()) + "'");
    std::string n = cur().text;
    advance();
    return n;
  }
  void expect(Tok type, const std::string& what) {
    if (cur().type != type) {
      if (cur().type == Tok::Eof) fail("unexpected end of template, expected '" + what + "'.");
      fail("expected token '" + what + "', got '" + describe(cur()) + "'");
    }
    advance();
  }

  ExprPtr node(Expr::Kind k, size_t off) { return std::make_unique<Expr>(k, off); }

  // Bounds the parser's recursion (and so the interpreter's) on hostile input.
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting) p.fail("the template is nested too deeply");
    }
    ~Nest() { --p.nesting_; }
  };
  static constexpr int kMaxNesting = 200;

  // ---- statements -------------------------------------------------------------------------

  // Parses until a block tag whose name is in `end`; leaves that name as the current token.
  Body subparse(const std::vector<std::string>& end) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        auto s = std::make_unique<Stmt>(Stmt::Kind::Text, t.offset);
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == Tok::VarBegin) {
        const size_t off = t.offset;
        advance();
        auto s = std::make_unique<Stmt>(Stmt::Kind::Print, off);
        s->expr = parse_tuple(false, true, {}, false);
        expect(Tok::VarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        advance();
        if (cur().type == Tok::Name)
          for (const std::string& e : end)
            if (cur().text == e) return body;
        parse_statement(body);
        expect(Tok::BlockEnd, "end of statement block");
      } else if (t.type == Tok::Eof) {
        if (!end.empty()) fail_eof();
        return body;
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  std::string looking_for() const {
    if (blocks_.empty()) return "";
    std::string s = " Jinja was looking for the following tags: ";
    const auto& ends = blocks_.back().second;
    for (size_t k = 0; k < ends.size(); ++k) s += (k ? " or '" : "'") + ends[k] + "'";
    return s + ". The innermost block that needs to be closed is '" + blocks_.back().first + "'.";
  }

  [[noreturn]] void fail_eof() const { fail("Unexpected end of template." + looking_for()); }

  // The body of a block statement: the rest of the opening tag must be empty.
  Body parse_block_body(const std::string& tag, std::vector<std::string> end) {
    Nest nest(*this);
    expect(Tok::BlockEnd, "end of statement block");
    blocks_.emplace_back(tag, end);
    Body body = subparse(end);
    blocks_.pop_back();
    return body;
  }

  void parse_statement(Body& out) {
    if (cur().type != Tok::Name) fail("tag name expected");
    const std::string tag = cur().text;
    const size_t off = cur().offset;
    if (tag == "for") return out.push_back(parse_for());
    if (tag == "if") return out.push_back(parse_if());
    if (tag == "set") return out.push_back(parse_set());
    if (tag == "macro") return out.push_back(parse_macro());
    if (tag == "call") return out.push_back(parse_call_block());
    if (tag == "filter") return out.push_back(parse_filter_block());
    if (tag == "with") return out.push_back(parse_with());
    if (tag == "generation") {
      advance();
      auto s = std::make_unique<Stmt>(Stmt::Kind::Scope, off);
      s->body = parse_block_body("generation", {"endgeneration"});
      advance();
      return out.push_back(std::move(s));
    }
    if (tag == "print") {
      advance();
      for (bool first = true; cur().type != Tok::BlockEnd; first = false) {
        if (!first) expect_op(",");
        auto s = std::make_unique<Stmt>(Stmt::Kind::Print, off);
        s->expr = parse_expression(true);
        out.push_back(std::move(s));
      }
      return;
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside loop");
      advance();
      return out.push_back(std::make_unique<Stmt>(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, off));
    }
    if (tag == "include" || tag == "import" || tag == "from" || tag == "extends" || tag == "block" ||
        tag == "autoescape")
      fail("the '" + tag + "' tag is not supported in chat templates");
    std::string msg = "Encountered unknown tag '" + tag + "'.";
    if (!blocks_.empty()) msg += looking_for();
    fail(msg);
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::For, cur().offset);
    advance();
    s->target = parse_assign_target({"in"}, false);
    if (!skip_name("in")) fail("expected token 'in', got '" + describe(cur()) + "'");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->cond = parse_expression(true);
    if (skip_name("recursive")) s->recursive = true;
    ++loop_depth_;
    s->body = parse_block_body("for", {"endfor", "else"});
    --loop_depth_;
    if (skip_name("else")) {
      s->else_body = parse_block_body("for", {"endfor"});
    }
    advance();  // endfor
    return s;
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::If, cur().offset);
    advance();
    while (true) {
      ExprPtr cond = parse_tuple(false, false, {}, false);
      Body body = parse_block_body("if", {"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (skip_name("elif")) continue;
      if (skip_name("else")) {
        s->else_body = parse_block_body("if", {"endif"});
      }
      advance();  // endif
      return s;
    }
  }

  StmtPtr parse_set() {
    const size_t off = cur().offset;
    advance();
    ExprPtr target = parse_assign_target({}, true);
    if (skip_op("=")) {
      auto s = std::make_unique<Stmt>(Stmt::Kind::Set, off);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    auto s = std::make_unique<Stmt>(Stmt::Kind::SetBlock, off);
    if (target->kind != Expr::Kind::Name && target->kind != Expr::Kind::NsRef)
      fail_at(target->offset, "can't assign a block to a tuple");
    s->target = std::move(target);
    if (is_op("|")) s->filter = parse_filter(nullptr, false);
    s->body = parse_block_body("set", {"endset"});
    advance();
    return s;
  }

  void parse_signature(MacroDef& m) {
    expect_op("(");
    while (!is_op(")")) {
      if (!m.params.empty()) expect_op(",");
      m.params.push_back(expect_name());
      if (skip_op("=")) {
        m.defaults.push_back(parse_expression(true));
      } else if (!m.defaults.empty()) {
        fail("non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  Body parse_macro_body(MacroDef& m, const std::string& tag, const std::string& end) {
    macros_.push_back(&m);
    const int saved = loop_depth_;
    loop_depth_ = 0;
    Body body = parse_block_body(tag, {end});
    loop_depth_ = saved;
    macros_.pop_back();
    advance();
    return body;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::Macro, cur().offset);
    advance();
    s->macro = std::make_shared<MacroDef>();
    s->macro->offset = s->offset;
    s->macro->name = expect_name();
    parse_signature(*s->macro);
    s->macro->body = parse_macro_body(*s->macro, "macro", "endmacro");
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::CallBlock, cur().offset);
    advance();
    s->macro = std::make_shared<MacroDef>();
    s->macro->name = "caller";
    s->macro->offset = s->offset;
    if (is_op("(")) parse_signature(*s->macro);
    s->expr = parse_expression(true);
    if (s->expr->kind != Expr::Kind::Call) fail_at(s->offset, "expected call");
    s->macro->body = parse_macro_body(*s->macro, "call", "endcall");
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::FilterBlock, cur().offset);
    advance();
    s->filter = parse_filter(nullptr, true);
    s->body = parse_block_body("filter", {"endfilter"});
    advance();
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<Stmt>(Stmt::Kind::Scope, cur().offset);
    advance();
    while (cur().type != Tok::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      ExprPtr target = parse_assign_target({}, false);
      expect_op("=");
      s->assigns.emplace_back(std::move(target), parse_expression(true));
    }
    s->body = parse_block_body("with", {"endwith"});
    advance();
    return s;
  }

  // A name, a tuple of names, or (for set) ns.attr.
  ExprPtr parse_assign_target(const std::vector<std::string>& extra_end, bool with_namespace) {
    ExprPtr t = parse_tuple(true, true, extra_end, false, with_namespace);
    check_assignable(*t);
    return t;
  }

  void check_assignable(const Expr& e) const {
    if (e.kind == Expr::Kind::Name || e.kind == Expr::Kind::NsRef) {
      if (e.kind == Expr::Kind::Name && (e.name == "true" || e.name == "false" || e.name == "none"))
        fail_at(e.offset, "can't assign to '" + e.name + "'");
      return;
    }
    if (e.kind == Expr::Kind::Tuple) {
      for (const auto& it : e.items) check_assignable(*it);
      return;
    }
    fail_at(e.offset, "can't assign to this expression");
  }

  // ---- expressions ------------------------------------------------------------------------

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    const Token& t = cur();
    if (t.type == Tok::VarEnd || t.type == Tok::BlockEnd || t.type == Tok::Eof) return true;
    if (t.type == Tok::Op && t.text == ")") return true;
    if (t.type == Tok::Name)
      for (const std::string& e : extra_end)
        if (t.text == e) return true;
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                      bool explicit_parens, bool with_namespace = false) {
    const size_t off = cur().offset;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    auto t = node(Expr::Kind::Tuple, off);
    t->items = std::move(args);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest nest(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const size_t off = cur().offset;
      advance();
      auto c = node(Expr::Kind::Cond, off);
      c->a = parse_or();
      c->b = std::move(e);
      if (skip_name("else")) c->c = parse_condexpr();
      e = std::move(c);
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto n = node(Expr::Kind::Or, cur().offset);
      advance();
      n->a = std::move(left);
      n->b = parse_and();
      left = std::move(n);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto n = node(Expr::Kind::And, cur().offset);
      advance();
      n->a = std::move(left);
      n->b = parse_not();
      left = std::move(n);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest nest(*this);
      auto n = node(Expr::Kind::Not, cur().offset);
      advance();
      n->a = parse_not();
      return n;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const size_t off = cur().offset;
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    while (true) {
      CmpOp op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        const std::string& t = cur().text;
        op = t == "==" ? CmpOp::Eq : t == "!=" ? CmpOp::Ne : t == "<" ? CmpOp::Lt : t == "<=" ? CmpOp::Le
             : t == ">" ? CmpOp::Gt : CmpOp::Ge;
        advance();
      } else if (is_name("in")) {
        op = CmpOp::In;
        advance();
      } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
        op = CmpOp::NotIn;
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(Expr::Kind::Compare, off);
        cmp->a = std::move(e);
      }
      cmp->cmp.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }

  ExprPtr binary(BinOp op, ExprPtr l, ExprPtr r, size_t off) {
    auto n = node(Expr::Kind::Binary, off);
    n->op = op;
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const BinOp op = cur().text == "+" ? BinOp::Add : BinOp::Sub;
      const size_t off = cur().offset;
      advance();
      left = binary(op, std::move(left), parse_concat(), off);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const size_t off = cur().offset;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto n = node(Expr::Kind::Concat, off);
    n->items.push_back(std::move(first));
    while (skip_op("~")) n->items.push_back(parse_math2());
    return n;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string& t = cur().text;
      const BinOp op = t == "*" ? BinOp::Mul : t == "/" ? BinOp::Div : t == "//" ? BinOp::FloorDiv : BinOp::Mod;
      const size_t off = cur().offset;
      advance();
      left = binary(op, std::move(left), parse_pow(), off);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const size_t off = cur().offset;
      advance();
      left = binary(BinOp::Pow, std::move(left), parse_unary(true), off);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr n;
    if (is_op("-") || is_op("+")) {
      Nest nest(*this);
      n = node(cur().text == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, cur().offset);
      advance();
      n->a = parse_unary(false);
    } else {
      n = parse_primary(false);
    }
    n = parse_postfix(std::move(n));
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  ExprPtr parse_primary(bool with_namespace) {
    const Token& t = cur();
    const size_t off = t.offset;
    if (t.type == Tok::Name) {
      const std::string name = t.text;
      advance();
      if (name == "true" || name == "True" || name == "false" || name == "False") {
        auto c = node(Expr::Kind::Const, off);
        c->value = Value(name == "true" || name == "True");
        return c;
      }
      if (name == "none" || name == "None") {
        auto c = node(Expr::Kind::Const, off);
        c->value = Value::none();
        return c;
      }
      if (with_namespace && is_op(".")) {
        advance();
        auto r = node(Expr::Kind::NsRef, off);
        r->name = name;
        r->attr = expect_name();
        return r;
      }
      auto n = node(Expr::Kind::Name, off);
      n->name = name;
      note_name(name);
      return n;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) {
        s += cur().text;
        advance();
      }
      auto c = node(Expr::Kind::Const, off);
      c->value = Value(std::move(s));
      return c;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      auto c = node(Expr::Kind::Const, off);
      c->value = t.type == Tok::Int ? Value(t.ival) : Value(t.fval);
      advance();
      return c;
    }
    if (is_op("(")) {
      advance();
      ExprPtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      advance();
      auto l = node(Expr::Kind::List, off);
      while (!is_op("]")) {
        if (!l->items.empty()) expect_op(",");
        if (is_op("]")) break;
        l->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      advance();
      auto d = node(Expr::Kind::Dict, off);
      while (!is_op("}")) {
        if (!d->items.empty()) expect_op(",");
        if (is_op("}")) break;
        d->items.push_back(parse_expression(true));
        expect_op(":");
        d->items.push_back(parse_expression(true));
      }
      expect_op("}");
      return d;
    }
    if (t.type == Tok::Eof) fail("unexpected end of template");
    fail("unexpected '" + describe(t) + "'");
  }

  // Records that the innermost macro reads caller, varargs or kwargs.
  void note_name(const std::string& name) {
    if (macros_.empty()) return;
    if (name == "caller") macros_.back()->uses_caller = true;
    else if (name == "varargs") macros_.back()->uses_varargs = true;
    else if (name == "kwargs") macros_.back()->uses_kwargs = true;
  }

  ExprPtr parse_postfix(ExprPtr n) {
    while (true) {
      if (is_op(".") || is_op("[")) n = parse_subscript(std::move(n));
      else if (is_op("(")) n = parse_call(std::move(n));
      else return n;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr n) {
    while (true) {
      if (is_op("|")) n = parse_filter(std::move(n), false);
      else if (is_name("is")) n = parse_test(std::move(n));
      else if (is_op("(")) n = parse_call(std::move(n));
      else return n;
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const size_t off = cur().offset;
    if (skip_op(".")) {
      if (cur().type == Tok::Name) {
        auto g = node(Expr::Kind::GetAttr, off);
        g->a = std::move(obj);
        g->name = cur().text;
        advance();
        return g;
      }
      if (cur().type != Tok::Int) fail("expected name or number");
      auto g = node(Expr::Kind::GetItem, off);
      g->a = std::move(obj);
      g->b = node(Expr::Kind::Const, cur().offset);
      g->b->value = Value(cur().ival);
      advance();
      return g;
    }
    expect_op("[");
    std::vector<ExprPtr> args;
    ExprPtr slice;
    while (!is_op("]")) {
      if (!args.empty() || slice) expect_op(",");
      ExprPtr start, stop, step;
      bool is_slice = false;
      if (!is_op(":")) start = parse_expression(true);
      if (skip_op(":")) {
        is_slice = true;
        if (!is_op("]") && !is_op(",") && !is_op(":")) stop = parse_expression(true);
        if (skip_op(":"))
          if (!is_op("]") && !is_op(",")) step = parse_expression(true);
      }
      if (is_slice) {
        if (slice || !args.empty()) fail("multi-dimensional slices are not supported");
        slice = node(Expr::Kind::Slice, off);
        slice->b = std::move(start);
        slice->c = std::move(stop);
        slice->d = std::move(step);
      } else {
        if (slice) fail("multi-dimensional slices are not supported");
        args.push_back(std::move(start));
      }
    }
    expect_op("]");
    if (slice) {
      slice->a = std::move(obj);
      return slice;
    }
    if (args.empty()) fail_at(off, "expected subscript expression");
    auto g = node(Expr::Kind::GetItem, off);
    g->a = std::move(obj);
    if (args.size() == 1) {
      g->b = std::move(args[0]);
    } else {
      g->b = node(Expr::Kind::Tuple, off);
      g->b->items = std::move(args);
    }
    return g;
  }

  // "(" args ")" into n's items/kwargs/dyn_args/dyn_kwargs.
  void parse_call_args(Expr& n) {
    const size_t off = cur().offset;
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (skip_op("*")) {
        if (n.dyn_args || n.dyn_kwargs) fail_at(off, "invalid syntax for function call expression");
        n.dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        if (n.dyn_kwargs) fail_at(off, "invalid syntax for function call expression");
        n.dyn_kwargs = parse_expression(true);
      } else if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
        if (n.dyn_kwargs) fail_at(off, "invalid syntax for function call expression");
        std::string key = cur().text;
        for (const auto& kw : n.kwargs)
          if (kw.first == key) fail("keyword argument repeated: " + key);
        advance();
        advance();
        n.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (n.dyn_args || n.dyn_kwargs || !n.kwargs.empty())
          fail_at(off, "invalid syntax for function call expression");
        n.items.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(Expr::Kind::Call, callee->offset);
    c->a = std::move(callee);
    parse_call_args(*c);
    return c;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (is_op(".")) {
      advance();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr n, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) advance();
      start_inline = false;
      const size_t off = cur().offset;
      auto f = node(Expr::Kind::Filter, off);
      f->name = dotted_name();
      if (!kJinjaFilters.count(f->name)) fail_at(off, "No filter named '" + f->name + "'.");
      if (is_op("(")) parse_call_args(*f);
      f->a = std::move(n);
      n = std::move(f);
    }
    return n;
  }

  ExprPtr parse_test(ExprPtr n) {
    const size_t off = cur().offset;
    advance();  // is
    const bool negated = skip_name("not");
    auto t = node(Expr::Kind::Test, off);
    const size_t name_off = cur().offset;
    t->name = dotted_name();
    if (!kJinjaTests.count(t->name)) fail_at(name_off, "No test named '" + t->name + "'.");
    if (is_op("(")) {
      parse_call_args(*t);
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      t->items.push_back(parse_postfix(parse_primary(false)));
    }
    t->a = std::move(n);
    if (!negated) return t;
    auto neg = node(Expr::Kind::Not, off);
    neg->a = std::move(t);
    return neg;
  }
};

}  // namespace

Body parse(const Source& src, std::vector<Token> tokens) { return Parser(src, std::move(tokens)).parse_template(); }

}  // namespace hearth::chat::detail

// Internals of the Jinja interpreter: the source text with its line table, the tokens of the
// lexer and the syntax tree the parser builds and the interpreter walks.
// Source: jinja2 3.1 lexer (token kinds, whitespace control) and parser (grammar, precedence).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/template.h"
#include "chat/value.h"

namespace hearth::chat::detail {

/// The template text after newline normalization (\r\n and \r become \n, one trailing newline
/// dropped, as jinja2 does), with what errors need to name a position.
struct Source {
  std::string name;
  std::string text;
  std::vector<size_t> line_starts;  // byte offset of each line

  Source(std::string name, std::string_view raw);
  /// 1-based line and column (in code points) of byte `offset`.
  std::pair<int, int> location(size_t offset) const;
  /// Throws TemplateError at `offset`.
  [[noreturn]] void fail(size_t offset, const std::string& message) const;
};

enum class Tok : uint8_t { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type = Tok::Eof;
  std::string text;  // Data text, Name, decoded String, Op spelling
  int64_t ival = 0;
  double fval = 0;
  size_t offset = 0;  // byte offset in Source::text
};

/// Splits the source into data and tag tokens, applying whitespace control ({%- -%} {{- -}} {#- -#},
/// {%+ +%}, trim_blocks, lstrip_blocks) and removing comments and {% raw %} markers. Throws
/// TemplateError for an unterminated tag, comment, raw block or string, or a stray character.
std::vector<Token> lex(const Source& src, const ParseOptions& opts);

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class BinOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };
enum class CmpOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

/// One expression node.
struct Expr {
  enum class Kind : uint8_t {
    Const,     // value
    Name,      // name
    NsRef,     // name.attr as an assignment target
    List,      // items
    Tuple,     // items
    Dict,      // items: key, value, key, value ...
    GetAttr,   // a.name
    GetItem,   // a[b]
    Slice,     // a[b:c:d] (null parts are omitted bounds)
    Call,      // a(items..., kwargs..., *dyn_args, **dyn_kwargs)
    Filter,    // a|name(items..., kwargs...); a is null in a filter block or block set
    Test,      // a is name(items..., kwargs...)
    Not,       // not a
    Neg,       // -a
    Pos,       // +a
    Binary,    // a op b
    Concat,    // items joined with ~
    Compare,   // a cmp[0] items[0] cmp[1] items[1] ...
    And,       // a and b
    Or,        // a or b
    Cond,      // b if a else c (c may be null)
  };
  Kind kind;
  size_t offset;
  Value value;
  std::string name, attr;
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;
  BinOp op = BinOp::Add;
  std::vector<CmpOp> cmp;

  Expr(Kind k, size_t off) : kind(k), offset(off) {}
};

/// A macro (or the body of a call block, which becomes `caller`).
struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  Body body;
  bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
  size_t offset = 0;
};

/// One statement node.
struct Stmt {
  enum class Kind : uint8_t {
    Text,         // text
    Print,        // {{ expr }}
    If,           // branches (condition, body) ..., else_body
    For,          // for target in expr [if cond] body [else else_body]
    Set,          // set target = expr
    SetBlock,     // set target [| filter] body endset
    Macro,        // macro
    CallBlock,    // call [(params)] expr body endcall (macro holds params and body)
    FilterBlock,  // filter expr(filter chain with null input) body endfilter
    Break,
    Continue,
    Scope,        // body in an inner scope: {% generation %}; {% with %} (targets/values)
  };
  Kind kind;
  size_t offset;
  std::string text;
  ExprPtr target, expr, cond, filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::shared_ptr<MacroDef> macro;
  std::vector<std::pair<ExprPtr, ExprPtr>> assigns;  // {% with a = 1, b = 2 %}
  bool recursive = false;

  Stmt(Kind k, size_t off) : kind(k), offset(off) {}
};

/// A parsed template.
struct Program {
  std::unique_ptr<Source> source;
  Body body;
};

/// Parses the tokens of `src`. Throws TemplateError for syntax errors (jinja2's wording where it
/// has one: "Encountered unknown tag 'x'.", "Unexpected end of template ...").
Body parse(const Source& src, std::vector<Token> tokens);

}  // namespace hearth::chat::detail

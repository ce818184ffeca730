// Jinja chat templates: parse once, render with a context of Python-like values.
//
// The interpreter covers the subset of Jinja (jinja2 3.1) that Hugging Face chat templates use,
// configured as transformers' apply_chat_template configures jinja2: trim_blocks and
// lstrip_blocks on, the loop controls (break/continue) and the {% generation %} tag, the filter
// tojson as Python's json.dumps (ensure_ascii=False by default) and the globals
// raise_exception(msg) and strftime_now(fmt).
// Source: jinja2 3.1 documentation (Template Designer Documentation) and its observed behaviour;
// ../shared/testdata/chat-templates/README.md for the rendering setup.
//
// Differences from Hugging Face's jinja2 (ImmutableSandboxedEnvironment), all where jinja2 would
// fail or print something no template relies on:
// - list.append/pop/insert/extend/remove/reverse/clear work (the sandbox refuses them; llama.cpp's
//   minja allows them, and templates written for it use them);
// - ints are 64-bit (an overflow is an error, not a big int); range() gives a list;
// - generators (map, select, ...) print as "<generator object>" and can be iterated more than once;
// - the filters groupby, striptags, urlize, wordwrap, xmlattr, urlencode, pprint, filesizeformat
//   and random, and the include/import/extends/block/autoescape tags, are errors;
// - case mapping covers Latin, Greek, Cyrillic and Armenian, not every Unicode script.
//
//     const Template t = Template::parse(source, "chat template");
//     const std::string prompt = t.render(chat_context(case_json));
#pragma once

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "chat/value.h"
#include "hearth/error.h"

namespace hearth::chat {

/// A template that failed to parse or to render. what() is "NAME:LINE:COLUMN: MESSAGE" (line and
/// column 1-based, in the template text; column in code points); message() is MESSAGE alone, e.g.
/// the text given to raise_exception().
class TemplateError : public Error {
 public:
  TemplateError(const std::string& name, int line, int column, const std::string& message);
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  int line_, column_;
  std::string message_;
};

/// How a template is lexed; the defaults are Hugging Face's.
struct ParseOptions {
  bool trim_blocks = true;    ///< drop the first newline after a block tag or comment
  bool lstrip_blocks = true;  ///< drop spaces and tabs before a block tag or comment at line start
};

/// How a template is rendered.
struct RenderOptions {
  /// The local date and time strftime_now() formats; unset means the current local time.
  std::optional<std::tm> now;
};

namespace detail {
struct Program;
}

/// A parsed template. Immutable and cheap to copy; render() may be called from several threads.
class Template {
 public:
  /// Parses `source` (UTF-8). `name` stands for the template in error messages. Throws
  /// TemplateError for a syntax error (unknown tag, unbalanced block, bad expression ...).
  static Template parse(std::string_view source, const std::string& name = "template",
                        const ParseOptions& options = {});

  /// Renders with the variables of `context` (a dict; its keys are the top-level names).
  /// Throws TemplateError naming the template line for runtime errors (raise_exception(), an
  /// attribute of an undefined value, a type error ...).
  std::string render(const Value& context, const RenderOptions& options = {}) const;

  /// The name given to parse().
  const std::string& name() const;

 private:
  Template() = default;
  std::shared_ptr<const detail::Program> program_;
};

/// The variables of one chat-template rendering from a JSON object as the conformance cases
/// (../shared/testdata/chat-templates) and `hearth template --context` hold them: the keys
/// messages, tools, add_generation_prompt, bos_token and eos_token when present, and every key of
/// its `extra` object (enable_thinking, ...) as a top-level variable. Other keys (a case's name,
/// expected text) are not variables. Throws hearth::Error if `j` (or `extra`) is not an object.
Value chat_context(const nlohmann::ordered_json& j);

/// Parses "YYYY-MM-DD" or "YYYY-MM-DD HH:MM[:SS]" into a broken-down time (weekday and day of the
/// year filled in). Throws hearth::Error naming `text` when it is not such a date.
std::tm parse_date(const std::string& text);

}  // namespace hearth::chat

// Template errors: syntax and runtime errors are TemplateErrors naming the template, line and
// column ("t:LINE:COLUMN: message", column in code points), with jinja2's wording; what jinja2
// fails on fails here too; hostile input fails cleanly.
#include <string>

#include "render_helper.h"

namespace {

using chat_test::error_of;

TEST(JinjaErrors, SyntaxErrorsNameTheirPosition) {
  EXPECT_EQ(error_of("{% for x in [1] %}\n{% endif %}"),
            "t:2:4: Encountered unknown tag 'endif'. Jinja was looking for the following tags: 'endfor' or 'else'. "
            "The innermost block that needs to be closed is 'for'.");
  EXPECT_EQ(error_of("{% if true %}x"),
            "t:1:15: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or "
            "'endif'. The innermost block that needs to be closed is 'if'.");
  EXPECT_EQ(error_of("{% foo %}"), "t:1:4: Encountered unknown tag 'foo'.");
  EXPECT_EQ(error_of("{% do x %}"), "t:1:4: Encountered unknown tag 'do'.");  // no 'do' extension in HF
  EXPECT_EQ(error_of("{{ 1 + }}"), "t:1:8: unexpected 'end of print statement'");
  EXPECT_EQ(error_of("{{ a b }}"), "t:1:6: expected token 'end of print statement', got 'b'");
  EXPECT_EQ(error_of("{{ 'abc }}"), "t:1:4: unexpected char \"'\"");
  EXPECT_EQ(error_of("{{ [1, 2 }}"), "t:1:10: unexpected '}', expected ']'");
  EXPECT_EQ(error_of("a\n{# unclosed"), "t:2:1: Missing end of comment tag");
  EXPECT_EQ(error_of("{% raw %}x"), "t:1:1: Missing end of raw directive");
  EXPECT_EQ(error_of("{% break %}"), "t:1:4: 'break' outside loop");
  EXPECT_EQ(error_of("{{ x|nofilter }}"), "t:1:6: No filter named 'nofilter'.");
  EXPECT_EQ(error_of("{{ x is notest }}"), "t:1:9: No test named 'notest'.");
  EXPECT_EQ(error_of("{{ f(a=1, a=2) }}"), "t:1:11: keyword argument repeated: a");
  EXPECT_EQ(error_of("{% include 'x.jinja' %}"), "t:1:4: the 'include' tag is not supported in chat templates");
  // A filter in a branch never taken still fails, as jinja2 checks names when compiling.
  EXPECT_EQ(error_of("{% if false %}{{ x|nope }}{% endif %}"), "t:1:20: No filter named 'nope'.");
}

TEST(JinjaErrors, RuntimeErrorsNameTheirPosition) {
  EXPECT_EQ(error_of("{{ x.y.z }}"), "t:1:5: 'x' is undefined");
  EXPECT_EQ(error_of("{{ m.a.b }}", R"({"m": {}})"), "t:1:7: 'dict object' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ n.a.b }}", R"({"n": null})"), "t:1:7: 'None' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t:1:8: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("{{ 1 / 0 }}"), "t:1:6: division by zero");
  EXPECT_EQ(error_of("{% for x in 5 %}{% endfor %}"), "t:1:4: 'int' object is not iterable");
  EXPECT_EQ(error_of("{% for x in none %}{% endfor %}"), "t:1:4: 'NoneType' object is not iterable");
  EXPECT_EQ(error_of("{{ 5|length }}"), "t:1:6: object of type 'int' has no len()");
  EXPECT_EQ(error_of("{{ [1, 'a']|sort }}"), "t:1:13: '<' not supported between instances of 'str' and 'int'");
  EXPECT_EQ(error_of("{{ 1 in 'abc' }}"), "t:1:4: 'in <string>' requires string as left operand, not int");
  EXPECT_EQ(error_of("{{ missing < 1 }}"), "t:1:4: 'missing' is undefined");
  EXPECT_EQ(error_of("{{ missing|tojson }}"), "t:1:12: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(error_of("{% set a, b = [1] %}"), "t:1:4: not enough values to unpack (expected 2, got 1)");
  EXPECT_EQ(error_of("{% set d = {} %}{% set d.x = 1 %}"), "t:1:20: cannot assign attribute on non-namespace object");
  EXPECT_EQ(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
            "t:1:34: macro 'm' takes not more than 1 argument(s)");
  EXPECT_EQ(error_of("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}"), "t:1:34: macro 'm' takes no keyword argument 'b'");
  EXPECT_EQ(error_of("{{ range(200000)|length }}"),
            "t:1:4: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  // Inside a macro, the line of the failing expression in the macro body.
  EXPECT_EQ(error_of("{% macro m(v) %}\n{{ v + 1 }}\n{% endmacro %}\n{{ m('s') }}"),
            "t:2:6: can only concatenate str (not \"int\") to str");
  // Columns count code points.
  EXPECT_EQ(error_of("é🦙 {{ x.y.z }}"), "t:1:8: 'x' is undefined");
}

TEST(JinjaErrors, RaiseExceptionPassesTheMessageThrough) {
  try {
    chat_test::render(
        "{% if messages[0].role == 'system' %}\n  {{ raise_exception('System role not supported') }}\n{% endif %}",
        R"({"messages": [{"role": "system", "content": "x"}]})");
    FAIL() << "no error";
  } catch (const hearth::chat::TemplateError& e) {
    EXPECT_EQ(e.message(), "System role not supported");
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.column(), 6);
    EXPECT_STREQ(e.what(), "t:2:6: System role not supported");
  }
  // A TemplateError is a hearth::Error.
  EXPECT_THROW(chat_test::render("{{ raise_exception('x') }}"), hearth::Error);
}

TEST(JinjaErrors, HostileTemplatesFailCleanly) {
  const std::string deep_parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(error_of(deep_parens).find("nested too deeply"), std::string::npos);
  std::string deep_blocks;
  for (int i = 0; i < 1000; ++i) deep_blocks += "{% if true %}";
  EXPECT_NE(error_of(deep_blocks).find("nested too deeply"), std::string::npos);
  std::string long_sum = "{{ 1";
  for (int i = 0; i < 5000; ++i) long_sum += " + 1";
  EXPECT_NE(error_of(long_sum + " }}").find("nested too deeply"), std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("maximum recursion depth exceeded"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 'ab' * 2000000000 }}").find("too large"), std::string::npos);
  // Every prefix of a real template either parses or fails with a TemplateError (never crashes).
  const std::string src =
      "{%- for m in messages if m.role != 'x' -%}{{ m['content'] | trim ~ (',' if not loop.last) }}"
      "{% set ns = namespace(a=[1, {'k': (2,)}]) %}{# c #}{% raw %}r{% endraw %}{%- endfor %}";
  for (size_t n = 0; n <= src.size(); ++n) {
    try {
      chat_test::render(src.substr(0, n), R"({"messages": [{"role": "user", "content": " a "}]})");
    } catch (const hearth::chat::TemplateError&) {
    }
  }
}

TEST(JinjaErrors, ContextMustBeAnObject) {
  EXPECT_THROW(hearth::chat::chat_context(nlohmann::ordered_json::parse("[1]")), hearth::Error);
  EXPECT_THROW(hearth::chat::chat_context(nlohmann::ordered_json::parse(R"({"extra": 1})")), hearth::Error);
  const auto t = hearth::chat::Template::parse("x");
  EXPECT_THROW(t.render(hearth::chat::Value("not a dict")), hearth::Error);
}

}  // namespace

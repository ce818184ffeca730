// Jinja statements (if, for and loop.*, set, macro, call, filter, with, generation, raw,
// comments, break/continue) and whitespace control, with jinja2's results under Hugging Face's
// settings (trim_blocks and lstrip_blocks on).
#include "render_helper.h"

namespace {

using chat_test::Case;

const Case kIf[] = {
    {"if-true", R"J({% if 1 %}a{% endif %})J", R"J({})J", R"J(a)J"},
    {"if-elif", R"J({% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %})J", R"J({"x": 2})J", R"J(two)J"},
    {"if-else", R"J({% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %})J", R"J({"x": 7})J", R"J(many)J"},
    {"if-falsy-values",
     R"J({% for v in [0, 0.0, '', [], {}, none, false] %}{% if v %}T{% else %}F{% endif %}{% endfor %})J",
     R"J({})J", R"J(FFFFFFF)J"},
    {"if-truthy-values", R"J({% for v in [1, -1, 0.5, ' ', [0], {'a': 0}, true] %}{% if v %}T{% endif %}{% endfor %})J",
     R"J({})J", R"J(TTTTTTT)J"},
    {"if-undefined", R"J({% if missing %}T{% else %}F{% endif %}{% if missing is defined %}D{% endif %})J", R"J({})J",
     R"J(F)J"},
    {"if-tuple-test", R"J({% if 0, 0 %}tuple is truthy{% endif %})J", R"J({})J", R"J(tuple is truthy)J"},
};

const Case kFor[] = {
    {"for-list", R"J({% for x in xs %}[{{ x }}]{% endfor %})J", R"J({"xs": [1, "a", null]})J", R"J([1][a][None])J"},
    {"loop-counters",
R"J({% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.length }})J"
R"J( {% endfor %})J",
     R"J({})J", R"J(10323 21213 32103 )J"},
    {"loop-first-last",
     R"J({% for x in [1, 2, 3] %}{% if loop.first %}<{% endif %}{{ x }}{% if loop.last %}>{% else %},{% endif %}{%)J"
     R"J( endfor %})J",
     R"J({})J", R"J(<1,2,3>)J"},
    {"loop-prev-next", R"J({% for x in [1, 2, 3] %}({{ loop.previtem }}|{{ loop.nextitem }}){% endfor %})J", R"J({})J",
     R"J((|2)(1|3)(2|))J"},
    {"loop-prev-defined", R"J({% for x in [1, 2] %}{{ loop.previtem is defined }}{% endfor %})J", R"J({})J",
     R"J(FalseTrue)J"},
    {"loop-cycle", R"J({% for x in range(5) %}{{ loop.cycle('a', 'b', 'c') }}{% endfor %})J", R"J({})J", R"J(abcab)J"},
    {"loop-changed",
     R"J({% for x in [1, 1, 2, 2, 1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %})J",
     R"J({})J",
     R"J(121)J"},
    {"loop-depth", R"J({% for x in [1] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %})J", R"J({})J", R"J(10)J"},
    {"for-else-empty", R"J({% for x in [] %}x{% else %}empty{% endfor %})J", R"J({})J", R"J(empty)J"},
    {"for-else-undefined", R"J({% for x in nothing %}x{% else %}none{% endfor %})J", R"J({})J", R"J(none)J"},
    // jinja2 runs the else body unless an iteration reached the end of the loop body.
    {"for-else-after-break-in-first-iteration", R"J({% for x in [1, 2] %}{{ x }}{% break %}{% else %}E{% endfor %})J",
     R"J({})J", R"J(1E)J"},
    {"for-else-not-after-completed-iteration",
     R"J({% for x in [1, 2] %}{{ x }}{% if x == 2 %}{% break %}{% endif %}{% else %}E{% endfor %})J", R"J({})J",
     R"J(12)J"},
    {"for-else-after-only-continues", R"J({% for x in [1, 2] %}{% continue %}{% else %}E{% endfor %})J", R"J({})J",
     R"J(E)J"},
    {"for-inline-if",
     R"J({% for x in range(10) if x is odd %}{{ x }}{{ '/' ~ loop.length if loop.last }}{% endfor %})J",
     R"J({})J", R"J(13579/5)J"},
    {"for-inline-if-else", R"J({% for x in [1, 2] if x > 5 %}x{% else %}no match{% endfor %})J", R"J({})J",
     R"J(no match)J"},
    {"for-unpack-items", R"J({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %})J", R"J({"d": {"z": 1, "a": 2}})J",
     R"J(z=1;a=2;)J"},
    {"for-dict-keys-in-order", R"J({% for k in d %}{{ k }}{% endfor %})J", R"J({"d": {"b": 1, "c": 2, "a": 3}})J",
     R"J(bca)J"},
    {"for-nested-unpack", R"J({% for (a, b), c in [((1, 2), 3), ((4, 5), 6)] %}{{ a + b + c }} {% endfor %})J",
     R"J({})J", R"J(6 15 )J"},
    {"for-string-code-points", R"J({% for c in 'añ🦙' %}<{{ c }}>{% endfor %})J", R"J({})J", R"J(<a><ñ><🦙>)J"},
    {"for-break-continue",
R"J({% for x in range(10) %}{% if x % 2 %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{%)J"
R"J( endfor %})J",
     R"J({})J", R"J(0246)J"},
    {"nested-loop-vars",
     R"J({% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{%)J"
     R"J( endfor %})J",
     R"J({})J", R"J(1x1 1y2 1|2x1 2y2 2|)J"},
    {"loop-var-gone-after", R"J({% for x in [1] %}{% endfor %}[{{ x }}][{{ loop }}])J", R"J({})J", R"J([][])J"},
    {"recursive-loop",
     R"J({% for n in tree recursive %}{{ n.name }}{% if n.kids %}({{ loop(n.kids) }}){% endif %}{% endfor %})J",
     R"J({"tree": [{"name": "a", "kids": [{"name": "b"}, {"name": "c", "kids": [{"name": "d"}]}]}, {"name": "e"}]})J",
     R"J(a(bc(d))e)J"},
    {"break-inner-only",
     R"J({% for a in [1, 2] %}{% for b in [1, 2, 3] %}{% if b == 2 %}{% break %}{% endif %}{{ a }}{{ b }} {%)J"
     R"J( endfor %}{% endfor %})J",
     R"J({})J", R"J(11 21 )J"},
};

const Case kSet[] = {
    {"set-simple", R"J({% set x = 'v' %}{{ x }})J", R"J({})J", R"J(v)J"},
    {"set-tuple-unpack", R"J({% set a, b = 1, 2 %}{{ b }}{{ a }})J", R"J({})J", R"J(21)J"},
    {"set-tuple-value", R"J({% set t = 1, 'x' %}{{ t }})J", R"J({})J", R"J((1, 'x'))J"},
    {"set-shadows-context", R"J({% set messages = messages[1:] %}{{ messages|length }})J",
     R"J({"messages": [1, 2, 3]})J", R"J(2)J"},
    {"set-in-if-visible", R"J({% if true %}{% set y = 3 %}{% endif %}{{ y }})J", R"J({})J", R"J(3)J"},
    {"set-in-loop-does-not-leak",
     R"J({% set x = 1 %}{% for i in [1, 2] %}{% set x = x + 10 %}{{ x }} {% endfor %}{{ x }})J",
     R"J({})J", R"J(11 11 1)J"},
    {"namespace-carries-out-of-loop",
R"J({% set ns = namespace(total=0, seen=[]) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set)J"
R"J( ns.seen = ns.seen + [i] %}{% endfor %}{{ ns.total }} {{ ns.seen }})J",
     R"J({})J", R"J(6 [1, 2, 3])J"},
    {"namespace-new-attribute", R"J({% set ns = namespace() %}{% set ns.flag = true %}{{ ns.flag }} {{ ns }})J",
     R"J({})J", R"J(True <Namespace {'flag': True}>)J"},
    {"namespace-from-dict", R"J({% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }})J", R"J({})J",
     R"J(121)J"},
    {"block-set", R"J({% set body %}Hello {{ name }}!{% endset %}[{{ body }}])J", R"J({"name": "Ann"})J",
     R"J([Hello Ann!])J"},
    {"block-set-filtered", R"J({% set body | trim | upper %}  quiet  {% endset %}[{{ body }}])J", R"J({})J",
     R"J([QUIET])J"},
    {"block-set-namespace", R"J({% set ns = namespace() %}{% set ns.text %}x{{ 1 }}{% endset %}{{ ns.text }})J",
     R"J({})J", R"J(x1)J"},
    {"block-set-inner-scope", R"J({% set outer %}{% set inner = 1 %}{% endset %}[{{ inner }}])J", R"J({})J", R"J([])J"},
    {"with-scope", R"J({% set x = 1 %}{% with x = 2, y = x %}{{ x }}{{ y }}{% endwith %}{{ x }})J", R"J({})J",
     R"J(211)J"},
};

const Case kMacro[] = {
    {"macro-defaults",
     R"J({% macro m(a, b='B', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|{{ m(c=3, a=0))J"
     R"J( }})J",
     R"J({})J", R"J(1BNone|12None|0B3)J"},
    {"macro-missing-arg-undefined", R"J({% macro m(a, b) %}[{{ b }}]{% endmacro %}{{ m(1) }})J", R"J({})J", R"J([])J"},
    {"macro-default-sees-earlier-param", R"J({% macro m(a, b=a * 2) %}{{ b }}{% endmacro %}{{ m(4) }})J", R"J({})J",
     R"J(8)J"},
    {"macro-varargs-kwargs",
     R"J({% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }})J",
     R"J({})J", R"J(1(2, 3){'k': 'v'})J"},
    {"macro-recursion",
     R"J({% macro down(n) %}{{ n }}{% if n > 0 %},{{ down(n - 1) }}{% endif %}{% endmacro %}{{ down(3) }})J",
     R"J({})J", R"J(3,2,1,0)J"},
    {"macro-calls-later-macro", R"J({% macro a() %}[{{ b() }}]{% endmacro %}{% macro b() %}B{% endmacro %}{{ a() }})J",
     R"J({})J", R"J([B])J"},
    {"macro-sees-top-level-at-call-time",
     R"J({% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }})J",
     R"J({})J", R"J(2)J"},
    {"macro-sets-are-local", R"J({% set x = 1 %}{% macro m() %}{% set x = 5 %}{{ x }}{% endmacro %}{{ m() }}{{ x }})J",
     R"J({})J", R"J(51)J"},
    {"macro-does-not-see-caller-locals",
     R"J({% macro m() %}[{{ item }}]{% endmacro %}{% for item in [1] %}{{ m() }}{% endfor %})J",
     R"J({})J", R"J([])J"},
    {"macro-result-is-string", R"J({% macro m() %}  x  {% endmacro %}[{{ m()|trim }}]{{ m() is string }})J", R"J({})J",
     R"J([x]True)J"},
    {"macro-in-loop-closure", R"J({% for i in [1, 2] %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %})J",
     R"J({})J", R"J(12)J"},
    {"macro-attributes", R"J({% macro m(a, b) %}{% endmacro %}{{ m.name }} {{ m.arguments }})J", R"J({})J",
     R"J(m ('a', 'b'))J"},
    {"call-block",
     R"J({% macro box(t) %}<{{ t }}:{{ caller() }}>{% endmacro %}{% call box('x') %}inside{% endcall %})J",
     R"J({})J", R"J(<x:inside>)J"},
    {"call-block-args",
     R"J({% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }}{% endfor %}{% endmacro %}{% call(v, i))J"
     R"J( each('ab') %}{{ i }}={{ v }};{% endcall %})J",
     R"J({})J", R"J(1=a;2=b;)J"},
    {"filter-block", R"J({% filter upper %}ab{{ 'c' }}{% endfilter %})J", R"J({})J", R"J(ABC)J"},
    {"filter-block-chain", R"J({% filter trim|replace('a', 'o') %}  banana  {% endfilter %}.)J", R"J({})J",
     R"J(bonono.)J"},
    {"generation-renders-body", R"J(<{% generation %}{{ 'answer' }}{% endgeneration %}>)J", R"J({})J", R"J(<answer>)J"},
    {"print-statement", R"J({% print 1 + 1 %})J", R"J({})J", R"J(2)J"},
};

const Case kWhitespace[] = {
    {"trim-blocks", "a\n{% if true %}\nb\n{% endif %}\nc", R"J({})J", "a\nb\nc"},
    {"lstrip-blocks", "a\n    {% if true %}\n    b\n    {% endif %}\nc", R"J({})J", "a\n    b\nc"},
    {"lstrip-only-at-line-start", "a  {% if true %}x{% endif %}", R"J({})J", "a  x"},
    {"lstrip-at-template-start", "  \t{% if true %}x{% endif %}", R"J({})J", "x"},
    {"lstrip-not-for-variables", "a\n  {{ 'x' }}\n", R"J({})J", "a\n  x"},
    {"no-trim-after-variables", "{{ 'a' }}\n{{ 'b' }}", R"J({})J", "a\nb"},
    {"plus-disables-lstrip", "a\n  {%+ if true %}x{% endif %}", R"J({})J", "a\n  x"},
    {"plus-disables-trim", "{% if true +%}\nx{% endif %}", R"J({})J", "\nx"},
    {"minus-strips-all-before", "a \n\n {%- if true %}x{% endif %}", R"J({})J", "ax"},
    {"minus-strips-all-after", "{% if true -%}\n\n  x{% endif %}", R"J({})J", "x"},
    {"variable-minus", "a\n  {{- 'b' -}}  \n c", R"J({})J", "abc"},
    {"comment-trim-and-lstrip", "a\n  {# note #}\nb", R"J({})J", "a\nb"},
    {"comment-minus", "a  {#- note -#}  b", R"J({})J", "ab"},
    {"loop-lines", "{% for i in [1, 2] %}\n  - {{ i }}\n{% endfor %}\n", R"J({})J", "  - 1\n  - 2\n"},
    {"trailing-newline-dropped-once", "x\n\n", R"J({})J", "x\n"},
    {"crlf-normalized", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", R"J({})J", "a\nb\nc"},
    {"unicode-space-stripped-by-minus", "a\xC2\xA0\xE3\x80\x80{%- if true %}b{% endif %}", R"J({})J", "ab"},
    {"raw-block", "{% raw %}{{ not parsed }}{% if %}{% endraw %}", R"J({})J", "{{ not parsed }}{% if %}"},
    {"raw-keeps-newline-after-open", "{% raw %}\n  x\n  {% endraw %}\ny", R"J({})J", "\n  x\ny"},
    {"raw-minus", "a {%- raw -%}  x  {%- endraw -%}  b", R"J({})J", "axb"},
    {"dict-literal-braces-in-print", R"J({{ {'a': {'b': 1}} }})J", R"J({})J", R"J({'a': {'b': 1}})J"},
};

TEST(JinjaStatements, IfElifElse) { chat_test::run_cases(kIf, std::size(kIf)); }
TEST(JinjaStatements, ForLoopsAndLoopVariable) { chat_test::run_cases(kFor, std::size(kFor)); }
TEST(JinjaStatements, SetNamespaceAndScoping) { chat_test::run_cases(kSet, std::size(kSet)); }
TEST(JinjaStatements, MacrosCallAndFilterBlocks) { chat_test::run_cases(kMacro, std::size(kMacro)); }
TEST(JinjaStatements, WhitespaceControlAsHuggingFaceSetsIt) {
  chat_test::run_cases(kWhitespace, std::size(kWhitespace));
}

TEST(JinjaStatements, ParseOptionsCanTurnTrimmingOff) {
  const auto t = hearth::chat::Template::parse("a\n  {% if true %}\nb{% endif %}", "t",
                                               hearth::chat::ParseOptions{false, false});
  EXPECT_EQ(t.render(hearth::chat::Value::make_dict()), "a\n  \nb");
}

TEST(JinjaStatements, ATemplateRendersRepeatedlyWithFreshState) {
  // A namespace and a list built during one render must not leak into the next.
  const auto t = hearth::chat::Template::parse(
      "{% set ns = namespace(n=0) %}{% set l = [] %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}");
  const auto ctx = hearth::chat::chat_context(nlohmann::ordered_json::parse(R"({"extra": {"xs": [1, 2, 3]}})"));
  EXPECT_EQ(t.render(ctx), "6");
  EXPECT_EQ(t.render(ctx), "6");
}

TEST(JinjaStatements, ChatContextTakesTheCaseKeysAndExtra) {
  const auto ctx = hearth::chat::chat_context(nlohmann::ordered_json::parse(
      R"({"name": "case name", "messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true,
          "bos_token": "<s>", "eos_token": "</s>", "expected": "x", "extra": {"enable_thinking": false}})"));
  const auto t = hearth::chat::Template::parse(
      "{{ bos_token }}{{ messages[0].content }}|{{ add_generation_prompt }}|{{ enable_thinking }}|"
      "{{ tools is defined }}|"
      "{{ name is defined }}{{ expected is defined }}{{ extra is defined }}|{{ eos_token }}");
  EXPECT_EQ(t.render(ctx), "<s>hi|True|False|False|FalseFalseFalse|</s>");
}

}  // namespace

// Jinja expressions: literals, operators and their precedence, attribute and item access,
// slicing, Python's str() of values, jinja2's Undefined, and Unicode strings by code point.
#include "render_helper.h"

namespace {

using chat_test::Case;

const Case kLiterals[] = {
    {"strings-and-escapes", R"J({{ 'a\'b' }}|{{ "tab\there" }}|{{ 'x\ny' }}|{{ '\x41\u00e9\U0001F999' }}|{{ '\d' }})J",
     R"J({})J", "a'b|tab\there|x\ny|A\xC3\xA9\xF0\x9F\xA6\x99|\\d"},
    {"adjacent-strings-join", R"J({{ 'a' "b" 'c' }})J", R"J({})J", R"J(abc)J"},
    {"numbers", R"J({{ 42 }} {{ 1_000 }} {{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 1.5 }} {{ 2e3 }} {{ 1.0 }})J", R"J({})J",
     R"J(42 1000 31 5 15 1.5 2000.0 1.0)J"},
    {"constants-both-cases", R"J({{ true }} {{ True }} {{ false }} {{ False }} {{ none }} {{ None }})J", R"J({})J",
     R"J(True True False False None None)J"},
    {"list-dict-tuple", R"J({{ [1, 'a', [true]] }} {{ {'k': none, 2: 1.5} }} {{ (1,) }} {{ () }} {{ (1, 'b') }})J",
     R"J({})J", R"J([1, 'a', [True]] {'k': None, 2: 1.5} (1,) () (1, 'b'))J"},
    {"trailing-commas", R"J({{ [1, 2,] }}{{ {'a': 1,} }})J", R"J({})J", R"J([1, 2]{'a': 1})J"},
};

const Case kOperators[] = {
    {"arithmetic", R"J({{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 2 }} {{ 7 ** 2 }})J",
     R"J({})J", R"J(9 5 14 3.5 3 1 49)J"},
    {"floor-and-modulo-signs", R"J({{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7.5 // 2 }} {{ 7.5 % -2 }})J", R"J({})J",
     R"J(-4 2 -2 -4.0 -0.5)J"},
    {"true-division-is-float", R"J({{ 4 / 2 }} {{ 1 / 4 }})J", R"J({})J", R"J(2.0 0.25)J"},
    {"int-float-mix", R"J({{ 1 + 0.5 }} {{ 2 * 1.5 }} {{ 2 ** -1 }} {{ 2 ** 0.5 }})J", R"J({})J",
     R"J(1.5 3.0 0.5 1.4142135623730951)J"},
    {"bool-is-int", R"J({{ true + 1 }} {{ false * 3 }})J", R"J({})J", R"J(2 0)J"},
    {"precedence", R"J({{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }})J", R"J({})J",
     R"J(7 9 64 4 5)J"},
    {"concat-binds-tighter-than-plus", R"J({{ 1 ~ 2 * 3 }} {{ 'a' ~ 1 ~ none ~ [2] }})J", R"J({})J",
     R"J(16 a1None[2])J"},
    {"string-and-list-ops", R"J({{ 'ab' + 'cd' }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ [0] * 3 }} {{ (1,) + (2,) }})J",
     R"J({})J", R"J(abcd abab [1, 2] [0, 0, 0] (1, 2))J"},
    {"percent-format", R"J({{ '%s=%d' % ('n', 3) }} {{ '%05.1f' % 3.14159 }} {{ '%(a)s!' % {'a': 'hi'} }})J",
     R"J({})J", R"J(n=3 003.1 hi!)J"},
    {"comparisons", R"J({{ 1 == 1.0 }} {{ 1 != 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2 }} {{ 3 <= 2 }})J",
     R"J({})J", R"J(True True True True True False)J"},
    {"chained-comparison", R"J({{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 3 > 2 == 2 }})J", R"J({})J", R"J(True False True)J"},
    {"equality-across-types",
     R"J({{ 1 == true }} {{ (1, 2) == [1, 2] }} {{ {'a': 1} == {'a': 1.0} }} {{ none == false }})J",
     R"J({})J", R"J(True False True False)J"},
    {"in-and-not-in",
     R"J({{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 0} }} {{ 'x' not in 'abc' }} {{ 3 not in [3] }})J",
     R"J({})J", R"J(True True True True False)J"},
    {"and-or-return-operands",
     R"J({{ 0 or 'x' }} {{ 'a' and 'b' }} {{ [] or [] }} {{ none and 1 }} {{ 1 or undefined_name.attr }})J",
     R"J({})J", R"J(x b [] None 1)J"},
    {"not",
     R"J({{ not 0 }} {{ not 'a' }} {{ not not [] }} {{ not 1 == 2 }})J",
     R"J({})J",
     R"J(True False False True)J"},
    {"conditional-expression", R"J({{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' if 0 else 'm' }} [{{ 'y' if 0 }}])J",
     R"J({})J", R"J(y m [])J"},
};

const Case kAccess[] = {
    {"attribute-and-item", R"J({{ m.role }} {{ m['role'] }} {{ m.content[0].text }} {{ m.content.0.text }})J",
     R"J({"m": {"role": "user", "content": [{"text": "hi"}]}})J", R"J(user user hi hi)J"},
    {"missing-key-is-undefined", R"J([{{ m.nope }}][{{ m['nope'] }}]{{ m.nope is defined }})J", R"J({"m": {}})J",
     R"J([][]False)J"},
    {"method-wins-over-key", R"J({{ d.items is defined }} {{ d['items'] }})J", R"J({"d": {"items": "key"}})J",
     R"J(True key)J"},
    {"negative-index", R"J({{ xs[-1] }} {{ 'abc'[-2] }})J", R"J({"xs": [1, 2, 3]})J", R"J(3 b)J"},
    {"index-out-of-range-is-undefined", R"J([{{ xs[9] }}][{{ 'ab'[5] }}])J", R"J({"xs": [1]})J", R"J([][])J"},
    {"none-attribute-is-undefined", R"J([{{ n.x }}][{{ n['y'] }}])J", R"J({"n": null})J", R"J([][])J"},
    {"int-keys", R"J({% set d = {1: 'one', 'x': 2} %}{{ d[1] }} {{ d[1.0] }} {{ d[true] }})J", R"J({})J",
     R"J(one one one)J"},
    {"slices",
     R"J({{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ xs[-2:] }} {{ xs[5:] }} {{ xs[3:0:-1] }})J",
     R"J({"xs": [1, 2, 3, 4]})J", R"J([2, 3, 4] [1, 2] [4, 3, 2, 1] [1, 3] [3, 4] [] [4, 3, 2])J"},
    {"string-slices", R"J({{ s[1:3] }} {{ s[::-1] }} {{ s[-3:] }})J", R"J({"s": "hello"})J", R"J(el olleh llo)J"},
    {"tuple-slice-stays-tuple", R"J({{ (1, 2, 3)[1:] }})J", R"J({})J", R"J((2, 3))J"},
};

const Case kPythonText[] = {
    {"floats-like-python",
     R"J({{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1.5e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 1/3 }})J",
     R"J({})J", R"J(1.0 0.30000000000000004 1e+16 1000000000000000.0 1.5e-05 0.0001 -0.0 0.3333333333333333)J"},
    {"json-floats-keep-their-type", R"J({{ a }} {{ b }} {{ c }})J", R"J({"a": 1.0, "b": 2, "c": 2.50})J",
     R"J(1.0 2 2.5)J"},
    {"repr-of-containers", R"J({{ ['it\'s', "say \"x\"", 'both \' "', 'a\nb', '\\'] }})J", R"J({})J",
     R"J(["it's", 'say "x"', 'both \' "', 'a\nb', '\\'])J"},
    {"repr-keeps-unicode", R"J({{ ['é', '🦙'] }})J", R"J({})J", R"J(['é', '🦙'])J"},
    {"repr-escapes-controls", R"J({{ ['\x00', '\x7f', '\t'] }})J", R"J({})J", R"J(['\x00', '\x7f', '\t'])J"},
    {"nested-repr", R"J({{ {'a': [1, (2, {'b': none})], 'c': true} }})J", R"J({})J",
     R"J({'a': [1, (2, {'b': None})], 'c': True})J"},
    {"json-dicts-in-order",
     R"J({{ d }})J",
     R"J({"d": {"z": 1, "a": [true, null]}})J",
     R"J({'z': 1, 'a': [True, None]})J"},
};

const Case kUndefined[] = {
    {"renders-empty", R"J([{{ missing }}])J", R"J({})J", R"J([])J"},
    {"is-falsy-and-empty",
     R"J({{ missing|length }}{{ missing|list }}{% for x in missing %}x{% endfor %}{{ not missing }})J",
     R"J({})J", R"J(0[]True)J"},
    {"concat-as-empty", R"J({{ 'a' ~ missing ~ 'b' }})J", R"J({})J", R"J(ab)J"},
    {"equality", R"J({{ missing == missing }} {{ missing == none }} {{ missing != '' }})J", R"J({})J",
     R"J(True False True)J"},
    {"in-undefined-is-false", R"J({{ 'a' in missing }})J", R"J({})J", R"J(False)J"},
    {"default-filter", R"J({{ missing|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }})J", R"J({})J",
     R"J(d None d)J"},
    {"undefined-tests",
     R"J({{ missing is undefined }} {{ missing is sequence }} {{ missing is iterable }} {{ missing is mapping }})J",
     R"J({})J", R"J(True True True False)J"},
    {"if-without-else-gives-undefined", R"J({{ (1 if false) is defined }})J", R"J({})J", R"J(False)J"},
};

const Case kUnicode[] = {
    {"length-by-code-point", R"J({{ s|length }} {{ s[1] }} {{ s[-1] }} {{ s[1:3] }})J", R"J({"s": "añ日🦙"})J",
     R"J(4 ñ 🦙 ñ日)J"},
    {"reverse-by-code-point", R"J({{ s[::-1] }} {{ s|reverse }})J", R"J({"s": "añ🦙"})J", R"J(🦙ña 🦙ña)J"},
    {"find-by-code-point", R"J({{ s.find('🦙') }} {{ s.index('b') }})J", R"J({"s": "é🦙b"})J", R"J(1 2)J"},
    {"case-mapping", R"J({{ 'Straße ÉTÉ ΣΟΦΙΑ привет'|upper }} {{ 'ÀÉÎ Ωμέγα'|lower }})J", R"J({})J",
     R"J(STRASSE ÉTÉ ΣΟΦΙΑ ПРИВЕТ àéî ωμέγα)J"},
    {"unicode-whitespace", R"J({{ s|trim }}|{{ s.split() }})J", "{\"s\": \"\\u3000a\\u00a0b \\u2003\"}",
     "a\xC2\xA0" "b|['a', 'b']"},
};

TEST(JinjaExpressions, Literals) { chat_test::run_cases(kLiterals, std::size(kLiterals)); }
TEST(JinjaExpressions, OperatorsAndPrecedence) { chat_test::run_cases(kOperators, std::size(kOperators)); }
TEST(JinjaExpressions, AttributeItemAndSliceAccess) { chat_test::run_cases(kAccess, std::size(kAccess)); }
TEST(JinjaExpressions, ValuesPrintAsPythonStr) { chat_test::run_cases(kPythonText, std::size(kPythonText)); }
TEST(JinjaExpressions, UndefinedBehavesLikeJinja2Default) { chat_test::run_cases(kUndefined, std::size(kUndefined)); }
TEST(JinjaExpressions, StringsAreUnicodeCodePoints) { chat_test::run_cases(kUnicode, std::size(kUnicode)); }

}  // namespace

// Jinja builtins: filters, tests, methods of str/list/dict and the globals (range, dict,
// namespace, joiner, cycler, raise_exception, strftime_now), with jinja2 3.1's results.
#include "render_helper.h"

namespace {

using chat_test::Case;

const Case kToJson[] = {
    {"python-json-dumps-defaults", R"J({{ v|tojson }})J", R"J({"v": {"a": [1, 2.5, "x", null, true], "b": {}}})J",
     R"J({"a": [1, 2.5, "x", null, true], "b": {}})J"},
    {"indent", R"J({{ v|tojson(indent=2) }})J", R"J({"v": {"a": [1, {"b": null}], "c": [], "d": {}}})J",
     "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": [],\n  \"d\": {}\n}"},
    {"indent-string-and-zero", R"J({{ [1]|tojson(indent='\t') }}|{{ [1]|tojson(indent=0) }})J", R"J({})J",
     "[\n\t1\n]|[\n1\n]"},
    {"sort-keys", R"J({{ {'b': 1, 'a': {'d': 2, 'c': 3}}|tojson(sort_keys=true) }})J", R"J({})J",
     R"J({"a": {"c": 3, "d": 2}, "b": 1})J"},
    {"separators", R"J({{ {'a': [1, 2]}|tojson(separators=(',', ':')) }})J", R"J({})J", R"J({"a":[1,2]})J"},
    {"separators-with-indent", R"J({{ {'a': 1, 'b': 2}|tojson(indent=1, separators=(', ', ' = ')) }})J", R"J({})J",
     "{\n \"a\" = 1, \n \"b\" = 2\n}"},
    {"unicode-kept-by-default", R"J({{ 'é🦙'|tojson }})J", R"J({})J", R"J("é🦙")J"},
    {"ensure-ascii", R"J({{ 'é🦙\x7f'|tojson(ensure_ascii=true) }})J", R"J({})J", R"J("\u00e9\ud83e\udd99\u007f")J"},
    {"string-escapes", R"J({{ 'q"\\/\n\t\x01\b\f'|tojson }})J", R"J({})J", R"J("q\"\\/\n\t\u0001\b\f")J"},
    {"floats-and-keys",
     R"J({{ [1.0, 1e16, 0.1, -0.0]|tojson }} {{ {1: 'a', none: 'b', true: 'c', 2.5: 'd'}|tojson }})J",
     R"J({})J", R"J([1.0, 1e+16, 0.1, -0.0] {"1": "c", "null": "b", "2.5": "d"})J"},
    {"tuples-are-arrays", R"J({{ (1, (2,))|tojson }})J", R"J({})J", R"J([1, [2]])J"},
    {"positional-ensure-ascii", R"J({{ 'é'|tojson(true) }})J", R"J({})J", R"J("\u00e9")J"},
};

const Case kStringFilters[] = {
    {"trim", R"J([{{ '  a b \n'|trim }}][{{ 'xxaxx'|trim('x') }}])J", R"J({})J", R"J([a b][a])J"},
    {"case", R"J({{ 'aBc'|upper }} {{ 'aBc'|lower }} {{ 'hELLO wORLD'|capitalize }} {{ "it's a-b(c"|title }})J",
     R"J({})J", R"J(ABC abc Hello world It's A-B(C)J"},
    {"replace", R"J({{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'ab'|replace('', '.') }})J",
     R"J({})J", R"J(a+b+c bba .a.b.)J"},
    {"string-safe-escape",
     R"J({{ 12|string }}{{ [1]|string }} {{ '<b>'|safe }} {{ '<a href="x">&\''|escape }} {{ '<'|e }})J",
     R"J({})J", R"J(12[1] <b> &lt;a href=&#34;x&#34;&gt;&amp;&#39; &lt;)J"},
    {"indent",
     R"J([{{ 'a\nb\n\nc'|indent(2) }}][{{ 'a\nb'|indent(first=true) }}][{{ 'a\n\nb'|indent('> ', blank=true) }}])J",
     R"J({})J", "[a\n  b\n\n  c][    a\n    b][a\n> \n> b]"},
    {"center-wordcount", R"J([{{ 'ab'|center(6) }}][{{ 'ab'|center(5) }}] {{ 'one two, three_3!'|wordcount }})J",
     R"J({})J", R"J([  ab  ][  ab ] 3)J"},
    {"truncate",
     R"J({{ 'foo bar baz qux'|truncate(9) }}|{{ 'foo bar baz qux'|truncate(9, true) }}|{{ 'short'|truncate(9) }})J",
     R"J({})J", R"J(foo...|foo ba...|short)J"},
    {"format", R"J({{ '%s and %s'|format('a', 'b') }} {{ '%(x)s'|format(x=1) }})J", R"J({})J", R"J(a and b 1)J"},
};

const Case kSequenceFilters[] = {
    {"length-count", R"J({{ 'añ'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }})J", R"J({})J", R"J(2 2 1)J"},
    {"join", R"J({{ [1, 'a', none]|join }} {{ ['a', 'b']|join(', ') }} {{ users|join('/', attribute='n') }})J",
     R"J({"users": [{"n": "x"}, {"n": "y"}]})J", R"J(1aNone a, b x/y)J"},
    {"first-last", R"J({{ [1, 2]|first }} {{ 'ab'|last }} [{{ []|first }}] {{ {'k': 1}|first }})J", R"J({})J",
     R"J(1 b [] k)J"},
    {"list-unique",
     R"J({{ 'ab'|list }} {{ ['a', 'A', 'b', 'a']|unique|list }} {{ ['a', 'A']|unique(case_sensitive=true)|list }})J",
     R"J({})J", R"J(['a', 'b'] ['a', 'b'] ['a', 'A'])J"},
    {"unique-attribute", R"J({{ xs|unique(attribute='k')|map(attribute='v')|list }})J",
     R"J({"xs": [{"k": 1, "v": "a"}, {"k": 1, "v": "b"}, {"k": 2, "v": "c"}]})J", R"J(['a', 'c'])J"},
    {"sort",
     R"J({{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ [1, 3,)J"
     R"J( 2]|sort(reverse=true) }})J",
     R"J({})J", R"J([1, 2, 3] ['A', 'a', 'b'] ['A', 'a', 'b'] [3, 2, 1])J"},
    {"sort-attribute",
     R"J({{ xs|sort(attribute='age')|map(attribute='n')|join }} {{)J"
     R"J( xs|sort(attribute='age,n')|map(attribute='n')|join }})J",
     R"J({"xs": [{"n": "c", "age": 2}, {"n": "b", "age": 1}, {"n": "a", "age": 2}]})J", R"J(bca bac)J"},
    {"sort-is-stable-reversed", R"J({{ xs|sort(attribute='k', reverse=true)|map(attribute='n')|join }})J",
     R"J({"xs": [{"k": 1, "n": "a"}, {"k": 2, "n": "b"}, {"k": 1, "n": "c"}]})J", R"J(bac)J"},
    {"dictsort-items",
     R"J({{ {'b': 1, 'A': 2, 'c': 0}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value', reverse=true) }} {{)J"
     R"J( {'x': 1}|items|list }})J",
     R"J({})J", R"J([('A', 2), ('b', 1), ('c', 0)] [('a', 2), ('b', 1)] [('x', 1)])J"},
    {"reverse", R"J({{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }})J", R"J({})J", R"J([3, 2, 1] cba)J"},
    {"min-max-sum",
     R"J({{ [3, 1, 2]|min }} {{ ['b', 'C', 'a']|max }} {{ [1, 2.5]|sum }} {{ xs|sum(attribute='v') }} {{)J"
     R"J( xs|max(attribute='v') }})J",
     R"J({"xs": [{"v": 1}, {"v": 5}]})J", R"J(1 C 3.5 6 {'v': 5})J"},
    {"batch-slice",
     R"J({{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 0)|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }})J",
     R"J({})J", R"J([[1, 2], [3, 4], [5]] [[1, 2], [3, 0]] [[1, 2, 3], [4, 5]])J"},
    {"map",
     R"J({{ xs|map(attribute='a.b')|list }} {{ ['a', 'b']|map('upper')|join }} {{ [1, 2]|map('string')|list }} {{)J"
     R"J( xs|map(attribute='z', default='-')|list }})J",
     R"J({"xs": [{"a": {"b": 1}}, {"a": {"b": 2}}]})J", R"J([1, 2] AB ['1', '2'] ['-', '-'])J"},
    {"select-reject",
     R"J({{ [1, 2, 3, 4]|select('even')|list }} {{ [0, 1, '', 'a']|select|list }} {{ [1, 2, 3]|reject('gt',)J"
     R"J( 1)|list }})J",
     R"J({})J", R"J([2, 4] [1, 'a'] [1])J"},
    {"selectattr-rejectattr",
     R"J({{ ms|selectattr('role', 'equalto', 'user')|map(attribute='c')|join }} {{)J"
     R"J( ms|rejectattr('tool')|map(attribute='c')|join }} {{ ms|selectattr('tool', 'defined')|list|length }})J",
     R"J({"ms": [{"role": "user", "c": "a"}, {"role": "tool", "c": "b", "tool": 1}, {"role": "user", "c": "c"}]})J",
     R"J(ac ac 1)J"},
    {"generators-are-truthy", R"J({% if []|select %}T{% endif %}{% if []|select|list %}L{% endif %})J", R"J({})J",
     R"J(T)J"},
    {"default-boolean", R"J({{ false|default('d') }} {{ false|default('d', true) }} {{ 0|d('zero', boolean=true) }})J",
     R"J({})J", R"J(False d zero)J"},
};

const Case kNumberFilters[] = {
    {"int",
     R"J({{ '42'|int }} {{ ' 7 '|int }} {{ '3.9'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ 'ff'|int(base=16) }} {{)J"
     R"J( 3.9|int }} {{ -3.9|int }} {{ true|int }})J",
     R"J({})J", R"J(42 7 3 0 5 255 3 -3 1)J"},
    {"float", R"J({{ '1.5'|float }} {{ '1e3'|float }} {{ 2|float }} {{ 'x'|float }} {{ 'x'|float(1.5) }})J", R"J({})J",
     R"J(1.5 1000.0 2.0 0.0 1.5)J"},
    {"round-half-even", R"J({{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 7|round }} {{ 12350|round(-2) }})J",
     R"J({})J", R"J(2.0 4.0 2.67 7 12400)J"},
    {"round-methods", R"J({{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 1.23|round(1, 'ceil') }})J",
     R"J({})J", R"J(3.0 2.0 1.3)J"},
    {"abs", R"J({{ -3|abs }} {{ -2.5|abs }} {{ 4|abs }})J", R"J({})J", R"J(3 2.5 4)J"},
};

const Case kTests[] = {
    {"types",
     R"J({{ 'a' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}{{ 1 is number }}{{ 1.5 is)J"
     R"J( number }}{{ true is number }}{{ 'x' is number }})J",
     R"J({})J", R"J(TrueFalseTrueFalseTrueTrueTrueFalse)J"},
    {"integer-float-boolean",
     R"J({{ 1 is integer }}{{ true is integer }}{{ 1.0 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ 1 is)J"
     R"J( boolean }})J",
     R"J({})J", R"J(TrueFalseFalseTrueTrueFalse)J"},
    {"none-true-false",
     R"J({{ none is none }}{{ 0 is none }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }})J",
     R"J({})J", R"J(TrueFalseTrueFalseTrueFalse)J"},
    {"iterable-sequence",
     R"J({{ 'a' is iterable }}{{ 1 is iterable }}{{ {} is iterable }}{{ [] is sequence }}{{ {} is sequence }}{{ 1)J"
     R"J( is sequence }})J",
     R"J({})J", R"J(TrueFalseTrueTrueTrueFalse)J"},
    {"defined",
     R"J({{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ x.a is defined }})J",
     R"J({"x": {"a": null}})J",
     R"J(TrueFalseTrueTrue)J"},
    {"odd-even-divisible",
     R"J({{ 3 is odd }}{{ 3 is even }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }})J",
     R"J({})J", R"J(TrueFalseTrueTrueFalse)J"},
    {"comparisons",
     R"J({{ 1 is eq 1 }}{{ 'a' is equalto 'b' }}{{ 2 is ne 3 }}{{ 3 is gt 2 }}{{ 3 is ge 4 }}{{ 1 is lt 2 }}{{ 2)J"
     R"J( is le 2 }}{{ 5 is greaterthan 1 }}{{ 5 is lessthan 1 }})J",
     R"J({})J", R"J(TrueFalseTrueTrueFalseTrueTrueTrueFalse)J"},
    {"in-sameas",
     R"J({{ 2 is in [1, 2] }}{{ 'z' is in 'abc' }}{{ none is sameas none }}{{ x is sameas x }}{{ [] is sameas [] }})J",
     R"J({"x": [1]})J", R"J(TrueFalseTrueTrueFalse)J"},
    {"is-not", R"J({{ 'a' is not string }}{{ none is not none }}{{ x is not defined }})J", R"J({})J",
     R"J(FalseFalseTrue)J"},
    {"lower-upper-callable",
     R"J({{ 'ab' is lower }}{{ 'aB' is lower }}{{ 'AB' is upper }}{{ range is callable }}{{ 'x' is callable }})J",
     R"J({})J", R"J(TrueFalseTrueTrueFalse)J"},
    {"filter-test-names", R"J({{ 'trim' is filter }}{{ 'nope' is filter }}{{ 'odd' is test }})J", R"J({})J",
     R"J(TrueFalseTrue)J"},
    {"test-in-select", R"J({{ [1, 'a', none, 2.5]|select('number')|list }} {{ [1, 'a', none]|reject('none')|list }})J",
     R"J({})J", R"J([1, 2.5] [1, 'a'])J"},
};

const Case kStrMethods[] = {
    {"strip",
     R"J([{{ '  a  '.strip() }}][{{ 'xxaxx'.lstrip('x') }}][{{ '\n\na\n'.rstrip('\n') }}][{{ 'ab'.strip(none) }}])J",
     R"J({})J", "[a][axx][\n\na][ab]"},
    {"split",
     R"J({{ 'a,b,,c'.split(',') }} {{ '  a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b)J"
     R"J( c'.split(maxsplit=1) }})J",
     R"J({})J", R"J(['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a', 'b c'])J"},
    {"split-last",
     R"J({{ c.split('</think>')[-1].lstrip('\n') }}|{{ c.split('</think>')[0].rstrip('\n').split('<think>')[-1] }})J",
     R"J({"c": "<think>\nplan\n</think>\n\nanswer"})J", "answer|\nplan"},
    {"rsplit-splitlines", R"J({{ 'a,b,c'.rsplit(',', 1) }} {{ 'a\nb\r\nc\n'.splitlines() }})J", R"J({})J",
     R"J(['a,b', 'c'] ['a', 'b', 'c'])J"},
    {"startswith-endswith",
     R"J({{ 'hello'.startswith('he') }}{{ 'hello'.startswith(('x', 'h')) }}{{ 'hello'.endswith('lo') }}{{)J"
     R"J( 'hello'.endswith(('x', 'y')) }}{{ 'hello'.startswith('l', 2) }})J",
     R"J({})J", R"J(TrueTrueTrueFalseTrue)J"},
    {"case-methods",
     R"J({{ 'ab cd'.upper() }} {{ 'AB'.lower() }} {{ "they're bill's".title() }} {{ 'aBC'.capitalize() }} {{)J"
     R"J( 'aB'.swapcase() }})J",
     R"J({})J", R"J(AB CD ab They'Re Bill'S Abc Ab)J"},
    {"replace-find-count",
     R"J({{ 'aXbX'.replace('X', '-') }} {{ 'aXbX'.replace('X', '-', 1) }} {{ 'abcb'.find('b') }} {{)J"
     R"J( 'abcb'.rfind('b') }} {{ 'abc'.find('z') }} {{ 'abab'.count('ab') }})J",
     R"J({})J", R"J(a-b- a-bX 1 3 -1 2)J"},
    {"join-format",
     R"J({{ ', '.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'x') }} {{ '{name}: {0!r}'.format('v', name='k') }})J"
     R"J( {{ '{:>4}|{:<3}|{:^5}|{:.2f}|{:03d}'.format('a', 'b', 'c', 3.14159, 7) }})J",
     R"J({})J", R"J(a, b 1 and x k: 'v'    a|b  |  c  |3.14|007)J"},
    {"predicates-and-padding",
     R"J({{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}{{ 'Ab'.istitle() }} {{ '7'.zfill(3) }} {{)J"
     R"J( 'ab'.ljust(4, '.') }} {{ 'ab'.center(6, '*') }})J",
     R"J({})J", R"J(TrueTrueTrueTrue 007 ab.. **ab**)J"},
    {"affixes-partition",
     R"J({{ 'prefix-x'.removeprefix('prefix-') }} {{ 'x.txt'.removesuffix('.txt') }} {{ 'k=v=w'.partition('=') }})J",
     R"J({})J", R"J(x x ('k', '=', 'v=w'))J"},
};

const Case kContainerMethods[] = {
    {"dict-methods",
     R"J({{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('z') }} {{)J"
     R"J( d.get('z', 0) }})J",
     R"J({"d": {"a": 1, "b": 2}})J", R"J([('a', 1), ('b', 2)] ['a', 'b'] [1, 2] 1 None 0)J"},
    {"dict-items-loop", R"J({% for k, v in tool.items() if k != 'return' %}{{ k }};{% endfor %})J",
     R"J({"tool": {"name": "f", "return": 1, "description": "d"}})J", R"J(name;description;)J"},
    {"list-index-count", R"J({{ ['a', 'b'].index('b') }} {{ [1, 1, 2].count(1) }})J", R"J({})J", R"J(1 2)J"},
};

const Case kGlobals[] = {
    {"range",
     R"J({{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }})J",
     R"J({})J",
     R"J([0, 1, 2] [1, 2, 3] [10, 7, 4, 1] [])J"},
    {"dict", R"J({{ dict(a=1, b='x') }} {{ dict([('k', 2)]) }})J", R"J({})J", R"J({'a': 1, 'b': 'x'} {'k': 2})J"},
    {"strftime-now",
     R"J({{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %B %Y') }} {{ strftime_now('%A %b %j') }})J",
     R"J({})J", R"J(2026-07-26 26 July 2026 Sunday Jul 207)J"},
    {"joiner", R"J({% set sep = joiner(' | ') %}{% for x in 'abc' %}{{ sep() }}{{ x }}{% endfor %})J", R"J({})J",
     R"J(a | b | c)J"},
    {"cycler",
     R"J({% set c = cycler('odd', 'even') %}{{ c.next() }} {{ c.next() }} {{ c.next() }} {{ c.current }}{{)J"
     R"J( c.reset() }} {{ c.next() }})J",
     R"J({})J", R"J(odd even odd evenNone odd)J"},
};

TEST(JinjaBuiltins, ToJsonIsPythonJsonDumps) { chat_test::run_cases(kToJson, std::size(kToJson)); }
TEST(JinjaBuiltins, StringFilters) { chat_test::run_cases(kStringFilters, std::size(kStringFilters)); }
TEST(JinjaBuiltins, SequenceFilters) { chat_test::run_cases(kSequenceFilters, std::size(kSequenceFilters)); }
TEST(JinjaBuiltins, NumberFilters) { chat_test::run_cases(kNumberFilters, std::size(kNumberFilters)); }
TEST(JinjaBuiltins, Tests) { chat_test::run_cases(kTests, std::size(kTests)); }
TEST(JinjaBuiltins, StrMethods) { chat_test::run_cases(kStrMethods, std::size(kStrMethods)); }
TEST(JinjaBuiltins, DictAndListMethods) { chat_test::run_cases(kContainerMethods, std::size(kContainerMethods)); }
TEST(JinjaBuiltins, Globals) { chat_test::run_cases(kGlobals, std::size(kGlobals)); }

// jinja2's sandbox (Hugging Face's ImmutableSandboxedEnvironment) refuses list.append/pop; hearth
// allows them (llama.cpp's minja does too) so that templates written for it work.
TEST(JinjaBuiltins, ListMutationMethodsAreAllowed) {
  EXPECT_EQ(chat_test::render("{% set l = [1] %}{{ l.append(2) }}{{ l }} {{ l.pop() }}{{ l }} {{ l.pop(0) }}{{ l }}"),
            "None[1, 2] 2[1] 1[]");
  EXPECT_EQ(chat_test::render("{% set l = ['b'] %}{% set _ = l.insert(0, 'a') %}{% set _ = l.extend('cd') %}{{ l }}"),
            "['a', 'b', 'c', 'd']");
  // Lists are shared by reference, as in Python.
  EXPECT_EQ(chat_test::render("{% set a = [] %}{% set b = a %}{% set _ = b.append(1) %}{{ a }}"), "[1]");
}

TEST(JinjaBuiltins, StrftimeNowUsesTheCurrentTimeByDefault) {
  const auto t = hearth::chat::Template::parse("{{ strftime_now('%Y') }}");
  const std::string year = t.render(hearth::chat::Value::make_dict());
  ASSERT_EQ(year.size(), 4u);
  EXPECT_GE(std::stoi(year), 2024);
}

}  // namespace

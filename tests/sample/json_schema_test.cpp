// JSON Schema to grammar: hand-picked documents accepted and rejected, random documents drawn
// from the grammar that must parse and validate (against a small validator for the schema
// subset, written here independently of the converter), integer and number ranges checked
// exhaustively, patterns, property order, additional properties, and the errors for what the
// converter cannot enforce.
#include "sample/json_schema.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <regex>

#include "hearth/error.h"
#include "sample/grammar.h"
#include "schema_validator.h"

namespace hearth::sample {
namespace {

using ojson = nlohmann::ordered_json;

std::shared_ptr<const Grammar> grammar_of(const ojson& schema) {
  return Grammar::parse(json_schema_to_grammar(schema));
}

bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view doc) {
  GrammarMatcher m(g);
  return m.accept_bytes(doc) && m.is_complete();
}

std::string error_of(const ojson& schema) {
  try {
    json_schema_to_grammar(schema);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const ojson& person_schema() {
  static const ojson s = ojson::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 12},
      "age": {"type": "integer", "minimum": 0, "maximum": 150},
      "role": {"enum": ["admin", "user", "guest"]},
      "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 1, "maxItems": 3},
      "address": {
        "type": "object",
        "properties": {
          "city": {"type": "string", "maxLength": 10},
          "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
          "geo": {"$ref": "#/$defs/point"}
        },
        "required": ["city", "zip"],
        "additionalProperties": false
      },
      "active": {"type": "boolean"},
      "score": {"type": ["number", "null"]},
      "kind": {"const": "person"},
      "contact": {"anyOf": [{"type": "string", "format": "date"}, {"type": "integer", "minimum": -5, "maximum": 5}]}
    },
    "required": ["name", "age", "role", "address", "kind"],
    "additionalProperties": false,
    "$defs": {
      "point": {
        "type": "object",
        "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90}, "lon": {"type": "integer"}},
        "required": ["lat"],
        "additionalProperties": false
      }
    }
  })");
  return s;
}

TEST(JsonSchema, HandPickedDocumentsOfANestedSchema) {
  const auto g = grammar_of(person_schema());
  const char* valid[] = {
      R"({"name":"Al","age":0,"role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
      R"({"name": "Zoë ☃", "age": 150, "role": "admin", "tags": ["a", "bcdefg"], "address": {"city": "Paris", )"
      R"("zip": "75001", "geo": {"lat": -90, "lon": -12}}, "active": true, "score": -1.5e3, "kind": "person", )"
      R"("contact": "2024-02-29"})",
      "{\n  \"name\": \"x\\\"y\",\n  \"age\": 42,\n  \"role\": \"guest\",\n  \"address\": {\"city\": \"c\", "
      "\"zip\": \"00000\", \"geo\": {\"lat\": 89.999}},\n  \"score\": null,\n  \"kind\": \"person\",\n  \"contact\": "
      "5\n}",
  };
  for (const char* doc : valid) {
    EXPECT_TRUE(accepts(g, doc)) << doc;
    EXPECT_TRUE(test::validate(nlohmann::ordered_json::parse(doc), person_schema())) << doc;  // the validator agrees
  }
  const char* invalid[] = {
      // missing required "kind"
      R"({"name":"Al","age":0,"role":"user","address":{"city":"","zip":"12345"}})",
      // enum value not listed
      R"({"name":"Al","age":0,"role":"root","address":{"city":"","zip":"12345"},"kind":"person"})",
      // extra property
      R"({"name":"Al","age":0,"role":"user","address":{"city":"","zip":"12345"},"kind":"person","x":1})",
      // age out of range, negative, not an integer
      R"({"name":"Al","age":151,"role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
      R"({"name":"Al","age":-1,"role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
      R"({"name":"Al","age":1.5,"role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
      // name too short / too long
      R"({"name":"","age":1,"role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
      R"({"name":"abcdefghijklm","age":1,"role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
      // too many tags, none, a tag too long
      R"({"name":"A","age":1,"role":"user","tags":["a","b","c","d"],"address":{"city":"","zip":"12345"},)"
      R"("kind":"person"})",
      R"({"name":"A","age":1,"role":"user","tags":[],"address":{"city":"","zip":"12345"},"kind":"person"})",
      R"({"name":"A","age":1,"role":"user","tags":["abcdefg"],"address":{"city":"","zip":"12345"},"kind":"person"})",
      // zip does not match the pattern; nested required field missing; nested extra field
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"1234"},"kind":"person"})",
      R"({"name":"A","age":1,"role":"user","address":{"zip":"12345"},"kind":"person"})",
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345","x":0},"kind":"person"})",
      // $ref'd object: lat out of range / missing
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345","geo":{"lat":90.5}},"kind":"person"})",
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345","geo":{"lon":1}},"kind":"person"})",
      // const, wrong type, bad date, integer branch out of range
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345"},"kind":"robot"})",
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345"},"active":"yes","kind":"person"})",
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345"},"kind":"person",)"
      R"("contact":"2024-13-01"})",
      R"({"name":"A","age":1,"role":"user","address":{"city":"","zip":"12345"},"kind":"person","contact":6})",
      // properties out of schema order
      R"({"age":1,"name":"A","role":"user","address":{"city":"","zip":"12345"},"kind":"person"})",
  };
  for (const char* doc : invalid) {
    EXPECT_FALSE(accepts(g, doc)) << doc;
    if (std::string(doc).find(R"("age":1,"name")") == std::string::npos) {  // order is not a schema rule
      EXPECT_FALSE(test::validate(nlohmann::ordered_json::parse(doc), person_schema())) << doc;
    }
  }
}

// Draws a document from the grammar: single characters as tokens, preferring the ones that
// close things so that documents end; stops at completion.
std::string random_document(const std::shared_ptr<const Grammar>& g, std::mt19937& rng) {
  static const auto vocab = [] {
    std::vector<std::string> pieces;
    for (int c = 0x20; c < 0x7F; ++c) pieces.emplace_back(1, static_cast<char>(c));
    for (const char* s : {"\n", "\t", "é", "☃", "😀", "\\n", "\\u00e9", "\\ud83d\\ude00", "true", "null"})
      pieces.emplace_back(s);
    pieces.emplace_back("");  // EOG
    return std::make_shared<const GrammarVocab>(pieces, std::vector<int32_t>{static_cast<int32_t>(pieces.size() - 1)});
  }();
  GrammarMatcher m(g, vocab);
  std::string out;
  std::vector<uint8_t> allowed;
  for (int step = 0; step < 4000; ++step) {
    m.fill_allowed(allowed);
    std::vector<int32_t> ids;
    std::vector<double> w;
    for (int32_t id = 0; id < vocab->n_vocab(); ++id) {
      if (!allowed[static_cast<size_t>(id)]) continue;
      const std::string& p = vocab->piece(id);
      ids.push_back(id);
      w.push_back(p.empty() ? 20.0 : (p == "\"" || p == "]" || p == "}" || p == ",") ? 15.0 : 1.0);
    }
    if (ids.empty()) return out + " (dead end)";
    const int32_t id = ids[std::discrete_distribution<size_t>(w.begin(), w.end())(rng)];
    if (vocab->is_eog(id)) return out;
    EXPECT_TRUE(m.accept_token(id));
    out += vocab->piece(id);
  }
  return out + " (too long)";
}

void check_random_documents(const ojson& schema, int n, uint32_t seed, int min_distinct) {
  const auto g = grammar_of(schema);
  std::mt19937 rng(seed);
  std::set<std::string> distinct;
  for (int i = 0; i < n; ++i) {
    const std::string doc = random_document(g, rng);
    ojson parsed;
    ASSERT_NO_THROW(parsed = ojson::parse(doc)) << doc;
    ASSERT_TRUE(test::validate(parsed, schema)) << doc;
    distinct.insert(doc);
  }
  EXPECT_GE(distinct.size(), static_cast<size_t>(min_distinct));
}

TEST(JsonSchema, RandomDocumentsFromTheGrammarValidate) {
  check_random_documents(person_schema(), 300, 1, 290);
  // Arrays of objects with optional properties only, a tuple, a map, a recursive tree.
  check_random_documents(ojson::parse(R"({
    "type": "array", "minItems": 2, "maxItems": 4,
    "items": {"type": "object", "properties": {
      "a": {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 1000},
      "b": {"type": "string", "pattern": "^(ab|c)+-\\d{1,2}[^x]?$"},
      "c": {"type": "array", "prefixItems": [{"type": "boolean"}, {"enum": [1, "two", null, [3], {"four": 4}]}]}
    }, "additionalProperties": false}
  })"),
                         200, 2, 190);
  check_random_documents(ojson::parse(R"({
    "type": "object", "additionalProperties": {"type": "integer", "minimum": 7}, "x-unknown-keyword": 1
  })"),
                         100, 3, 40);
  check_random_documents(ojson::parse(R"({
    "$ref": "#/definitions/node",
    "definitions": {"node": {"type": "object", "properties": {
      "v": {"type": "number", "minimum": 0, "maximum": 1},
      "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}, "maxItems": 2}
    }, "required": ["v"], "additionalProperties": false}}
  })"),
                         100, 4, 60);
  check_random_documents(ojson::parse(R"({
    "type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
      "when": {"type": "string", "format": "date-time"}, "x": {}},
    "required": ["id", "when"], "additionalProperties": true
  })"),
                         100, 5, 90);
}

TEST(JsonSchema, IntegerRangesExactly) {
  struct Case {
    std::optional<int64_t> min, max;
  };
  const Case cases[] = {{0, 150},      {-5, 5},           {-1000, -7},         {13, 1999},          {0, 0},
                        {-1, -1},      {7, std::nullopt}, {-42, std::nullopt}, {std::nullopt, 250}, {std::nullopt, -20},
                        {100, 100000}, {999, 1000}};
  for (const Case& c : cases) {
    ojson s = {{"type", "integer"}};
    if (c.min) s["minimum"] = *c.min;
    if (c.max) s["maximum"] = *c.max;
    const auto g = grammar_of(s);
    for (int64_t v = -2100; v <= 2100; ++v) {
      const bool want = (!c.min || v >= *c.min) && (!c.max || v <= *c.max);
      ASSERT_EQ(accepts(g, std::to_string(v)), want) << s.dump() << " on " << v;
    }
    EXPECT_FALSE(accepts(g, "007")) << s.dump();
    EXPECT_FALSE(accepts(g, "-0")) << s.dump();
    if (c.min && !c.max) {
      EXPECT_TRUE(accepts(g, "123456789012345")) << s.dump();  // large values up to 16 digits
      EXPECT_FALSE(accepts(g, "12345678901234567")) << s.dump();
    }
  }
  // Exclusive bounds and fractional bounds round inwards.
  const auto g = grammar_of({{"type", "integer"}, {"exclusiveMinimum", 2.5}, {"exclusiveMaximum", 6}});
  for (int v = 0; v < 9; ++v) EXPECT_EQ(accepts(g, std::to_string(v)), v >= 3 && v <= 5) << v;
}

TEST(JsonSchema, NumberRangesWithIntegerBounds) {
  const auto unit = grammar_of({{"type", "number"}, {"minimum", 0}, {"maximum", 1}});
  for (const char* ok : {"0", "1", "0.5", "0.0001", "1.0", "1.0000", "0.999"}) EXPECT_TRUE(accepts(unit, ok)) << ok;
  for (const char* bad : {"-0.1", "1.5", "2", "1e0", "-1", "1.01", "01"}) EXPECT_FALSE(accepts(unit, bad)) << bad;
  const auto neg = grammar_of({{"type", "number"}, {"minimum", -3}, {"maximum", -1}});
  for (const char* ok : {"-3", "-2.5", "-1", "-1.0", "-2.999"}) EXPECT_TRUE(accepts(neg, ok)) << ok;
  for (const char* bad : {"-3.5", "-0.5", "0", "-4", "1"}) EXPECT_FALSE(accepts(neg, bad)) << bad;
  const auto low = grammar_of({{"type", "number"}, {"minimum", -2}});
  for (const char* ok : {"-2", "-1.5", "0", "123456.25"}) EXPECT_TRUE(accepts(low, ok)) << ok;
  EXPECT_FALSE(accepts(low, "-2.5"));
  EXPECT_FALSE(accepts(low, "-3"));
}

TEST(JsonSchema, PatternsMatchLikeEcmaScriptRegexes) {
  struct Case {
    const char* pattern;
    std::vector<const char*> ok, bad;  // string contents (JSON-escaped as needed)
  };
  const Case cases[] = {
      {"^[A-Z]{2}-\\d{3}$", {"AB-123", "ZZ-000"}, {"AB-12", "ab-123", "AB-1234", "xAB-123"}},
      {"abc", {"abc", "xxabcyy", "abcabc"}, {"ab", "xbcx"}},  // unanchored: anywhere
      {"^a(b|cd)*e?$", {"a", "abcdb", "abe", "acde"}, {"ace", "ab e", "b"}},
      {"^(?:x|y){2,3}$", {"xy", "yyx"}, {"x", "xyxy"}},
      {"^a\"b\\\\c$", {"a\\\"b\\\\c"}, {"a\"b", "a\\\"b\\\\\\\\c"}},  // quote and backslash are escaped in JSON
      {"^\\s\\S.$", {" x\\\"", "\\ty?"}, {"xx ", " \\n\\n"}},         // '.' does not match a newline
      {"^[^a-c]+$", {"xyz", "\\n"}, {"xaz"}},
      {"^\\u00e9+\\x41$", {"ééA"}, {"eA"}},
      {"^.{2}$", {"ab", "é😀"}, {"a", "abc"}},
      {"^[\\^a\\]\\-]+$", {"^a]-", "^"}, {"b"}},  // class members that GBNF escapes
  };
  for (const Case& c : cases) {
    const auto g = grammar_of({{"type", "string"}, {"pattern", c.pattern}});
    auto quoted = [](const char* s) {
      std::string q = "\"";
      q += s;
      q += '"';
      return q;
    };
    for (const char* s : c.ok) EXPECT_TRUE(accepts(g, quoted(s))) << c.pattern << " on " << s;
    for (const char* s : c.bad) EXPECT_FALSE(accepts(g, quoted(s))) << c.pattern << " on " << s;
  }
  for (const char* unsupported : {"^(a)\\1$", "^(?=a)a$", "\\bword", "^a$b", "^\\p{L}$", "^(a$", "^[]$"}) {
    const std::string e = error_of({{"type", "string"}, {"pattern", unsupported}});
    EXPECT_NE(e.find("json schema: at #: pattern:"), std::string::npos) << unsupported << ": " << e;
  }
}

TEST(JsonSchema, PropertyOrderOptionalSubsetsAndAdditionalProperties) {
  // Schema order kept (ordered_json); a plain json sorts the names.
  const ojson ordered = ojson::parse(R"({"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"integer"}},
    "required":["a","b"]})");
  EXPECT_TRUE(accepts(grammar_of(ordered), R"({"b":1,"a":2})"));
  EXPECT_FALSE(accepts(grammar_of(ordered), R"({"a":2,"b":1})"));
  const auto sorted = Grammar::parse(json_schema_to_grammar(nlohmann::json::parse(ordered.dump())));
  EXPECT_TRUE(accepts(sorted, R"({"a":2,"b":1})"));
  EXPECT_FALSE(accepts(sorted, R"({"b":1,"a":2})"));

  // All optional: any subset, in order.
  const auto opt = grammar_of(ojson::parse(R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"},
    "c":{"type":"integer"}}})"));
  for (const char* ok : {"{}", R"({"b":1})", R"({"a":1,"c":3})", R"({"a":1,"b":2,"c":3})", R"({"c":3})"}) {
    EXPECT_TRUE(accepts(opt, ok)) << ok;
  }
  for (const char* bad : {R"({"c":3,"a":1})", R"({"a":1,})", R"({,"a":1})", R"({"a":1,"a":1})", R"({"d":1})"}) {
    EXPECT_FALSE(accepts(opt, bad)) << bad;
  }
  // Optional properties before the first required one.
  const auto mixed = grammar_of(ojson::parse(R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"},
    "c":{"type":"integer"}}, "required":["b"]})"));
  for (const char* ok : {R"({"b":1})", R"({"a":1,"b":2})", R"({"b":2,"c":3})", R"({"a":1,"b":2,"c":3})"}) {
    EXPECT_TRUE(accepts(mixed, ok)) << ok;
  }
  for (const char* bad : {R"({"a":1})", R"({"a":1,"c":3})", R"({"c":3,"b":1})"})
    EXPECT_FALSE(accepts(mixed, bad)) << bad;

  // additionalProperties: true allows other keys (never a declared name again); a schema
  // constrains their values.
  const auto extra = grammar_of(ojson::parse(R"({"properties":{"name":{"type":"string"},"nat":{"type":"integer"}},
    "additionalProperties":true})"));
  for (const char* ok : {R"({"name":"x","zzz":[1]})", R"({"other":{}})", R"({"na":1,"names":2,"n":3,"nat2":4})",
                         R"({"name":"x","nat":1,"x":null,"y":"z"})", R"({"":0})"}) {
    EXPECT_TRUE(accepts(extra, ok)) << ok;
  }
  for (const char* bad : {R"({"name":"x","name":"y"})", R"({"x":1,"name":"y"})", R"({"nat":"x"})"}) {
    EXPECT_FALSE(accepts(extra, bad)) << bad;
  }
  // Names with characters that are special inside GBNF classes.
  const auto odd = grammar_of(ojson::parse(R"({"properties":{"^]":{"type":"integer"},"-\\":{"type":"integer"}},
    "additionalProperties":true})"));
  EXPECT_TRUE(accepts(odd, R"({"^]":1,"-\\":2,"^":3})"));
  EXPECT_FALSE(accepts(odd, R"({"^]":1,"^]":2})"));
  const auto map = grammar_of(ojson::parse(R"({"type":"object","additionalProperties":{"type":"boolean"}})"));
  EXPECT_TRUE(accepts(map, R"({"a":true,"b":false})"));
  EXPECT_FALSE(accepts(map, R"({"a":1})"));
  // Required names without a property schema take any value.
  const auto req =
      grammar_of(ojson::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["z"]})"));
  EXPECT_TRUE(accepts(req, R"({"a":1,"z":[{}]})"));
  EXPECT_FALSE(accepts(req, R"({"a":1})"));
}

TEST(JsonSchema, PrimitivesUnionsAndBuiltInObjectGrammar) {
  EXPECT_TRUE(accepts(grammar_of({{"type", "string"}}), R"("a\"\\\/\b\f\n\r\t\u0041")"));
  EXPECT_FALSE(accepts(grammar_of({{"type", "string"}}), R"("\ude00")"));  // a lone low surrogate
  EXPECT_TRUE(accepts(grammar_of({{"type", "boolean"}}), "false"));
  EXPECT_TRUE(accepts(grammar_of({{"type", "null"}}), "null"));
  EXPECT_TRUE(accepts(grammar_of(ojson::object()), R"([1,{"a":"b"},null])"));  // {} accepts any value
  EXPECT_TRUE(accepts(grammar_of(ojson(true)), "\"x\""));
  const auto u = grammar_of(ojson::parse(R"({"type":["integer","string","null"]})"));
  for (const char* ok : {"1", "\"1\"", "null"}) EXPECT_TRUE(accepts(u, ok)) << ok;
  for (const char* bad : {"1.5", "true", "[]"}) EXPECT_FALSE(accepts(u, bad)) << bad;
  const auto one = grammar_of(ojson::parse(R"({"oneOf":[{"const":{"k":[1,"x"]}},{"enum":[2.5,false]}]})"));
  for (const char* ok : {R"({"k":[1,"x"]})", "2.5", "false"}) EXPECT_TRUE(accepts(one, ok)) << ok;
  EXPECT_FALSE(accepts(one, R"({"k":[1]})"));
  const auto all = grammar_of(ojson::parse(R"({"allOf":[{"properties":{"a":{"type":"integer"}},"required":["a"]},
    {"$ref":"#/$defs/b"}], "$defs":{"b":{"type":"object","properties":{"b":{"type":"string"}}}}})"));
  EXPECT_TRUE(accepts(all, R"({"a":1,"b":"x"})"));
  EXPECT_TRUE(accepts(all, R"({"a":1})"));
  EXPECT_FALSE(accepts(all, R"({"b":"x"})"));
  const auto arr = grammar_of(ojson::parse(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})"));
  for (const char* ok : {"[1,2]", "[1, 2, 3]", "[ 1,2 ]"}) EXPECT_TRUE(accepts(arr, ok)) << ok;
  for (const char* bad : {"[1]", "[1,2,3,4]", "[]", "[1,,2]"}) EXPECT_FALSE(accepts(arr, bad)) << bad;
  const auto fmt = grammar_of(ojson::parse(R"({"type":"string","format":"email"})"));  // an annotation
  EXPECT_TRUE(accepts(fmt, "\"not an email\""));

  const auto obj = Grammar::parse(json_object_grammar());
  EXPECT_TRUE(accepts(obj, R"({"a": [1, {"b": null}]})"));
  EXPECT_FALSE(accepts(obj, "[1]"));
  EXPECT_FALSE(accepts(obj, "\"text\""));
  // Whitespace is limited as llama.cpp's space rule: one space, or newlines with an indent.
  EXPECT_TRUE(accepts(obj, "{\n\n\t\"a\": 1 }"));
  EXPECT_FALSE(accepts(obj, "{  \"a\": 1}"));
  EXPECT_FALSE(accepts(obj, "{\n\n\n\"a\": 1}"));
  EXPECT_FALSE(accepts(obj, "{\n" + std::string(21, ' ') + "\"a\": 1}"));
}

TEST(JsonSchema, ErrorsNameTheLocationAndKeyword) {
  struct Case {
    const char* schema;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"type":"array","uniqueItems":true})", "json schema: at #: keyword 'uniqueItems' is not supported"},
      {R"({"properties":{"a":{"type":"integer","multipleOf":2}}})", "at #/properties/a: keyword 'multipleOf'"},
      {R"({"properties":{"a/b":{"not":{}}}})", "at #/properties/a~1b: keyword 'not'"},
      {R"({"patternProperties":{"x":{}}})", "keyword 'patternProperties' is not supported"},
      {R"({"$ref":"https://example.com/s.json"})", "only local references"},
      {R"({"$ref":"#/$defs/missing","$defs":{}})", "points to nothing ('missing' not found)"},
      {R"({"type":"number","minimum":0.5})", "non-integer bounds on type number"},
      {R"({"type":"number","exclusiveMaximum":3})", "exclusive bounds on type number"},
      {R"({"type":"integer","minimum":5,"maximum":4})", "no integer lies between"},
      {R"({"type":"strin"})", "unknown type 'strin'"},
      {R"({"enum":[]})", "'enum' must be a non-empty array"},
      {R"({"items":{"type":"integer"},"minItems":-1})", "'minItems' must be a non-negative integer"},
      {R"({"type":"array","minItems":3,"maxItems":2})", "maxItems is below minItems"},
      {R"({"properties":{"a":false}})", "at #/properties/a: the schema false accepts nothing"},
      {R"({"anyOf":[{"type":"string"}],"minLength":2})", "keyword 'minLength' next to 'anyOf' is not supported"},
      {R"({"minLength":1,"minimum":2})", "keywords of both string and number without 'type'"},
      {R"({"type":"string","pattern":"^a+$","maxLength":3})", "'pattern' together with"},
      {R"({"required":"a"})", "'required' must be an array of strings"},
      {R"(3)", "a schema must be an object or a boolean"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(ojson::parse(c.schema));
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.schema << "\n" << e;
  }
}

TEST(JsonSchema, GrammarTextIsDeterministicAndNamedLikeLlamaCpp) {
  const std::string a = json_schema_to_grammar(person_schema());
  EXPECT_EQ(a, json_schema_to_grammar(person_schema()));
  // Rules named after the property path, the primitives and llama.cpp's whitespace rule.
  for (const char* line : {"space ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}\n", "\naddress-zip-kv ::= ",
                           "\nref-defs-point ::= ", "\nboolean ::= (\"true\" | \"false\") space\n", "\nroot ::= "}) {
    EXPECT_NE(a.find(line), std::string::npos) << line;
  }
}

TEST(JsonSchema, MutatedSchemasConvertOrFailWithAnError) {
  const std::vector<std::string> seeds = {
      person_schema().dump(),
      R"({"type":"array","items":{"anyOf":[{"type":"integer","minimum":-3},{"type":"string",)"
      R"("pattern":"^a+(b|c)?$"}]},"maxItems":3})",
      R"({"$ref":"#/definitions/n","definitions":{"n":{"type":"object",)"
      R"("properties":{"k":{"$ref":"#/definitions/n"}}}}})",
      R"({"allOf":[{"properties":{"a":{"enum":[1,"x"]}}},{"required":["a"]}],)"
      R"("additionalProperties":{"type":"number","maximum":9}})",
  };
  const std::string specials = "{}[]\":,0123456789-$#/^()|*+?.abcdefghijklmnopqrstuvwxyz";
  std::mt19937 rng(5);
  int converted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text = seeds[rng() % seeds.size()];
    const int n_mut = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < n_mut; ++k) {
      const size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text.insert(at, 1, specials[rng() % specials.size()]);
          break;
        case 1:
          text.erase(at, 1);
          break;
        default:
          text[at] = specials[rng() % specials.size()];
          break;
      }
    }
    ojson schema;
    try {
      schema = ojson::parse(text);
    } catch (const nlohmann::json::exception&) {
      continue;  // not JSON
    }
    std::string grammar;
    try {
      grammar = json_schema_to_grammar(schema);
    } catch (const Error&) {
      continue;  // a clear error is fine; anything else fails the test
    }
    ++converted;
    try {
      GrammarMatcher m(Grammar::parse(grammar));
      m.accept_bytes("{\"a\":1");
    } catch (const Error& e) {
      // Only a schema that refers to itself before any text can make an invalid grammar.
      EXPECT_NE(std::string(e.what()).find("left recursion"), std::string::npos) << text << "\n" << e.what();
    }
  }
  EXPECT_GT(converted, 300);
}

// Several schemas in one grammar (json_schema_rules): each keeps its own rules, the primitives
// are shared, and a recursive $ref stays inside its own schema.
TEST(JsonSchemaRules, SeveralSchemasInOneGrammar) {
  std::map<std::string, std::string> rules;
  const nlohmann::ordered_json a = nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}}, "required": ["n"]})");
  const nlohmann::ordered_json b = nlohmann::ordered_json::parse(
      R"({"$defs": {"t": {"type": "array", "items": {"$ref": "#/$defs/t"}, "maxItems": 2}}, "$ref": "#/$defs/t"})");
  EXPECT_EQ(json_schema_rules(a, "first", rules), "first");
  EXPECT_EQ(json_schema_rules(b, "second", rules), "second");
  std::string gbnf = "root ::= \"A\" first | \"B\" second\n";
  for (const auto& [name, body] : rules) gbnf += name + " ::= " + body + "\n";
  const auto g = Grammar::parse(gbnf);
  const auto accepts = [&](const std::string& text) {
    GrammarMatcher m(g);
    return m.accept_bytes(text) && m.is_complete();
  };
  EXPECT_TRUE(accepts("A{\"n\": 5}"));
  EXPECT_FALSE(accepts("A{\"n\": 6}"));
  EXPECT_FALSE(accepts("A[[]]"));
  EXPECT_TRUE(accepts("B[[], [[]]]"));
  EXPECT_FALSE(accepts("B[[], [], []]"));
  EXPECT_FALSE(accepts("B{\"n\": 1}"));
  EXPECT_THROW(json_schema_rules(a, "bad name", rules), Error);
  EXPECT_THROW(json_schema_rules(b, "first", rules), Error);  // the prefix is taken by other rules
}

}  // namespace
}  // namespace hearth::sample

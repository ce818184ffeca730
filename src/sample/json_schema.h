// JSON Schema to GBNF, for structured output (OpenAI response_format json_schema, Ollama
// `format`). The grammar has the shape llama.cpp's common/json-schema-to-grammar.cpp gives it:
// one rule per (sub)schema named after its property path, the primitive rules `value`, `object`,
// `array`, `string`, `char`, `number`, `integer`, `boolean`, `null`, and llama.cpp's limited
// whitespace rule `space ::= | " " | "\n"{1,2} [ \t]{0,20}` after every value and punctuation.
// Source of the keyword semantics: JSON Schema 2020-12 (core and validation), with llama.cpp's
// choices where it deviates (listed on json_schema_to_grammar).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace hearth::sample {

/// GBNF text whose `root` accepts exactly the JSON documents (compact or with limited whitespace)
/// that validate against `schema`, for the supported subset:
/// - `type` (a name or a list of names): object, array, string, number, integer, boolean, null;
///   without `type`, the keywords present decide (properties → object, items → array, ...) and a
///   schema with none of them (`{}`, `true`) accepts any JSON value;
/// - `enum`, `const` (compared as compact JSON text);
/// - objects: `properties` (emitted in the order given: use ordered_json to keep the caller's
///   order), `required` (a required name without a property schema takes any value),
///   `additionalProperties` (false, true or a schema; absent means false when `properties` is
///   given, as in llama.cpp); properties appear in schema order, required ones always
///   (llama.cpp instead puts all required properties before the optional ones);
/// - arrays: `items` (a schema, or a list as a tuple), `prefixItems` (every prefix item is
///   required), `minItems`, `maxItems`;
/// - strings: `minLength`, `maxLength` (in characters: an escape counts once), `pattern` (an
///   ECMAScript regular expression subset: literals, escapes, classes, `.`, groups, `|`,
///   quantifiers; unanchored patterns match anywhere), `format` date, time, date-time and
///   uuid (other formats are annotations and accept any string);
/// - integers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`; numbers: the same
///   with integer bounds (inclusive);
/// - `anyOf`, `oneOf` (as anyOf: exclusivity is not enforced), `allOf` of object schemas
///   (properties and required merged), `$ref` to `#`, `#/$defs/...`, `#/definitions/...` or any
///   local JSON pointer (recursive schemas allowed).
/// Annotations (title, description, default, examples, $schema, $id, $comment, ...) and unknown
/// keywords are ignored. Two deviations from llama.cpp so that every accepted document parses:
/// escapes `\uXXXX` of UTF-16 surrogates must form a pair (valid Unicode), and number exponents
/// have at most two digits (the value fits a double).
/// Throws Error naming the schema location (a JSON pointer) and the keyword for anything it
/// cannot enforce: not, if/then/else, uniqueItems, contains, patternProperties, propertyNames,
/// min/maxProperties, multipleOf, dependent*, unevaluated*, non-integer number bounds, remote
/// `$ref`s, malformed keyword values, a pattern feature outside the subset (backreferences,
/// lookaround, \b) or an unsatisfiable schema (`false`, empty enum).
std::string json_schema_to_grammar(const nlohmann::ordered_json& schema);
/// As above; a plain nlohmann::json keeps its keys sorted, so properties come in name order.
std::string json_schema_to_grammar(const nlohmann::json& schema);

/// The rules of json_schema_to_grammar(schema), for use inside a larger grammar (e.g. several tools'
/// argument schemas in one tool-call grammar): each rule of the schema is renamed `prefix` + "-" +
/// its name (its `root` becomes `prefix` itself) and added to `rules` (rule name -> GBNF body); the
/// shared primitive rules (`value`, `string`, `space`, ...) keep their names, so rules of several
/// schemas merge. Returns the name of the rule that matches the schema (a value and its trailing
/// `space`). `prefix` must be a GBNF rule name ([a-zA-Z0-9-]+). Throws Error as
/// json_schema_to_grammar does, or if `prefix` is not a valid name or one of its renamed rules is
/// already in `rules` with another body.
std::string json_schema_rules(const nlohmann::ordered_json& schema, std::string_view prefix,
                              std::map<std::string, std::string>& rules);

/// GBNF for any JSON object (response_format `json_object`, Ollama `format: "json"`): the
/// conversion of {"type": "object"}.
const std::string& json_object_grammar();

}  // namespace hearth::sample

// A small JSON Schema validator for the subset json_schema_to_grammar supports, written for the
// tests independently of the converter (JSON Schema 2020-12 validation semantics: unknown
// keywords ignored, additionalProperties true unless given, string lengths in code points,
// patterns searched anywhere unless anchored). Formats date, time, date-time and uuid are checked
// with the same lax shapes as llama.cpp's grammar (a day of 31 in any month is accepted).
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

namespace hearth::sample::test {

using ojson = nlohmann::ordered_json;

inline std::wstring utf32(const std::string& s) {
  std::wstring out;
  for (size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    const int len = b0 < 0x80 ? 1 : b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
    uint32_t cp = len == 1 ? b0 : b0 & (0x7F >> len);
    for (int k = 1; k < len && i + static_cast<size_t>(k) < s.size(); ++k) {
      cp = cp << 6 | (static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) & 0x3F);
    }
    out += static_cast<wchar_t>(cp);
    i += static_cast<size_t>(len);
  }
  return out;
}

class Validator {
 public:
  explicit Validator(const ojson& root) : root_(root) {}

  bool valid(const ojson& v, const ojson& s) const {
    if (s.is_boolean()) return s.get<bool>();
    if (s.contains("$ref")) return valid(v, resolve(s["$ref"].get<std::string>()));
    if (s.contains("anyOf")) {
      bool any = false;
      for (const auto& alt : s["anyOf"]) any = any || valid(v, alt);
      if (!any) return false;
    }
    if (s.contains("oneOf")) {
      int n = 0;
      for (const auto& alt : s["oneOf"]) n += valid(v, alt) ? 1 : 0;
      if (n != 1) return false;
    }
    if (s.contains("allOf")) {
      for (const auto& part : s["allOf"]) {
        if (!valid(v, part)) return false;
      }
    }
    if (s.contains("const") && !(v == s["const"])) return false;
    if (s.contains("enum")) {
      bool found = false;
      for (const auto& e : s["enum"]) found = found || v == e;
      if (!found) return false;
    }
    if (s.contains("type")) {
      bool ok = false;
      if (s["type"].is_array()) {
        for (const auto& t : s["type"]) ok = ok || has_type(v, t.get<std::string>());
      } else {
        ok = has_type(v, s["type"].get<std::string>());
      }
      if (!ok) return false;
    }
    if (v.is_object() && !valid_object(v, s)) return false;
    if (v.is_array() && !valid_array(v, s)) return false;
    if (v.is_string() && !valid_string(v.get<std::string>(), s)) return false;
    if (v.is_number() && !valid_number(v.get<double>(), s)) return false;
    return true;
  }

 private:
  static bool has_type(const ojson& v, const std::string& t) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    if (t == "number") return v.is_number();
    if (t == "integer")
      return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    return false;
  }

  const ojson& resolve(const std::string& ref) const {
    const ojson* t = &root_;
    size_t i = 2;  // after "#/"
    while (ref.size() > 1 && i <= ref.size()) {
      size_t j = ref.find('/', i);
      if (j == std::string::npos) j = ref.size();
      t = &(*t)[ref.substr(i, j - i)];
      i = j + 1;
    }
    return *t;
  }

  bool valid_object(const ojson& v, const ojson& s) const {
    if (s.contains("required")) {
      for (const auto& r : s["required"]) {
        if (!v.contains(r.get<std::string>())) return false;
      }
    }
    for (const auto& [k, x] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(k)) {
        if (!valid(x, s["properties"][k])) return false;
      } else if (s.contains("additionalProperties")) {
        if (!valid(x, s["additionalProperties"])) return false;
      }
    }
    return true;
  }

  bool valid_array(const ojson& v, const ojson& s) const {
    size_t first = 0;
    if (s.contains("prefixItems")) {
      const ojson& p = s["prefixItems"];
      for (size_t i = 0; i < p.size() && i < v.size(); ++i) {
        if (!valid(v[i], p[i])) return false;
      }
      first = p.size();
    }
    if (s.contains("items")) {
      for (size_t i = first; i < v.size(); ++i) {
        if (!valid(v[i], s["items"])) return false;
      }
    }
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    return true;
  }

  static bool valid_string(const std::string& x, const ojson& s) {
    const std::wstring w = utf32(x);
    if (s.contains("minLength") && w.size() < s["minLength"].get<size_t>()) return false;
    if (s.contains("maxLength") && w.size() > s["maxLength"].get<size_t>()) return false;
    if (s.contains("pattern") && !std::regex_search(w, std::wregex(utf32(s["pattern"].get<std::string>()))))
      return false;
    if (s.contains("format")) {
      const std::string f = s["format"].get<std::string>();
      const std::string date = R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))";
      const std::string time = R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))";
      std::string re;
      if (f == "date") re = date;
      if (f == "time") re = time;
      if (f == "date-time") re = date + "T" + time;
      if (f == "uuid") re = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
      if (!re.empty() && !std::regex_match(x, std::regex(re))) return false;
    }
    return true;
  }

  static bool valid_number(double x, const ojson& s) {
    if (s.contains("minimum") && x < s["minimum"].get<double>()) return false;
    if (s.contains("maximum") && x > s["maximum"].get<double>()) return false;
    if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>()) return false;
    if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>()) return false;
    return true;
  }

  const ojson& root_;
};

/// Whether `value` validates against `schema` (its own root for $ref).
inline bool validate(const ojson& value, const ojson& schema) { return Validator(schema).valid(value, schema); }

}  // namespace hearth::sample::test

// Tool-call grammars per family (tool_grammar.h).
#include "chat/tool_grammar.h"

#include <cstdint>
#include <map>

#include "hearth/error.h"
#include "sample/json_schema.h"

namespace hearth::chat {
namespace {

using json = nlohmann::ordered_json;
using Rules = std::map<std::string, std::string>;
using sample::GrammarTrigger;

// A GBNF string literal of `text` (UTF-8 passes through).
std::string lit(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

// One character inside a GBNF class.
std::string class_char(char c) {
  if (c == ']' || c == '[' || c == '\\' || c == '-' || c == '^') return std::string("\\") + c;
  if (c == '\n') return "\\n";
  return std::string(1, c);
}

struct Builder {
  Family family;
  const sample::GrammarVocab* vocab;
  Rules rules;
  std::vector<GrammarTrigger> triggers;

  // A marker: a token reference where it is a control token of the vocabulary, else text.
  std::string mark(const std::string& text) const {
    if (vocab != nullptr)
      if (const auto id = vocab->find(text); id && vocab->piece(*id).empty()) return "<[" + std::to_string(*id) + "]>";
    return lit(text);
  }
  // A trigger on the marker (a token or a word, as mark() writes it).
  void trigger(const std::string& text) {
    if (vocab != nullptr)
      if (const auto id = vocab->find(text); id && vocab->piece(*id).empty()) {
        triggers.push_back({GrammarTrigger::Kind::Token, "", *id});
        return;
      }
    triggers.push_back({GrammarTrigger::Kind::Word, text, -1});
  }

  // A rule for text that never contains the first two characters of `marker` in a row (so that it
  // cannot run into the marker); a marker that is a control token cannot be spelled by text at all.
  std::string free_text(const std::string& marker) {
    if (mark(marker)[0] == '<') return add("tc-any", "[^\\x00]*");
    const std::string a = class_char(marker[0]), b = class_char(marker[1]);
    return add(
        "tc-free-" + std::to_string(static_cast<unsigned char>(marker[0])) + "-" +
            std::to_string(static_cast<unsigned char>(marker[1])),
        "( [^" + a + "] | " + lit(marker.substr(0, 1)) + "+ [^" + a + b + "] )* " + lit(marker.substr(0, 1)) + "*");
  }

  std::string add(const std::string& name, const std::string& body) {
    rules[name] = body;
    return name;
  }

  std::string gbnf() const {
    std::string out;
    for (const auto& [name, body] : rules) out += name + " ::= " + body + "\n";
    return out;
  }

  // ---- Gemma 4 values: {k:v,...}, [..], <|"|>text<|"|>, numbers, true, false, null ----

  std::string gemma_any() {
    if (rules.count("gm-value")) return "gm-value";
    const std::string q = mark("<|\"|>");
    // No "<|" (a quote) and no "<t" (<tool_call|> ends the block wherever it is).
    add("gm-string", q + " ( [^<] | \"<\"+ [^<|t] )* \"<\"* " + q);
    add("gm-number", "\"-\"? ([0] | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,15})?");
    add("gm-key", "[a-zA-Z_] [a-zA-Z0-9_]*");
    add("gm-object", "\"{\" (gm-key \":\" gm-value (\",\" gm-key \":\" gm-value)*)? \"}\"");
    add("gm-array", "\"[\" (gm-value (\",\" gm-value)*)? \"]\"");
    return add("gm-value", "gm-string | gm-number | \"true\" | \"false\" | \"null\" | gm-object | gm-array");
  }

  std::string gemma_literal(const json& v) {
    if (v.is_string()) {
      gemma_any();
      const std::string q = mark("<|\"|>");
      return q + " " + lit(v.get<std::string>()) + " " + q;
    }
    if (v.is_object() || v.is_array()) return gemma_any();  // structured constants: any value of the syntax
    return lit(v.dump());
  }

  std::string gemma_key(const std::string& key) {
    bool ident = !key.empty();
    for (char c : key)
      ident = ident && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
    if (ident) return lit(key + ":");
    gemma_any();
    const std::string q = mark("<|\"|>");
    return q + " " + lit(key) + " " + q + " \":\"";
  }

  // The rule for a value of schema `s` in Gemma's syntax.
  std::string gemma_value(const json& s, const std::string& name, int depth) {
    if (depth > 64) throw Error("tool grammar: schema nested deeper than 64 levels");
    if (!s.is_object() || s.empty()) return gemma_any();
    for (const char* key : {"anyOf", "oneOf"})
      if (s.contains(key) && s[key].is_array() && !s[key].empty()) {
        std::string body;
        for (size_t i = 0; i < s[key].size(); ++i)
          body += (i ? " | " : "") + gemma_value(s[key][i], name + "-" + std::to_string(i), depth + 1);
        return add(name, body);
      }
    if (s.contains("const")) return add(name, gemma_literal(s["const"]));
    if (s.contains("enum") && s["enum"].is_array() && !s["enum"].empty()) {
      std::string body;
      for (size_t i = 0; i < s["enum"].size(); ++i) body += (i ? " | " : "") + gemma_literal(s["enum"][i]);
      return add(name, body);
    }
    std::vector<std::string> types;
    if (s.contains("type") && s["type"].is_string()) types.push_back(s["type"].get<std::string>());
    if (s.contains("type") && s["type"].is_array())
      for (const json& t : s["type"])
        if (t.is_string()) types.push_back(t.get<std::string>());
    if (types.empty()) {
      if (s.contains("properties"))
        types.push_back("object");
      else if (s.contains("items"))
        types.push_back("array");
      else
        return gemma_any();
    }
    gemma_any();
    std::string body;
    for (size_t ti = 0; ti < types.size(); ++ti) {
      const std::string& t = types[ti];
      std::string alt;
      if (t == "string" && s.contains("maxLength") && s["maxLength"].is_number_unsigned()) {
        const uint64_t lo =
            s.contains("minLength") && s["minLength"].is_number_unsigned() ? s["minLength"].get<uint64_t>() : 0;
        const std::string q = mark("<|\"|>");
        alt = q + " [^<]{" + std::to_string(lo) + "," + std::to_string(s["maxLength"].get<uint64_t>()) + "} " + q;
      } else if (t == "string") {
        alt = "gm-string";
      } else if (t == "integer" || t == "number" || t == "boolean" || t == "null") {
        // Bare scalars are written as in JSON (the reader trims the whitespace JSON's rule allows).
        json scalar = s;
        scalar["type"] = t;
        try {
          alt = sample::json_schema_rules(scalar, name + "-" + t, rules);
        } catch (const Error& e) {
          throw Error(std::string("tool grammar: ") + e.what());
        }
      } else if (t == "array") {
        const std::string item =
            s.contains("items") ? gemma_value(s["items"], name + "-item", depth + 1) : std::string("gm-value");
        const auto bound = [&](const char* key, uint64_t dflt) {
          return s.contains(key) && s[key].is_number_unsigned() ? s[key].get<uint64_t>() : dflt;
        };
        const uint64_t lo = bound("minItems", 0), hi = bound("maxItems", UINT64_MAX);
        if (hi == 0) {
          alt = "\"[\" \"]\"";
        } else {
          const std::string more = "(\",\" " + item + "){" + std::to_string(lo > 0 ? lo - 1 : 0) + "," +
                                   (hi == UINT64_MAX ? std::string() : std::to_string(hi - 1)) + "}";
          alt = "\"[\" " + (lo > 0 ? item + " " + more : "(" + item + " " + more + ")?") + " \"]\"";
        }
      } else if (t == "object") {
        alt = gemma_object(s, name + "-obj", depth);
      } else {
        throw Error("tool grammar: unknown type '" + t + "'");
      }
      body += (ti ? " | " : "") + alt;
    }
    return add(name, body);
  }

  // {k:v,...}: the properties in schema order, required ones always, optional ones may be left out.
  std::string gemma_object(const json& s, const std::string& name, int depth) {
    const json props = s.contains("properties") && s["properties"].is_object() ? s["properties"] : json::object();
    if (props.empty()) return "gm-object";
    std::vector<std::string> kv;
    std::vector<bool> req;
    size_t i = 0;
    for (const auto& [key, sub] : props.items()) {
      kv.push_back(gemma_key(key) + " " + gemma_value(sub, name + "-" + std::to_string(i++), depth + 1));
      bool r = false;
      if (s.contains("required") && s["required"].is_array())
        for (const json& k : s["required"]) r = r || k == key;
      req.push_back(r);
    }
    // rest(j): the items after j, each with its leading comma (optional ones optional).
    auto rest = [&](size_t j) {
      std::string out;
      for (size_t k = j + 1; k < kv.size(); ++k) out += req[k] ? " \",\" " + kv[k] : " (\",\" " + kv[k] + ")?";
      return out;
    };
    size_t first_req = kv.size();
    for (size_t k = 0; k < kv.size(); ++k)
      if (req[k]) {
        first_req = k;
        break;
      }
    std::string body;
    if (first_req < kv.size()) {
      for (size_t k = 0; k < first_req; ++k) body += "(" + kv[k] + " \",\")? ";
      body += kv[first_req] + rest(first_req);
    } else {
      body = "(";
      for (size_t k = 0; k < kv.size(); ++k) body += (k ? " | " : "") + kv[k] + rest(k);
      body += ")?";
    }
    return add(name, "\"{\" " + body + " \"}\"");
  }
};

const json& function_of(const json& tool) { return tool.contains("function") ? tool["function"] : tool; }

// The parameters schema of a tool (any object when it has none).
json parameters_of(const json& f) {
  const auto p = f.find("parameters");
  if (p == f.end() || p->is_null()) return json{{"type", "object"}};
  return *p;
}

// Whether the output parser keeps a <parameter=K> value of this schema as raw text
// (tool_syntax.cpp parameter_type: a declared "string" type).
bool raw_string_param(const json& s) {
  if (!s.is_object() || !s.contains("type")) return false;
  const json& t = s["type"];
  if (t.is_string()) return t == "string";
  if (t.is_array())
    for (const json& x : t)
      if (x == "string") return true;
  return false;
}

}  // namespace

ToolGrammar build_tool_grammar(Family family, const json& tools, const ToolGrammarOptions& options,
                               const sample::GrammarVocab* vocab) {
  if (!tools.is_array() || tools.empty()) throw Error("tool grammar: 'tools' must be a non-empty array");
  Builder b{family, vocab, {}, {}};
  // The chosen tools: (index, name, parameters).
  struct Tool {
    std::string name;
    json params;
    std::string id;  // rule prefix
  };
  std::vector<Tool> chosen;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& f = function_of(tools[i]);
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      throw Error("tool grammar: tool " + std::to_string(i) + " has no function name");
    const std::string name = f["name"].get<std::string>();
    if (!options.function.empty() && name != options.function) continue;
    chosen.push_back({name, parameters_of(f), "tool-" + std::to_string(i)});
  }
  if (chosen.empty())
    throw Error("tool grammar: tool_choice names '" + options.function + "', which is not among the tools");
  const bool required = options.required || !options.function.empty();

  // The arguments rule of each tool as JSON.
  auto json_args = [&](const Tool& t) {
    try {
      return sample::json_schema_rules(t.params, t.id + "-args", b.rules);
    } catch (const Error& e) {
      throw Error("tool grammar: parameters of tool '" + t.name + "': " + e.what());
    }
  };
  // {"name": "NAME", "<key>": ARGS} per tool (with Mistral's id), as alternatives.
  auto json_call = [&](const std::string& args_key, bool flexible, bool with_id) {
    if (flexible) b.add("tc-ws", "[ \\t\\n]{0,2}");
    std::string body;
    for (size_t i = 0; i < chosen.size(); ++i) {
      const Tool& t = chosen[i];
      body += (i ? " | " : "");
      if (flexible) {  // {"name": ...} as the model may space it (what the start trigger lets through)
        body += "\"{\" tc-ws " + lit("\"name\"") + " tc-ws \":\" tc-ws " + lit(json(t.name).dump()) +
                " tc-ws \",\" tc-ws " + lit("\"" + args_key + "\"") + " tc-ws \":\" tc-ws " + json_args(t);
      } else {  // as the templates write it
        body += lit("{\"name\": " + json(t.name).dump() + ", \"" + args_key + "\": ") + " " + json_args(t);
      }
      if (with_id) body.append(" ").append(lit(", \"id\": \"")).append(" [a-zA-Z0-9]{9} \"\\\"\"");
      body += " \"}\"";
    }
    return b.add("tc-call", body);
  };
  auto repeat = [&](const std::string& item, const std::string& sep) {
    return options.parallel ? item + " (" + sep + " " + item + ")*" : item;
  };

  std::string calls;  // the call(s), from the opening marker on
  switch (family) {
    case Family::Generic:
    case Family::Qwen3: {
      const std::string call = json_call("arguments", false, false);
      b.add("tc-block", b.mark("<tool_call>") + " \"\\n\" " + call + " \"\\n\" " + b.mark("</tool_call>"));
      calls = repeat("tc-block", "\"\\n\"");
      b.trigger("<tool_call>");
      break;
    }
    case Family::Qwen35: {
      std::string body;
      for (size_t i = 0; i < chosen.size(); ++i) {
        const Tool& t = chosen[i];
        std::string params;
        const json props = t.params.is_object() && t.params.contains("properties") && t.params["properties"].is_object()
                               ? t.params["properties"]
                               : json::object();
        size_t k = 0;
        for (const auto& [key, sub] : props.items()) {
          std::string value;
          if (raw_string_param(sub)) {
            if (sub.contains("enum") && sub["enum"].is_array() && !sub["enum"].empty()) {
              value = "(";
              for (size_t e = 0; e < sub["enum"].size(); ++e)
                value += (e ? " | " : "") +
                         lit(sub["enum"][e].is_string() ? sub["enum"][e].get<std::string>() : sub["enum"][e].dump());
              value += ")";
            } else if (sub.contains("maxLength") && sub["maxLength"].is_number_unsigned()) {
              // A bounded string: without '<' (so that its length can be counted in characters).
              const uint64_t lo = sub.contains("minLength") && sub["minLength"].is_number_unsigned()
                                      ? sub["minLength"].get<uint64_t>()
                                      : 0;
              value = "[^<]{" + std::to_string(lo) + "," + std::to_string(sub["maxLength"].get<uint64_t>()) + "}";
            } else {
              value = b.free_text("</");
            }
          } else {
            try {
              value = sample::json_schema_rules(sub, t.id + "-p" + std::to_string(k), b.rules);
            } catch (const Error& e) {
              throw Error("tool grammar: parameter '" + key + "' of tool '" + t.name + "': " + e.what());
            }
          }
          bool req = false;
          if (t.params.contains("required") && t.params["required"].is_array())
            for (const json& r : t.params["required"]) req = req || r == key;
          const std::string p = lit("<parameter=" + key + ">\n") + " " + value + " " + lit("\n</parameter>\n");
          params += req ? " " + p : " (" + p + ")?";
          ++k;
        }
        if (props.empty())  // no declared parameters: any, as text
          params = " (\"<parameter=\" [a-zA-Z0-9_]+ \">\\n\" " + b.free_text("</") + " \"\\n</parameter>\\n\")*";
        body += (i ? " | " : "") + lit("<function=" + t.name + ">\n") + params + " " + lit("</function>");
      }
      b.add("tc-function", body);
      b.add("tc-block", b.mark("<tool_call>") + " \"\\n\" tc-function \"\\n\" " + b.mark("</tool_call>"));
      calls = repeat("tc-block", "\"\\n\"");
      b.trigger("<tool_call>");
      break;
    }
    case Family::Llama3:
    case Family::Llama4: {
      const std::string call = json_call("parameters", true, false);
      std::string tagged;
      if (family == Family::Llama3) {
        tagged = b.mark("<|python_tag|>") + " " + call;
        b.trigger("<|python_tag|>");
      } else {
        tagged = b.mark("<|python_start|>") + " " + repeat(call, "\"; \"") + " " + b.mark("<|python_end|>");
        b.trigger("<|python_start|>");
      }
      calls = "(" + call + " | " + tagged + ")";
      for (const char* w : {"{\"name\"", "{ \"name\""}) b.triggers.push_back({GrammarTrigger::Kind::StartWord, w, -1});
      break;
    }
    case Family::Gemma4: {
      std::string body;
      for (size_t i = 0; i < chosen.size(); ++i) {
        const Tool& t = chosen[i];
        json params = t.params;
        if (!params.is_object() || (params.contains("type") && params["type"] != "object")) params = json::object();
        body += (i ? " | " : "") + lit("call:" + t.name) + " " + b.gemma_object(params, t.id + "-gm", 0);
      }
      b.add("tc-function", body);
      b.add("tc-block", b.mark("<|tool_call>") + " tc-function " + b.mark("<tool_call|>"));
      calls = repeat("tc-block", "");
      b.trigger("<|tool_call>");
      break;
    }
    case Family::DeepSeekR1: {
      std::string body;
      for (size_t i = 0; i < chosen.size(); ++i) {
        const Tool& t = chosen[i];
        body += std::string(i ? " | " : "") + b.mark("<｜tool▁call▁begin｜>") + " \"function\" " +
                b.mark("<｜tool▁sep｜>") + " " + lit(t.name + "\n```json\n") + " " + json_args(t) + " \"\\n```\" " +
                b.mark("<｜tool▁call▁end｜>");
      }
      b.add("tc-call", body);
      calls =
          b.mark("<｜tool▁calls▁begin｜>") + " " + repeat("tc-call", "\"\\n\"") + " " + b.mark("<｜tool▁calls▁end｜>");
      b.trigger("<｜tool▁calls▁begin｜>");
      break;
    }
    case Family::Mistral: {
      const std::string call = json_call("arguments", false, true);
      calls = b.mark("[TOOL_CALLS]") + " \"[\" " + repeat(call, "\", \"") + " \"]\"";
      b.trigger("[TOOL_CALLS]");
      break;
    }
  }

  ToolGrammar g;
  g.lazy = !required;
  if (g.lazy) {
    b.add("root", calls);
    g.triggers = std::move(b.triggers);
  } else {
    // The reasoning section may come first (it must be closed where the prompt opened it).
    const ThinkingMarkers think = thinking_markers(family);
    std::string root = calls;
    if (!think.open.empty() && options.starts_in_reasoning) {
      root = b.free_text(think.close) + " " + b.mark(think.close) + " [ \\t\\n]* " + calls;
    } else if (!think.open.empty() && options.allow_reasoning) {
      root = "(" + b.mark(think.open) + " " + b.free_text(think.close) + " " + b.mark(think.close) + " [ \\t\\n]*)? " +
             calls;
    }
    b.add("root", root);
  }
  g.gbnf = b.gbnf();
  return g;
}

void set_tool_grammar(sample::Sampler& sampler, const ToolGrammar& grammar,
                      std::shared_ptr<const sample::GrammarVocab> vocab) {
  auto parsed = sample::Grammar::parse(grammar.gbnf, vocab.get());
  if (grammar.lazy) {
    sampler.set_lazy_grammar(std::move(parsed), std::move(vocab), grammar.triggers);
  } else {
    sampler.set_grammar(std::move(parsed), std::move(vocab));
  }
}

}  // namespace hearth::chat

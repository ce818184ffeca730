#include "server/api.h"

#include <cctype>
#include <random>

#include "chat/formats.h"
#include "chat/template.h"
#include "chat/tool_grammar.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"

namespace hearth::server {

using json = nlohmann::json;

ApiError bad_request(const std::string& message, const std::string& param) {
  return ApiError(400, "invalid_request_error", "", message, param);
}

ApiError context_overflow(uint32_t n_prompt, uint32_t n_ctx) {
  ApiError e(400, "invalid_request_error", "context_length_exceeded",
             "This model's maximum context length is " + std::to_string(n_ctx) + " tokens, but the prompt has " +
                 std::to_string(n_prompt) + " tokens. Shorten the prompt or the conversation.",
             "messages");
  e.extra["n_prompt_tokens"] = n_prompt;
  e.extra["n_ctx"] = n_ctx;
  return e;
}

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::optional<int64_t> get_int(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  throw bad_request(std::string("'") + key + "' must be an integer, not " + dump(*it), key);
}

std::optional<double> get_number(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw bad_request(std::string("'") + key + "' must be a number, not " + dump(*it), key);
  return it->get<double>();
}

std::optional<bool> get_bool(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw bad_request(std::string("'") + key + "' must be a boolean, not " + dump(*it), key);
  return it->get<bool>();
}

std::optional<std::string> get_string(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw bad_request(std::string("'") + key + "' must be a string, not " + dump(*it), key);
  return it->get<std::string>();
}

void read_options(const json& o, JobSpec& job) {
  if (o.is_null()) return;
  if (!o.is_object()) throw bad_request("'options' must be an object", "options");
  const auto opt = [&](const char* key, bool integer) -> std::optional<double> {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return std::nullopt;
    const bool ok = integer ? (it->is_number_integer() ||
                               (it->is_number_float() && it->get<double>() == static_cast<int64_t>(it->get<double>())))
                            : it->is_number();
    if (!ok)
      throw ApiError(400, "invalid_request_error", "",
                     std::string("option \"") + key + "\" must be of type " + (integer ? "integer" : "float"), key);
    return it->get<double>();
  };
  sample::SamplerParams& s = job.sampling;
  if (auto v = opt("temperature", false)) s.temp = static_cast<float>(*v);
  if (auto v = opt("top_k", true)) s.top_k = static_cast<int32_t>(*v);
  if (auto v = opt("top_p", false)) s.top_p = static_cast<float>(*v);
  if (auto v = opt("min_p", false)) s.min_p = static_cast<float>(*v);
  if (auto v = opt("repeat_penalty", false)) s.repeat_penalty = static_cast<float>(*v);
  if (auto v = opt("repeat_last_n", true)) s.repeat_last_n = static_cast<int32_t>(*v);
  if (auto v = opt("presence_penalty", false)) s.presence_penalty = static_cast<float>(*v);
  if (auto v = opt("frequency_penalty", false)) s.frequency_penalty = static_cast<float>(*v);
  if (auto v = opt("seed", true); v && *v >= 0) s.seed = static_cast<uint64_t>(*v);
  if (auto v = opt("num_predict", true)) job.max_tokens = *v < 0 ? -1 : static_cast<int32_t>(*v);
  if (auto v = opt("num_ctx", true)) {
    if (*v < 1) throw ApiError(400, "invalid_request_error", "", "option \"num_ctx\" must be at least 1", "num_ctx");
    job.n_ctx = *v >= static_cast<double>(UINT32_MAX) ? UINT32_MAX : static_cast<uint32_t>(*v);
  }
  opt("num_thread", true);  // one batch for all slots, computed by the server's -t threads
  if (auto it = o.find("stop"); it != o.end() && !it->is_null()) {
    if (it->is_string()) job.stop = {it->get<std::string>()};
    else if (it->is_array()) {
      job.stop.clear();
      for (const json& s2 : *it) {
        if (!s2.is_string()) throw ApiError(400, "invalid_request_error", "", "option \"stop\" must be of type []string", "stop");
        job.stop.push_back(s2.get<std::string>());
      }
    } else {
      throw ApiError(400, "invalid_request_error", "", "option \"stop\" must be of type []string", "stop");
    }
  }
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The text of a content value: a string, null, or an array of parts.
ojson flatten_content(const json& content, size_t index) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array())
    throw bad_request("messages[" + std::to_string(index) + "].content must be a string or an array of parts",
                      "messages");
  std::string text;
  for (const json& part : content) {
    if (part.is_string()) {
      text += part.get<std::string>();
      continue;
    }
    const std::string type = part.is_object() ? part.value("type", "") : "";
    if (type == "text" || type == "input_text") text += part.value("text", "");
    else if (type == "image_url" || type == "input_image" || type == "image")
      throw bad_request("image input is not supported by this model", "messages");
    else if (type == "input_audio") throw bad_request("audio input is not supported by this model", "messages");
    else
      throw bad_request("messages[" + std::to_string(index) + "]: unsupported content part type '" + type + "'",
                        "messages");
  }
  return text;
}

}  // namespace

ojson normalize_messages(const json& messages) {
  if (!messages.is_array()) throw bad_request("'messages' must be an array", "messages");
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw bad_request("messages[" + std::to_string(i) + "] must be an object with a string 'role'", "messages");
    ojson msg = ojson::object();
    std::string role = lower(m["role"].get<std::string>());
    if (role == "developer") role = "system";
    if (role == "function") role = "tool";
    msg["role"] = role;
    msg["content"] = flatten_content(m.contains("content") ? m["content"] : json(), i);
    // A null content (an assistant message with only tool calls) is "": templates test and
    // concatenate it as a string (Qwen 3's `'</think>' in message.content`), as llama.cpp and
    // Ollama pass it.
    if (msg["content"].is_null()) msg["content"] = "";
    for (const char* key : {"reasoning_content", "reasoning", "thinking"})
      if (m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty()) {
        msg["reasoning_content"] = m[key];
        break;
      }
    if (m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty()) {
      ojson calls = ojson::array();
      for (const json& c : m["tool_calls"]) {
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
          throw bad_request("messages[" + std::to_string(i) + "].tool_calls: each call needs a 'function' object",
                            "messages");
        ojson call = ojson::object();
        if (c.contains("id")) call["id"] = c["id"];
        call["type"] = "function";
        ojson fn = ojson::object();
        fn["name"] = c["function"].value("name", "");
        json args = c["function"].contains("arguments") ? c["function"]["arguments"] : json::object();
        if (args.is_string()) {
          json parsed = json::parse(args.get<std::string>(), nullptr, false);
          if (!parsed.is_discarded()) args = parsed;
        }
        fn["arguments"] = ojson::parse(args.dump());
        call["function"] = fn;
        calls.push_back(call);
      }
      msg["tool_calls"] = calls;
    }
    if (m.contains("tool_call_id")) msg["tool_call_id"] = m["tool_call_id"];
    if (m.contains("name") && m["name"].is_string()) msg["name"] = m["name"];
    if (m.contains("tool_name") && m["tool_name"].is_string()) msg["name"] = m["tool_name"];
    out.push_back(std::move(msg));
  }
  return out;
}

namespace {

// A GBNF string literal of `s` (ASCII specials escaped).
std::string gbnf_literal(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A GBNF class item for one character (\xNN for ASCII).
std::string class_char(char c) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\x%02X", static_cast<unsigned>(static_cast<uint8_t>(c)));
  return buf;
}

// Renames the rule `root` to `json-root` everywhere in `gbnf` (outside literals and classes).
std::string rename_root(const std::string& g) {
  std::string out;
  size_t i = 0;
  const auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; };
  while (i < g.size()) {
    const char c = g[i];
    if (c == '"' || c == '[') {
      const char close = c == '"' ? '"' : ']';
      size_t j = i + 1;
      while (j < g.size() && g[j] != close) j += g[j] == '\\' ? 2 : 1;
      out.append(g, i, std::min(j + 1, g.size()) - i);
      i = j + 1;
    } else if (c == '#') {
      size_t j = g.find('\n', i);
      if (j == std::string::npos) j = g.size();
      out.append(g, i, j - i);
      i = j;
    } else if (ident(c)) {
      size_t j = i;
      while (j < g.size() && ident(g[j])) ++j;
      const std::string word = g.substr(i, j - i);
      out += word == "root" ? "json-root" : word;
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string grammar_after_reasoning(const std::string& json_gbnf, const std::string& open, const std::string& close,
                                    bool starts_in_reasoning) {
  // reasoning-text: any text in which `close` does not occur: at each position either a character
  // that cannot start it, or a proper prefix of it followed by a character that does not continue it.
  std::string alts;
  for (size_t k = 0; k < close.size(); ++k) {
    if (!alts.empty()) alts += " | ";
    if (k > 0) alts += gbnf_literal(close.substr(0, k)) + " ";
    alts += "[^" + class_char(close[k]) + "]";
  }
  std::string g = rename_root(json_gbnf);
  g += "\nreasoning-text ::= (" + alts + ")*\n";
  g += "reasoning-ws ::= [\\x20\\x09\\x0A]{0,4}\n";
  if (starts_in_reasoning)
    g += "root ::= reasoning-text " + gbnf_literal(close) + " reasoning-ws json-root\n";
  else
    g += "root ::= (" + gbnf_literal(open) + " reasoning-text " + gbnf_literal(close) + " reasoning-ws)? json-root\n";
  return g;
}

std::string finish_reason(const StepOutput& d, bool tool_calls_reason) {
  switch (d.completion.reason) {
    case FinishReason::Stop: return tool_calls_reason && d.tool_calls > 0 ? "tool_calls" : "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "stop";
}

PreparedJob prepare_job(const JobSpec& job, const LoadedModel& lm) {
  const tokenizer::Tokenizer& tok = lm.model->tokenizer();
  PreparedJob out;
  SessionParams& sp = out.params;
  bool thinking_possible = false;
  if (job.chat) {
    chat::ChatInputs in;
    in.messages = job.messages;
    if (!job.tools.is_null() && job.tool_choice != "none") {
      if (job.tool_choice == "auto" || job.tool_choice == "required") {
        in.tools = job.tools;
      } else {  // a named function: offer only that one
        in.tools = ojson::array();
        for (const auto& t : job.tools)
          if (t.contains("function") && t["function"].value("name", "") == job.tool_choice) in.tools.push_back(t);
        if (in.tools.empty())
          throw bad_request("tool_choice names the function '" + job.tool_choice + "', which is not in 'tools'",
                            "tool_choice");
      }
    }
    in.thinking = job.thinking;
    in.extra = job.template_kwargs;
    chat::RenderedPrompt rp;
    try {
      rp = lm.chat_template.render(in);
    } catch (const Error& e) {
      throw bad_request(std::string("the chat template failed: ") + e.what(), "messages");
    }
    out.prompt_text = rp.text;
    sp.request.prompt = tok.encode(rp.text, false, /*parse_special=*/true);
    if (tok.add_bos() && tok.bos() && (sp.request.prompt.empty() || sp.request.prompt[0] != *tok.bos()))
      sp.request.prompt.insert(sp.request.prompt.begin(), *tok.bos());
    sp.parse = true;
    sp.family = rp.family;
    sp.parser_options = rp.parser_options();
    bool thinking_off = job.thinking == chat::Thinking::Off;
    if (auto it = job.template_kwargs.find("enable_thinking"); it != job.template_kwargs.end() && it->is_boolean())
      thinking_off = !it->get<bool>();
    // A reasoning section can come first where the prompt opened one, or where thinking is not
    // off and the template knows the family's opening marker (a thinking model's template).
    const std::string& open_marker = chat::thinking_markers(rp.family).open;
    thinking_possible = rp.starts_in_reasoning ||
                        (!thinking_off && !open_marker.empty() &&
                         lm.chat_template.source().find(open_marker) != std::string::npos);
    sp.parser_options.stream_tool_calls = job.stream;
    if (!in.tools.is_null() && !in.tools.empty() && !job.schema && !job.json_object) {
      // Tool-call arguments valid against their schemas: a lazy grammar from the family's call
      // marker on (tool_choice auto), or a call from the first token (required, a named function).
      chat::ToolGrammarOptions to;
      to.required = job.tool_choice == "required";
      if (job.tool_choice != "auto" && job.tool_choice != "required") to.function = job.tool_choice;
      to.parallel = job.parallel_tool_calls;
      to.starts_in_reasoning = rp.starts_in_reasoning;
      to.allow_reasoning = thinking_possible;
      try {
        const chat::ToolGrammar tg = chat::build_tool_grammar(rp.family, in.tools, to, lm.grammar_vocab().get());
        sp.request.grammar = sample::Grammar::parse(tg.gbnf, lm.grammar_vocab().get());
        if (tg.lazy) sp.request.grammar_triggers = tg.triggers;
      } catch (const Error& e) {
        throw bad_request(std::string("the tools cannot be enforced: ") + e.what(), "tools");
      }
    }
    if (job.schema || job.json_object) {
      std::string gbnf;
      try {
        gbnf = job.schema ? sample::json_schema_to_grammar(*job.schema) : sample::json_object_grammar();
      } catch (const Error& e) {
        throw bad_request(std::string("the JSON schema cannot be enforced: ") + e.what(), "response_format");
      }
      if (thinking_possible) {
        const chat::ThinkingMarkers m = chat::thinking_markers(rp.family);
        gbnf = grammar_after_reasoning(gbnf, m.open, m.close, rp.starts_in_reasoning);
      }
      sp.request.grammar = sample::Grammar::parse(gbnf, lm.grammar_vocab().get());
    }
  } else {
    out.prompt_text = job.prompt;
    if (!job.prompt_tokens.empty()) sp.request.prompt = job.prompt_tokens;
    else sp.request.prompt = tok.encode(job.prompt, /*add_special=*/true, /*parse_special=*/true);
    sp.parse = false;
    if (job.schema || job.json_object) {
      std::string gbnf;
      try {
        gbnf = job.schema ? sample::json_schema_to_grammar(*job.schema) : sample::json_object_grammar();
      } catch (const Error& e) {
        throw bad_request(std::string("the JSON schema cannot be enforced: ") + e.what(), "response_format");
      }
      sp.request.grammar = sample::Grammar::parse(gbnf, lm.grammar_vocab().get());
    }
  }
  if (sp.request.prompt.empty()) throw bad_request("the prompt has no tokens", job.chat ? "messages" : "prompt");
  out.n_prompt = sp.request.prompt.size();
  sp.request.n_ctx = job.n_ctx;
  const uint32_t n_ctx = request_n_ctx(sp.request, lm.params);
  if (out.n_prompt >= n_ctx) throw context_overflow(static_cast<uint32_t>(out.n_prompt), n_ctx);
  sp.request.sampling = job.sampling;
  try {
    sp.request.sampling.validate();
  } catch (const Error& e) {
    throw bad_request(e.what());
  }
  sp.request.max_tokens = job.max_tokens;
  sp.request.want_logprobs = job.logprobs;
  sp.request.top_logprobs = job.logprobs ? job.top_logprobs : 0;
  sp.request.ignore_eos = job.ignore_eos;
  sp.n = job.n;
  sp.stop = job.stop;
  return out;
}

}  // namespace hearth::server

#include "server/openai.h"

#include <cmath>
#include <limits>
#include <random>

#include "server/util.h"

namespace hearth::server::openai {

using json = nlohmann::json;

namespace {

uint64_t random_seed() {
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) | rd();
}

float finite(float v) { return std::isfinite(v) ? v : std::numeric_limits<float>::lowest(); }

// Fields both /v1 generation routes share.
void read_common(const json& b, JobSpec& job) {
  if (!b.is_object()) throw bad_request("the request body must be a JSON object");
  if (auto m = get_string(b, "model")) job.model = *m;
  job.sampling.seed = random_seed();
  job.stream = get_bool(b, "stream").value_or(false);
  if (job.stream && b.contains("stream_options") && b["stream_options"].is_object())
    job.include_usage = get_bool(b["stream_options"], "include_usage").value_or(false);
  read_options(b, job);  // temperature, top_p, top_k, min_p, penalties, seed, stop at the top level
  if (b.contains("options")) read_options(b["options"], job);  // Ollama options on /v1 (api.md 1.1.1)
  for (const char* key : {"n_predict", "max_tokens", "max_completion_tokens"})
    if (auto v = get_int(b, key)) job.max_tokens = *v < 0 ? -1 : static_cast<int32_t>(*v);
  if (auto v = get_int(b, "n")) {
    if (*v < 1 || *v > 16) throw bad_request("'n' must be between 1 and 16", "n");
    job.n = static_cast<int>(*v);
  }
  job.ignore_eos = get_bool(b, "ignore_eos").value_or(false);
  if (b.contains("keep_alive") && !b["keep_alive"].is_null()) {
    try {
      job.keep_alive_ms = parse_keep_alive(b["keep_alive"]);
    } catch (const Error& e) {
      throw bad_request(e.what(), "keep_alive");
    }
  }
}

void read_response_format(const json& b, JobSpec& job) {
  if (b.contains("json_schema") && b["json_schema"].is_object()) job.schema = ojson::parse(b["json_schema"].dump());
  auto it = b.find("response_format");
  if (it == b.end() || it->is_null()) return;
  if (!it->is_object() || !(*it).contains("type") || !(*it)["type"].is_string())
    throw bad_request("'response_format' must be an object with a 'type'", "response_format");
  const std::string type = (*it)["type"].get<std::string>();
  const json* schema = nullptr;
  if (it->contains("schema")) schema = &(*it)["schema"];
  if (type == "text") return;
  if (type == "json_object") {
    if (schema) job.schema = ojson::parse(schema->dump());
    else job.json_object = true;
  } else if (type == "json_schema") {
    if (!schema && it->contains("json_schema") && (*it)["json_schema"].is_object() &&
        (*it)["json_schema"].contains("schema"))
      schema = &(*it)["json_schema"]["schema"];
    if (!schema) throw bad_request("response_format json_schema needs json_schema.schema", "response_format");
    // ordered_json keeps the caller's property order (json_schema_to_grammar emits them in order).
    job.schema = ojson::parse(schema->dump());
  } else {
    throw bad_request("response_format type '" + type + "' is not one of text, json_object, json_schema",
                      "response_format");
  }
}

// reasoning_effort / reasoning.effort / chat_template_kwargs / think (api.md 1.1.6).
void read_thinking(const json& b, JobSpec& job) {
  if (auto it = b.find("chat_template_kwargs"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) throw bad_request("'chat_template_kwargs' must be an object", "chat_template_kwargs");
    job.template_kwargs = ojson::parse(it->dump());
  }
  if (auto it = b.find("think"); it != b.end() && !it->is_null()) {
    if (it->is_boolean()) job.thinking = it->get<bool>() ? chat::Thinking::On : chat::Thinking::Off;
    else if (it->is_string()) job.thinking = chat::Thinking::On;
    else throw bad_request("invalid think value: " + dump(*it), "think");
    job.thinking_explicit = true;
  }
  std::optional<std::string> effort = get_string(b, "reasoning_effort");
  if (!effort && b.contains("reasoning") && b["reasoning"].is_object()) effort = get_string(b["reasoning"], "effort");
  if (effort) {
    static const char* const kLevels[] = {"none", "minimal", "low", "medium", "high", "xhigh", "max"};
    bool known = false;
    for (const char* l : kLevels) known |= *effort == l;
    if (!known)
      throw bad_request("reasoning_effort '" + *effort + "' is not one of none, minimal, low, medium, high, xhigh",
                        "reasoning_effort");
    job.thinking = *effort == "none" ? chat::Thinking::Off : chat::Thinking::On;
    job.thinking_explicit = true;
    if (*effort != "none" && !job.template_kwargs.contains("reasoning_effort"))
      job.template_kwargs["reasoning_effort"] = *effort;
    // reasoning_effort wins over chat_template_kwargs.enable_thinking (precedence of api.md 1.1.6).
    job.template_kwargs.erase("enable_thinking");
  }
}

}  // namespace

JobSpec parse_chat(const json& b) {
  JobSpec job;
  read_common(b, job);
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty())
    throw bad_request("'messages' must be a non-empty array", "messages");
  job.messages = normalize_messages(b["messages"]);
  job.logprobs = get_bool(b, "logprobs").value_or(false);
  if (auto v = get_int(b, "top_logprobs")) {
    if (*v < 0 || *v > 20) throw bad_request("'top_logprobs' must be between 0 and 20", "top_logprobs");
    if (!job.logprobs && *v > 0) throw bad_request("'top_logprobs' requires 'logprobs': true", "top_logprobs");
    job.top_logprobs = static_cast<int>(*v);
  }
  read_response_format(b, job);
  if (auto it = b.find("tools"); it != b.end() && !it->is_null()) {
    if (!it->is_array()) throw bad_request("'tools' must be an array", "tools");
    for (const json& t : *it)
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object() || !t["function"].contains("name"))
        throw bad_request("each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tools");
    if (!it->empty()) job.tools = ojson::parse(it->dump());
  }
  if (auto it = b.find("tool_choice"); it != b.end() && !it->is_null()) {
    if (it->is_string()) {
      job.tool_choice = it->get<std::string>();
      if (job.tool_choice != "auto" && job.tool_choice != "none" && job.tool_choice != "required")
        throw bad_request("tool_choice must be auto, none, required or a function", "tool_choice");
    } else if (it->is_object() && it->contains("function") && (*it)["function"].is_object() &&
               (*it)["function"].contains("name") && (*it)["function"]["name"].is_string()) {
      job.tool_choice = (*it)["function"]["name"].get<std::string>();
    } else {
      throw bad_request("tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                        "tool_choice");
    }
    if (job.tool_choice == "required" && job.tools.is_null())
      throw bad_request("tool_choice 'required' needs 'tools'", "tool_choice");
  }
  if (auto v = get_bool(b, "parallel_tool_calls")) job.parallel_tool_calls = *v;
  read_thinking(b, job);
  return job;
}

JobSpec parse_completion(const json& b) {
  JobSpec job;
  read_common(b, job);
  job.chat = false;
  auto it = b.find("prompt");
  if (it == b.end() || it->is_null()) throw bad_request("'prompt' is required", "prompt");
  const auto token_list = [](const json& a) {
    std::vector<int32_t> ids;
    for (const json& t : a) {
      if (!t.is_number_integer()) return std::vector<int32_t>{};
      ids.push_back(t.get<int32_t>());
    }
    return ids;
  };
  if (it->is_string()) {
    job.prompt = it->get<std::string>();
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
    job.prompt_tokens = token_list(*it);
    if (job.prompt_tokens.empty()) throw bad_request("'prompt' token array must hold integers", "prompt");
  } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    job.prompt = (*it)[0].get<std::string>();
  } else if (it->is_array() && it->size() == 1 && (*it)[0].is_array()) {
    job.prompt_tokens = token_list((*it)[0]);
    if (job.prompt_tokens.empty()) throw bad_request("'prompt' token array must hold integers", "prompt");
  } else if (it->is_array() && it->size() > 1) {
    throw bad_request("one prompt per request is supported (use n for several completions)", "prompt");
  } else {
    throw bad_request("'prompt' must be a string, an array of one string, or token ids", "prompt");
  }
  if (job.prompt.empty() && job.prompt_tokens.empty()) throw bad_request("'prompt' is empty", "prompt");
  if (auto v = get_int(b, "logprobs")) {
    if (*v < 0 || *v > 20) throw bad_request("'logprobs' must be between 0 and 20", "logprobs");
    job.logprobs = true;
    job.top_logprobs = static_cast<int>(*v);
  } else if (b.contains("logprobs") && b["logprobs"].is_boolean()) {
    job.logprobs = b["logprobs"].get<bool>();
  }
  if (get_bool(b, "echo").value_or(false)) throw bad_request("echo is not supported", "echo");
  if (auto s = get_string(b, "suffix"); s && !s->empty()) throw bad_request("suffix is not supported", "suffix");
  if (auto v = get_int(b, "best_of"); v && *v != job.n) throw bad_request("best_of must equal n", "best_of");
  read_response_format(b, job);
  return job;
}

EmbeddingsSpec parse_embeddings(const json& b) {
  if (!b.is_object()) throw bad_request("the request body must be a JSON object");
  EmbeddingsSpec e;
  if (auto m = get_string(b, "model")) e.model = *m;
  auto it = b.find("input");
  if (it == b.end() || it->is_null()) throw bad_request("'input' is required", "input");
  if (it->is_string()) {
    e.texts.push_back(it->get<std::string>());
  } else if (it->is_array() && !it->empty()) {
    if ((*it)[0].is_number_integer()) {
      std::vector<int32_t> ids;
      for (const json& t : *it) {
        if (!t.is_number_integer()) throw bad_request("'input' token array must hold integers", "input");
        ids.push_back(t.get<int32_t>());
      }
      e.token_inputs.push_back(std::move(ids));
    } else {
      for (const json& x : *it) {
        if (x.is_string()) {
          e.texts.push_back(x.get<std::string>());
        } else if (x.is_array()) {
          std::vector<int32_t> ids;
          for (const json& t : x) {
            if (!t.is_number_integer()) throw bad_request("'input' token arrays must hold integers", "input");
            ids.push_back(t.get<int32_t>());
          }
          e.token_inputs.push_back(std::move(ids));
        } else {
          throw bad_request("'input' must be a string, strings, token ids or arrays of token ids", "input");
        }
      }
      if (!e.texts.empty() && !e.token_inputs.empty())
        throw bad_request("'input' mixes strings and token arrays", "input");
    }
  } else {
    throw bad_request("'input' must be a string, strings, token ids or arrays of token ids", "input");
  }
  if (e.texts.size() + e.token_inputs.size() > 2048)
    throw ApiError(413, "invalid_request_error", "request_too_large", "at most 2048 inputs per request", "input");
  if (auto f = get_string(b, "encoding_format")) {
    if (*f != "float" && *f != "base64")
      throw bad_request("encoding_format must be float or base64", "encoding_format");
    e.base64 = *f == "base64";
  }
  if (auto d = get_int(b, "dimensions")) {
    if (*d < 1) throw bad_request("'dimensions' must be positive", "dimensions");
    e.dimensions = static_cast<int>(*d);
  }
  return e;
}

ojson error_body(const ApiError& e) {
  ojson err = {{"message", e.what()},
               {"type", e.type},
               {"param", e.param.empty() ? ojson() : ojson(e.param)},
               {"code", e.code.empty() ? ojson() : ojson(e.code)}};
  for (auto it = e.extra.begin(); it != e.extra.end(); ++it) err[it.key()] = it.value();
  return {{"error", err}};
}

ojson usage(const std::vector<StepOutput>& done) {
  uint64_t completion = 0, reasoning = 0;
  for (const StepOutput& d : done) {
    completion += d.completion.generated_tokens;
    reasoning += static_cast<uint64_t>(d.reasoning_tokens);
  }
  const uint32_t prompt = done.empty() ? 0 : done[0].completion.prompt_tokens;
  const uint32_t cached = done.empty() ? 0 : done[0].completion.cached_tokens;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}},
          {"completion_tokens_details", {{"reasoning_tokens", reasoning}}}};
}

ojson timings(const StepOutput& d) {
  const Completion& c = d.completion;
  const uint32_t prompt_n = c.prompt_tokens - std::min(c.cached_tokens, c.prompt_tokens);
  const double prompt_ms = c.prompt_ns / 1e6, predicted_ms = c.generation_ns / 1e6;
  return {{"cache_n", c.cached_tokens},
          {"prompt_n", prompt_n},
          {"prompt_ms", prompt_ms},
          {"prompt_per_token_ms", prompt_n ? prompt_ms / prompt_n : 0.0},
          {"prompt_per_second", prompt_ms > 0 ? prompt_n * 1e3 / prompt_ms : 0.0},
          {"predicted_n", c.generated_tokens},
          {"predicted_ms", predicted_ms},
          {"predicted_per_token_ms", c.generated_tokens ? predicted_ms / c.generated_tokens : 0.0},
          {"predicted_per_second", predicted_ms > 0 ? c.generated_tokens * 1e3 / predicted_ms : 0.0}};
}

ojson chat_logprobs(const std::vector<TokenLogprob>& lps) {
  ojson content = ojson::array();
  for (const TokenLogprob& lp : lps) {
    ojson top = ojson::array();
    for (const auto& [tok, v] : lp.top)
      top.push_back({{"token", tok}, {"logprob", finite(v)}, {"bytes", byte_array(tok)}});
    content.push_back(
        {{"token", lp.token}, {"logprob", finite(lp.logprob)}, {"bytes", byte_array(lp.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

ojson completion_logprobs(const std::vector<TokenLogprob>& lps, size_t offset) {
  ojson tokens = ojson::array(), values = ojson::array(), tops = ojson::array(), offsets = ojson::array();
  for (const TokenLogprob& lp : lps) {
    tokens.push_back(lp.token);
    values.push_back(finite(lp.logprob));
    ojson top = ojson::object();
    for (const auto& [tok, v] : lp.top) top[tok] = finite(v);
    tops.push_back(top);
    offsets.push_back(offset);
    offset += lp.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// ---- streaming ----

StreamShaper::StreamShaper(std::string id, int64_t created, std::string model, int n, bool chat,
                           std::string reasoning_field)
    : id_(std::move(id)), model_(std::move(model)), reasoning_field_(std::move(reasoning_field)), created_(created),
      chat_(chat), role_sent_(static_cast<size_t>(n), false), streamed_calls_(static_cast<size_t>(n)) {}

ojson StreamShaper::chunk(int choice, ojson delta, const ojson& logprobs, const ojson& finish) const {
  ojson c = {{"index", choice}};
  if (chat_) c["delta"] = std::move(delta);
  else c["text"] = delta.is_string() ? delta : ojson("");
  c["logprobs"] = logprobs;
  c["finish_reason"] = finish;
  return {{"id", id_},
          {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_},
          {"system_fingerprint", "hearth"},
          {"choices", ojson::array({c})}};
}

std::vector<ojson> StreamShaper::step(const StepOutput& s) {
  std::vector<ojson> out;
  const size_t ci = static_cast<size_t>(s.choice);
  ojson lp = s.logprobs.empty() ? ojson() : (chat_ ? chat_logprobs(s.logprobs) : completion_logprobs(s.logprobs, 0));
  if (chat_ && !role_sent_[ci]) {
    role_sent_[ci] = true;
    out.push_back(chunk(s.choice, {{"role", "assistant"}, {"content", ""}}, ojson(), ojson()));
  }
  // Adjacent events of one kind go into one delta.
  std::string content, reasoning;
  ojson calls = ojson::array();
  const auto flush = [&]() {
    if (content.empty() && reasoning.empty() && calls.empty()) return;
    if (chat_) {
      ojson delta = ojson::object();
      if (!reasoning.empty()) delta[reasoning_field_] = reasoning;
      if (!content.empty()) delta["content"] = content;
      if (!calls.empty()) delta["tool_calls"] = calls;
      out.push_back(chunk(s.choice, delta, lp, ojson()));
    } else {
      out.push_back(chunk(s.choice, content, lp, ojson()));
    }
    lp = ojson();
    content.clear();
    reasoning.clear();
    calls = ojson::array();
  };
  for (const chat::Event& e : s.events) {
    switch (e.kind) {
      case chat::EventKind::Content:
        if (!reasoning.empty() || !calls.empty()) flush();
        content += e.text;
        break;
      case chat::EventKind::Reasoning:
        if (!content.empty() || !calls.empty()) flush();
        reasoning += e.text;
        break;
      case chat::EventKind::ToolCallBegin:
        // The call's id and name first, then its arguments in pieces (ToolCallArgs); the
        // complete ToolCall event that follows adds nothing.
        if (!content.empty() || !reasoning.empty()) flush();
        streamed_calls_[ci].insert(e.index);
        calls.push_back({{"index", static_cast<int>(e.index)},
                         {"id", e.call.id},
                         {"type", "function"},
                         {"function", {{"name", e.call.name}, {"arguments", ""}}}});
        break;
      case chat::EventKind::ToolCallArgs:
        if (!content.empty() || !reasoning.empty()) flush();
        calls.push_back({{"index", static_cast<int>(e.index)}, {"function", {{"arguments", e.text}}}});
        break;
      case chat::EventKind::ToolCall:
        if (streamed_calls_[ci].count(e.index) != 0) break;
        if (!content.empty() || !reasoning.empty()) flush();
        calls.push_back({{"index", static_cast<int>(e.index)},
                         {"id", e.call.id},
                         {"type", "function"},
                         {"function", {{"name", e.call.name}, {"arguments", e.call.arguments}}}});
        break;
      case chat::EventKind::Error: break;
    }
  }
  flush();
  if (!lp.is_null()) out.push_back(chunk(s.choice, chat_ ? ojson::object() : ojson(""), lp, ojson()));
  if (s.done) {
    ojson last = chunk(s.choice, chat_ ? ojson::object() : ojson(""), ojson(), finish_reason(s, true));
    if (s.choice == 0) last["timings"] = timings(s);
    out.push_back(std::move(last));
  }
  return out;
}

ojson StreamShaper::usage_chunk(const ojson& u) const {
  return {{"id", id_},
          {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_},
          {"system_fingerprint", "hearth"},
          {"choices", ojson::array()},
          {"usage", u}};
}

// ---- non-streaming ----

Collector::Collector(int n, bool chat, std::string reasoning_field)
    : chat_(chat), reasoning_field_(std::move(reasoning_field)), choices_(static_cast<size_t>(n)) {}

void Collector::step(const StepOutput& s) {
  Choice& c = choices_[static_cast<size_t>(s.choice)];
  for (const chat::Event& e : s.events) {
    if (e.kind == chat::EventKind::Content) c.content += e.text;
    else if (e.kind == chat::EventKind::Reasoning) c.reasoning += e.text;
    else if (e.kind == chat::EventKind::ToolCall)
      c.tool_calls.push_back({{"id", e.call.id},
                              {"type", "function"},
                              {"function", {{"name", e.call.name}, {"arguments", e.call.arguments}}}});
  }
  if (!s.logprobs.empty()) any_logprobs_ = true;
  c.logprobs.insert(c.logprobs.end(), s.logprobs.begin(), s.logprobs.end());
  if (s.done) done_.push_back(s);
}

ojson Collector::response(const std::string& id, int64_t created, const std::string& model) const {
  ojson choices = ojson::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    std::string reason = "stop";
    for (const StepOutput& d : done_)
      if (static_cast<size_t>(d.choice) == i) reason = finish_reason(d, true);
    ojson item = {{"index", i}};
    if (chat_) {
      ojson msg = {{"role", "assistant"}};
      msg["content"] = c.content.empty() && !c.tool_calls.empty() ? ojson() : ojson(c.content);
      if (!c.reasoning.empty()) msg[reasoning_field_] = c.reasoning;
      if (!c.tool_calls.empty()) msg["tool_calls"] = c.tool_calls;
      item["message"] = msg;
      item["logprobs"] = any_logprobs_ ? chat_logprobs(c.logprobs) : ojson();
    } else {
      item["text"] = c.content;
      item["logprobs"] = any_logprobs_ ? completion_logprobs(c.logprobs, 0) : ojson();
    }
    item["finish_reason"] = reason;
    choices.push_back(item);
  }
  ojson r = {{"id", id},
             {"object", chat_ ? "chat.completion" : "text_completion"},
             {"created", created},
             {"model", model},
             {"system_fingerprint", "hearth"},
             {"choices", choices},
             {"usage", usage(done_)}};
  for (const StepOutput& d : done_)
    if (d.choice == 0) r["timings"] = timings(d);
  return r;
}

ojson model_object(const ModelEntry& e, bool loaded, uint32_t n_ctx) {
  return {{"id", e.name},
          {"object", "model"},
          {"created", std::chrono::system_clock::to_time_t(e.modified)},
          {"owned_by", "library"},
          {"meta",
           {{"context_length", e.n_ctx_train},
            {"n_ctx_train", e.n_ctx_train},
            {"n_ctx", n_ctx},
            {"n_params", e.n_params},
            {"size", e.size},
            {"capabilities", e.capabilities},
            {"loaded", loaded}}}};
}

}  // namespace hearth::server::openai

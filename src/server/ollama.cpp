#include "server/ollama.h"

#include <cmath>
#include <random>

#include "server/util.h"

namespace hearth::server::ollama {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

const char* const kVersion = "0.13.0";

namespace {

void read_common(const json& b, JobSpec& job) {
  if (!b.is_object()) throw bad_request("the request body must be a JSON object");
  job.model = get_string(b, "model").value_or(get_string(b, "name").value_or(""));
  job.sampling.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  job.stream = get_bool(b, "stream").value_or(true);
  if (b.contains("options")) read_options(b["options"], job);
  if (b.contains("keep_alive") && !b["keep_alive"].is_null()) {
    try {
      job.keep_alive_ms = parse_keep_alive(b["keep_alive"]);
    } catch (const Error& e) {
      throw bad_request(e.what(), "keep_alive");
    }
  }
  if (auto it = b.find("think"); it != b.end() && !it->is_null()) {
    if (it->is_boolean()) {
      job.thinking = it->get<bool>() ? chat::Thinking::On : chat::Thinking::Off;
    } else if (it->is_string() && (*it == "low" || *it == "medium" || *it == "high" || *it == "max")) {
      job.thinking = chat::Thinking::On;
      job.template_kwargs["reasoning_effort"] = it->get<std::string>();
    } else {
      throw bad_request("invalid think value: " + dump(*it), "think");
    }
    job.thinking_explicit = true;
  }
  if (auto it = b.find("format"); it != b.end() && !it->is_null()) {
    if (it->is_string() && it->get<std::string>() == "json") job.json_object = true;
    else if (it->is_object()) job.schema = ojson::parse(it->dump());
    else if (!(it->is_string() && it->get<std::string>().empty()))
      throw bad_request("invalid format: " + dump(*it) + " (expected \"json\" or a JSON schema)", "format");
  }
  job.logprobs = get_bool(b, "logprobs").value_or(false);
  if (auto v = get_int(b, "top_logprobs")) {
    if (*v < 0 || *v > 20) throw bad_request("top_logprobs must be between 0 and 20", "top_logprobs");
    job.top_logprobs = static_cast<int>(*v);
  }
}

}  // namespace

bool wants_thinking(const json& b) {
  auto it = b.find("think");
  return it != b.end() && ((it->is_boolean() && it->get<bool>()) || it->is_string());
}

JobSpec parse_chat(const json& b) {
  JobSpec job;
  read_common(b, job);
  if (b.contains("messages") && !b["messages"].is_null()) job.messages = normalize_messages(b["messages"]);
  if (auto it = b.find("tools"); it != b.end() && it->is_array() && !it->empty()) job.tools = ojson::parse(it->dump());
  return job;
}

JobSpec parse_generate(const json& b) {
  JobSpec job;
  read_common(b, job);
  job.prompt = get_string(b, "prompt").value_or("");
  job.system = get_string(b, "system").value_or("");
  job.raw = get_bool(b, "raw").value_or(false);
  if (job.raw && (!job.system.empty() || b.contains("template") || b.contains("context")))
    throw bad_request("raw mode does not support template, system, or context");
  if (auto s = get_string(b, "suffix"); s && !s->empty()) throw bad_request("suffix is not supported by this model");
  if (job.raw) {
    job.chat = false;
  } else {
    job.chat = true;
    if (!job.system.empty()) job.messages.push_back({{"role", "system"}, {"content", job.system}});
    job.messages.push_back({{"role", "user"}, {"content", job.prompt}});
  }
  return job;
}

ojson tool_call(const chat::ToolCall& call, int index) {
  json args = json::parse(call.arguments, nullptr, false);
  if (args.is_discarded()) args = json::object();
  return {{"id", call.id},
          {"function", {{"index", index}, {"name", call.name}, {"arguments", ojson::parse(args.dump())}}}};
}

ojson logprobs(const std::vector<TokenLogprob>& lps) {
  ojson out = ojson::array();
  const auto fin = [](float v) { return std::isfinite(v) ? v : std::numeric_limits<float>::lowest(); };
  for (const TokenLogprob& lp : lps) {
    ojson top = ojson::array();
    for (const auto& [tok, v] : lp.top) top.push_back({{"token", tok}, {"logprob", fin(v)}, {"bytes", byte_array(tok)}});
    out.push_back({{"token", lp.token}, {"logprob", fin(lp.logprob)}, {"bytes", byte_array(lp.token)}, {"top_logprobs", top}});
  }
  return out;
}

ojson Shaper::base(bool done) const {
  return {{"model", model_}, {"created_at", rfc3339(Clock::now())}};
}

ojson Shaper::payload(const std::string& content, const std::string& thinking, const ojson& calls) const {
  ojson o = base(false);
  if (chat_) {
    ojson msg = {{"role", "assistant"}, {"content", content}};
    if (!thinking.empty()) msg["thinking"] = thinking;
    if (!calls.empty()) msg["tool_calls"] = calls;
    o["message"] = msg;
  } else {
    o["response"] = content;
    if (!thinking.empty()) o["thinking"] = thinking;
    if (!calls.empty()) o["tool_calls"] = calls;
  }
  o["done"] = false;
  return o;
}

std::vector<ojson> Shaper::step(const StepOutput& s) {
  std::vector<ojson> out;
  std::string content, thinking;
  const auto flush = [&]() {
    if (content.empty() && thinking.empty()) return;
    out.push_back(payload(content, thinking, ojson::array()));
    content.clear();
    thinking.clear();
  };
  for (const chat::Event& e : s.events) {
    if (e.kind == chat::EventKind::Content) {
      if (!thinking.empty()) flush();
      content += e.text;
      content_ += e.text;
    } else if (e.kind == chat::EventKind::Reasoning) {
      if (!content.empty()) flush();
      thinking += e.text;
      thinking_ += e.text;
    } else if (e.kind == chat::EventKind::ToolCall) {
      flush();
      const ojson call = tool_call(e.call, n_calls_++);
      calls_.push_back(call);
      out.push_back(payload("", "", ojson::array({call})));
    }
  }
  flush();
  if (!s.logprobs.empty()) {
    const ojson lp = logprobs(s.logprobs);
    for (const auto& x : lp) logprobs_.push_back(x);
    if (out.empty()) out.push_back(payload("", "", ojson::array()));
    out.back()["logprobs"] = lp;
  }
  return out;
}

ojson Shaper::final_object(const StepOutput& d, int64_t total_ns, int64_t load_ns, bool whole) const {
  ojson o = whole ? payload(content_, thinking_, calls_) : payload("", "", ojson::array());
  if (whole && !logprobs_.empty()) o["logprobs"] = logprobs_;
  o["done"] = true;
  o["done_reason"] = d.completion.reason == FinishReason::Length ? "length" : "stop";
  const Completion& c = d.completion;
  o["total_duration"] = total_ns;
  o["load_duration"] = load_ns;
  o["prompt_eval_count"] = c.prompt_tokens;
  o["prompt_eval_duration"] = c.prompt_ns;
  o["prompt_cache_count"] = c.cached_tokens;
  o["eval_count"] = c.generated_tokens;
  o["eval_duration"] = c.generation_ns;
  return o;
}

ojson tag_object(const ModelEntry& e) {
  return {{"name", e.name},         {"model", e.name},     {"modified_at", rfc3339(e.modified)},
          {"size", e.size},         {"digest", e.digest},  {"details", e.details},
          {"capabilities", e.capabilities}};
}

ojson ps_object(const ModelEntry& e, uint32_t n_ctx) {
  const auto expires = e.keep_alive_ms < 0 ? Clock::now() + std::chrono::hours(24 * 365 * 100)
                       : e.active > 0      ? Clock::now() + std::chrono::milliseconds(e.keep_alive_ms)
                                           : e.expires_at;
  return {{"name", e.name},         {"model", e.name},       {"size", e.size},
          {"digest", e.digest},     {"details", e.details},  {"expires_at", rfc3339(expires)},
          {"size_vram", 0},         {"context_length", n_ctx}};
}

ojson show_object(const ModelEntry& e, const gguf::File& f, const std::string& chat_template, bool verbose) {
  ojson info = ojson::object();
  for (const auto& [key, value] : f.metadata()) {
    if (key == "tokenizer.chat_template") continue;
    info[key] = gguf_value_json(value, verbose ? SIZE_MAX : 64);
  }
  info["general.parameter_count"] = e.n_params;
  std::string modelfile = "# Modelfile generated by hearth\nFROM " + (e.path.empty() ? std::string("(embedded)") : e.path) +
                          "\nTEMPLATE \"\"\"" + chat_template + "\"\"\"\n";
  std::string license;
  if (auto l = f.get<std::string>("general.license")) license = *l;
  return {{"license", license},
          {"modelfile", modelfile},
          {"parameters", ""},
          {"template", chat_template},
          {"system", ""},
          {"details", e.details},
          {"model_info", info},
          {"capabilities", e.capabilities},
          {"modified_at", rfc3339(e.modified)}};
}

}  // namespace hearth::server::ollama

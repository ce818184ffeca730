// hearth run [MODEL.gguf] [-p PROMPT [--chat]] [-n N] [sampling options] [-t THREADS] [-c N_CTX]
//            [-ctk T] [-ctv T] [-fa on|off|auto]
//
// -p PROMPT: continues the prompt as plain text, streamed to stdout; prompt and generation speed
//   go to stderr.
// -p PROMPT --chat: answers one chat turn through the model's chat template: the answer on stdout,
//   the thinking on stderr (dimmed on a terminal).
// No -p: an interactive chat through the model's chat template (hearth's ChatML template when the
//   GGUF has none): /think, /no_think, /system TEXT, /clear, /save FILE, /load FILE, /help, /exit;
//   a line ending in '\' continues on the next line and """ opens and closes a block of lines;
//   thinking is shown dimmed when stdout is a terminal; Ctrl-C stops an answer, Ctrl-C twice at the
//   prompt or Ctrl-D exits. The KV cache is kept across turns: only the part of the rendered
//   conversation that differs from what was evaluated before is evaluated.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "chat/formats.h"
#include "chat/output_parser.h"
#include "chat/prompt.h"
#include "chat/thinking.h"
#include "commands.h"
#include "common.h"
#include "model/model.h"
#include "plan/plan.h"
#include "runtime/context.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace hearth::app {
namespace {

using json = nlohmann::ordered_json;

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) { g_interrupted.store(true); }

// SIGINT sets g_interrupted. SA_RESTART keeps writes to the terminal whole; the line reader waits
// in poll(), which a signal always interrupts.
void catch_sigint() {
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
}

const char* const kDim = "\033[2m";
const char* const kReset = "\033[0m";

// ---- chat turns ----

struct ChatConfig {
  int n_predict = -1;
  bool ignore_eos = false;
  int reasoning_budget = -1;  // tokens; < 0: no limit
};

struct TurnStats {
  size_t prompt_tokens = 0, cached_tokens = 0;
  int generated = 0;
  bool opens_thinking = false;  // the prompt ends inside the thinking (the template opened it)
  int reasoning = 0;            // generated tokens of thinking (not counting a forced end)
  double prompt_s = 0, gen_s = 0;
  const char* stop = "n_predict reached";
};

// One conversation with a model: renders it through the chat template, evaluates what the KV
// cache does not hold yet, and generates the answer through the output parser.
class ChatSession {
 public:
  ChatSession(std::shared_ptr<const model::Model> model, const runtime::ContextParams& cp, sample::Sampler& sampler,
              chat::ChatTemplate tmpl, const ChatConfig& config)
      : model_(std::move(model)), cp_(cp), sampler_(sampler), tmpl_(std::move(tmpl)), config_(config) {
    reset_context();
    const std::string& close = chat::thinking_markers(tmpl_.family()).forced_close;
    if (!close.empty()) end_tokens_ = model_->tokenizer().encode(close, false, true);
  }

  const chat::ChatTemplate& chat_template() const { return tmpl_; }
  const runtime::Context& context() const { return *ctx_; }
  bool has_thinking_markers() const { return !end_tokens_.empty(); }

  // Answers `messages` (the last one the user's); `sink` gets the parser's events as they come.
  // Throws Error when the conversation does not fit in the context.
  chat::ParsedOutput answer(const json& messages, chat::Thinking thinking,
                            const std::function<void(const chat::Event&)>& sink, TurnStats& stats) {
    const tokenizer::Tokenizer& tok = model_->tokenizer();
    chat::ChatInputs in;
    in.messages = messages;
    in.thinking = thinking;
    const chat::RenderedPrompt rp = tmpl_.render(in);
    const std::vector<int32_t> prompt = tokenize_prompt(rp.text);
    stats.opens_thinking = rp.starts_in_reasoning;
    if (prompt.empty()) throw Error("the rendered prompt has no tokens");
    if (prompt.size() >= ctx_->n_ctx())
      throw Error("the conversation is " + std::to_string(prompt.size()) +
                  " tokens long, which does not fit in the context of " + std::to_string(ctx_->n_ctx()) +
                  " tokens (/clear it, or raise -c)");
    const double t0 = now_seconds();
    evaluate_prompt(prompt, stats);
    stats.prompt_s = now_seconds() - t0;

    chat::OutputParser parser(rp.family, rp.parser_options());
    chat::ThinkingBudget budget(end_tokens_.empty() ? -1 : config_.reasoning_budget, end_tokens_);
    tokenizer::StreamDecoder stream(tok, /*special=*/true);
    auto emit = [&](const std::vector<chat::Event>& events) {
      for (const chat::Event& e : events) sink(e);
    };
    const double t1 = now_seconds();
    runtime::Batch batch;
    while (config_.n_predict < 0 || stats.generated < config_.n_predict) {
      if (g_interrupted) {
        stats.stop = "interrupted";
        break;
      }
      std::vector<int32_t> next = budget.next(parser.in_reasoning());
      if (next.empty()) {
        const int32_t id = sampler_.sample(logits_);
        if (tok.is_eog(id) && !config_.ignore_eos) {
          stats.stop = "end of turn";
          break;
        }
        next.push_back(id);
      } else {
        for (int32_t t : next) sampler_.accept(t);
      }
      for (int32_t t : next) emit(parser.feed(stream.push(t)));
      stats.generated += static_cast<int>(next.size());
      if (evaluated_.size() + next.size() > ctx_->n_ctx()) {
        stats.stop = "context full";
        break;
      }
      batch.clear();
      for (size_t i = 0; i < next.size(); ++i)
        batch.add(next[i], static_cast<int32_t>(evaluated_.size() + i), 0, i + 1 == next.size());
      ctx_->decode(batch);
      evaluated_.insert(evaluated_.end(), next.begin(), next.end());
      const auto row = ctx_->logits(next.size() - 1);
      logits_.assign(row.begin(), row.end());
    }
    stats.gen_s = now_seconds() - t1;
    stats.reasoning = budget.reasoning_tokens();
    emit(parser.feed(stream.flush()));
    emit(parser.finish());
    return parser.result();
  }

 private:
  void reset_context() {
    ctx_ = std::make_unique<runtime::Context>(model_, cp_);
    evaluated_.clear();
    // Dropping the end of a sequence is exact only where every layer keeps its K/V per token
    // (no recurrent state).
    can_truncate_ = true;
    for (const auto& spec : ctx_->kv_cache().specs()) can_truncate_ = can_truncate_ && spec.n_embd_k > 0;
  }

  std::vector<int32_t> tokenize_prompt(const std::string& text) const {
    const tokenizer::Tokenizer& tok = model_->tokenizer();
    std::vector<int32_t> ids = tok.encode(text, false, /*parse_special=*/true);
    // BOS as the vocabulary asks, unless the template wrote it already.
    if (tok.add_bos() && tok.bos() && (ids.empty() || ids[0] != *tok.bos())) ids.insert(ids.begin(), *tok.bos());
    return ids;
  }

  // Makes the cache hold `prompt`: keeps the longest prefix it already holds and evaluates the
  // rest (at least the last token, whose logits start the answer).
  void evaluate_prompt(const std::vector<int32_t>& prompt, TurnStats& stats) {
    size_t keep = 0;
    while (keep < evaluated_.size() && keep < prompt.size() && evaluated_[keep] == prompt[keep]) ++keep;
    if (keep == prompt.size()) --keep;
    if (keep < evaluated_.size()) {
      if (can_truncate_) {
        ctx_->kv_cache().seq_rm(0, static_cast<int32_t>(keep), -1);
        evaluated_.resize(keep);
      } else {
        reset_context();
        keep = 0;
      }
    }
    auto decode_from = [&](size_t from) {
      runtime::Batch batch;
      for (size_t i = from; i < prompt.size(); ++i)
        batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
      ctx_->decode(batch);
      const auto row = ctx_->logits(batch.size() - 1);
      logits_.assign(row.begin(), row.end());
    };
    try {
      decode_from(keep);
    } catch (const Error&) {
      if (keep == 0) throw;
      // A windowed layer may have dropped what the kept prefix needs: start over.
      reset_context();
      keep = 0;
      decode_from(0);
    }
    for (size_t i = keep; i < prompt.size(); ++i) sampler_.accept(prompt[i]);
    evaluated_ = prompt;
    stats.prompt_tokens = prompt.size();
    stats.cached_tokens = keep;
  }

  std::shared_ptr<const model::Model> model_;
  runtime::ContextParams cp_;
  sample::Sampler& sampler_;
  chat::ChatTemplate tmpl_;
  ChatConfig config_;
  std::unique_ptr<runtime::Context> ctx_;
  std::vector<int32_t> evaluated_;  // the tokens the cache holds, at positions 0..
  std::vector<float> logits_;
  std::vector<int32_t> end_tokens_;  // the forced end of thinking
  bool can_truncate_ = true;
};

// Prints an answer's events: the thinking dimmed on a terminal (between <think> tags when the
// answer and the thinking share a stream that is not a terminal), then the answer.
class AnswerPrinter {
 public:
  AnswerPrinter(FILE* content, FILE* reasoning) : content_(content), reasoning_(reasoning) {
    reasoning_tty_ = isatty(fileno(reasoning)) != 0;
  }

  void on(const chat::Event& e) {
    switch (e.kind) {
      case chat::EventKind::Reasoning:
        if (!in_reasoning_) {
          if (printed_content_ && content_ == reasoning_) std::fputs("\n\n", reasoning_);
          std::fputs(reasoning_tty_ ? kDim : content_ == reasoning_ ? "<think>\n" : "", reasoning_);
          in_reasoning_ = true;
        }
        std::fputs(e.text.c_str(), reasoning_);
        break;
      case chat::EventKind::Content:
        end_reasoning();
        std::fputs(e.text.c_str(), content_);
        printed_content_ = true;
        break;
      case chat::EventKind::ToolCall:
        end_reasoning();
        std::fprintf(content_, "[tool call %s: %s(%s)]\n", e.call.id.c_str(), e.call.name.c_str(),
                     e.call.arguments.c_str());
        printed_content_ = true;
        break;
      case chat::EventKind::Error: std::fprintf(stderr, "\nhearth: warning: %s\n", e.text.c_str()); break;
      case chat::EventKind::ToolCallBegin:
      case chat::EventKind::ToolCallArgs: break;  // only with ParserOptions::stream_tool_calls
    }
    std::fflush(reasoning_);
    std::fflush(content_);
  }

  // Ends the answer (a newline after it).
  void finish() {
    end_reasoning();
    std::fputs("\n", content_);
    std::fflush(content_);
  }

 private:
  void end_reasoning() {
    if (!in_reasoning_) return;
    in_reasoning_ = false;
    if (reasoning_tty_) std::fputs(kReset, reasoning_);
    if (content_ == reasoning_) {
      std::fputs(reasoning_tty_ ? "\n\n" : "\n</think>\n\n", reasoning_);
    } else {
      std::fputs("\n", reasoning_);
    }
    std::fflush(reasoning_);
  }

  FILE* content_;
  FILE* reasoning_;
  bool reasoning_tty_ = false;
  bool in_reasoning_ = false;
  bool printed_content_ = false;
};

// ---- the interactive loop ----

// Lines from stdin; a SIGINT while waiting ends the wait (Interrupted).
class LineReader {
 public:
  enum class Status { Line, Eof, Interrupted };

  explicit LineReader(bool show_prompts) : prompts_(show_prompts) {}

  Status read_line(const char* prompt, std::string& line) {
    if (prompts_) {
      std::fputs(prompt, stdout);
      std::fflush(stdout);
    }
    while (true) {
      if (const size_t nl = pending_.find('\n'); nl != std::string::npos) {
        line = pending_.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pending_.erase(0, nl + 1);
        return Status::Line;
      }
      if (eof_) {
        if (pending_.empty()) return Status::Eof;
        line = std::move(pending_);
        pending_.clear();
        return Status::Line;
      }
      pollfd pfd = {STDIN_FILENO, POLLIN, 0};
      const int r = ::poll(&pfd, 1, -1);
      if (g_interrupted.exchange(false)) {
        pending_.clear();
        return Status::Interrupted;
      }
      if (r < 0) {
        if (errno == EINTR) continue;
        eof_ = true;
        continue;
      }
      char buf[4096];
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

  // One message: a line; lines joined while they end in '\'; or a """ block.
  Status read_input(std::string& out) {
    std::string line;
    Status st = read_line("> ", line);
    if (st != Status::Line) return st;
    const size_t first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line.compare(first, 3, "\"\"\"") == 0) {
      std::string rest = line.substr(first + 3);
      if (rest.size() >= 3 && rest.ends_with("\"\"\"")) {  // """one line"""
        out = rest.substr(0, rest.size() - 3);
        return Status::Line;
      }
      out = rest;
      bool started = !rest.empty();
      while (true) {
        if ((st = read_line("... ", line)) != Status::Line) return st;
        const bool last = line.ends_with("\"\"\"");
        if (last) line.resize(line.size() - 3);
        if (!last || !line.empty()) {
          if (started) out += '\n';
          out += line;
          started = true;
        }
        if (last) return Status::Line;
      }
    }
    out = line;
    while (!out.empty() && out.back() == '\\') {
      out.back() = '\n';
      if ((st = read_line("... ", line)) != Status::Line) return st;
      out += line;
    }
    return Status::Line;
  }

 private:
  bool prompts_;
  bool eof_ = false;
  std::string pending_;
};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

const char* const kHelp =
    "  /think [TEXT]      thinking on (and send TEXT)\n"
    "  /no_think [TEXT]   thinking off (and send TEXT)\n"
    "  /system [TEXT]     set the system prompt (no TEXT: remove it)\n"
    "  /clear             forget the conversation (the system prompt stays)\n"
    "  /save FILE         save the conversation as JSON messages\n"
    "  /load FILE         load a conversation (a JSON array of messages)\n"
    "  /exit              leave (also Ctrl-D, or Ctrl-C twice at the prompt)\n"
    "  A line ending in \\ continues on the next line; \"\"\" opens and closes a block of lines.\n"
    "  Ctrl-C stops an answer.\n";

// The messages of a conversation file: an array of {role, content} (or {"messages": [...]}).
json load_messages(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  if (!j.is_array()) throw Error(path + ": expected a JSON array of messages");
  for (size_t i = 0; i < j.size(); ++i) {
    const json& m = j[i];
    const std::string where = path + ": message " + std::to_string(i + 1);
    if (!m.is_object()) throw Error(where + " is not an object");
    if (!m.contains("role") || !m["role"].is_string()) throw Error(where + " has no \"role\" string");
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw Error(where + " has the unknown role '" + role + "'");
    if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null() && !m["content"].is_array())
      throw Error(where + ": \"content\" must be a string");
  }
  return j;
}

void set_system(json& messages, const std::string& text) {
  const bool has = !messages.empty() && messages[0].value("role", "") == "system";
  if (text.empty()) {
    if (has) messages.erase(messages.begin());
  } else if (has) {
    messages[0]["content"] = text;
  } else {
    messages.insert(messages.begin(), json{{"role", "system"}, {"content", text}});
  }
}

void note(const std::string& text) {
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

void print_stats(const TurnStats& s) {
  std::fprintf(stderr,
               "[prompt: %zu tokens%s, %zu cached, %zu evaluated in %.2f s; answer: %d tokens (%d thinking) in %.2f s, "
               "%.1f tokens/s; %s]\n",
               s.prompt_tokens, s.opens_thinking ? " (opens the thinking)" : "", s.cached_tokens,
               s.prompt_tokens - s.cached_tokens, s.prompt_s, s.generated, s.reasoning, s.gen_s,
               s.gen_s > 0 ? s.generated / s.gen_s : 0.0, s.stop);
  std::fflush(stderr);
}

// A user message with the thinking switch where the template reads it from the message itself.
json user_message(const ChatSession& session, const std::string& text, chat::Thinking thinking) {
  std::string content = text;
  if (session.chat_template().thinking_switch() == chat::ThinkingSwitch::SoftSwitch)
    content += chat::soft_switch_suffix(thinking);
  return json{{"role", "user"}, {"content", content}};
}

// The thinking setting as the template takes it (soft switches go into the messages instead).
chat::Thinking render_thinking(const ChatSession& session, chat::Thinking thinking) {
  return session.chat_template().thinking_switch() == chat::ThinkingSwitch::SoftSwitch ? chat::Thinking::Default
                                                                                       : thinking;
}

int run_interactive(ChatSession& session, const std::string& system, chat::Thinking thinking, bool verbose) {
  json messages = json::array();
  set_system(messages, system);
  LineReader reader(isatty(STDIN_FILENO) != 0);
  bool interrupted_once = false;
  while (true) {
    std::string input;
    const LineReader::Status st = reader.read_input(input);
    if (st == LineReader::Status::Eof) {
      std::fputs("\n", stdout);
      break;
    }
    if (st == LineReader::Status::Interrupted) {
      if (interrupted_once) {
        std::fputs("\n", stdout);
        break;
      }
      interrupted_once = true;
      std::fputs("\n", stdout);
      note("(Ctrl-C again or Ctrl-D to exit)");
      continue;
    }
    interrupted_once = false;
    std::string text = input;
    if (trim(text).empty()) continue;
    if (text[0] == '/') {
      const size_t sp = text.find_first_of(" \t\n");
      const std::string cmd = text.substr(0, sp);
      const std::string arg = sp == std::string::npos ? "" : trim(text.substr(sp + 1));
      text.clear();
      if (cmd == "/exit" || cmd == "/quit" || cmd == "/bye") break;
      if (cmd == "/help" || cmd == "/?") {
        std::fputs(kHelp, stdout);
      } else if (cmd == "/think" || cmd == "/no_think") {
        thinking = cmd == "/think" ? chat::Thinking::On : chat::Thinking::Off;
        if (session.chat_template().thinking_switch() == chat::ThinkingSwitch::None) {
          note("(this model's chat template has no thinking switch)");
        } else {
          note(cmd == "/think" ? "(thinking on)" : "(thinking off)");
        }
        text = arg;
      } else if (cmd == "/system") {
        set_system(messages, arg);
        note(arg.empty() ? "(system prompt removed)" : "(system prompt set)");
      } else if (cmd == "/clear") {
        const std::string sys =
            !messages.empty() && messages[0].value("role", "") == "system" ? messages[0].value("content", "") : "";
        messages = json::array();
        set_system(messages, sys);
        note("(conversation cleared)");
      } else if (cmd == "/save" || cmd == "/load") {
        if (arg.empty()) {
          note("(give a file: " + cmd + " FILE)");
          continue;
        }
        try {
          if (cmd == "/save") {
            write_file(arg, messages.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
            note("(saved " + std::to_string(messages.size()) + " messages to " + arg + ")");
          } else {
            messages = load_messages(arg);
            note("(loaded " + std::to_string(messages.size()) + " messages from " + arg + ")");
          }
        } catch (const Error& e) {
          note(std::string("hearth: error: ") + e.what());
        }
      } else {
        note("(unknown command " + cmd + "; /help lists the commands)");
      }
      if (trim(text).empty()) continue;
    }

    messages.push_back(user_message(session, text, thinking));
    AnswerPrinter printer(stdout, stdout);
    TurnStats stats;
    g_interrupted = false;
    try {
      const chat::ParsedOutput out = session.answer(
          messages, render_thinking(session, thinking), [&](const chat::Event& e) { printer.on(e); }, stats);
      printer.finish();
      json reply = {{"role", "assistant"}, {"content", out.content}};
      if (!out.reasoning.empty()) reply["reasoning_content"] = out.reasoning;
      messages.push_back(std::move(reply));
    } catch (const Error& e) {
      printer.finish();
      messages.erase(messages.end() - 1);
      note(std::string("hearth: error: ") + e.what());
      continue;
    }
    if (g_interrupted.exchange(false)) note("(stopped)");
    if (std::string(stats.stop) == "context full") note("(the context is full: /clear the conversation, or raise -c)");
    if (verbose) print_stats(stats);
  }
  return 0;
}

// The model's chat template: --chat-template-file, else the GGUF's, else the ChatML fallback.
chat::ChatTemplate load_template(const model::Model& model, const std::string& file, const std::string& format) {
  std::optional<chat::Family> family;
  if (!format.empty()) {
    family = chat::family_from_name(format);
    if (!family) {
      std::string names;
      for (chat::Family f : chat::all_families())
        names += std::string(names.empty() ? "" : ", ") + chat::family_name(f);
      throw Error("unknown chat format '" + format + "' (known: " + names + ")");
    }
  }
  const tokenizer::Tokenizer& tok = model.tokenizer();
  const std::string bos = tok.bos() ? tok.token_text(*tok.bos()) : "";
  const std::string eos = tok.eos() ? tok.token_text(*tok.eos()) : "";
  if (!file.empty()) return chat::ChatTemplate(read_file(file), file, bos, eos, family);
  try {
    return chat::ChatTemplate::from_gguf(model.file(), tok, family);
  } catch (const chat::NoChatTemplateError& e) {
    note(std::string("hearth: note: ") + e.what() +
         "; using hearth's built-in ChatML template (--chat-template-file FILE gives another)");
    return chat::ChatTemplate(chat::kChatMlTemplate, "built-in ChatML template", bos, eos,
                              family.value_or(chat::Family::Generic));
  }
}

const char* switch_description(chat::ThinkingSwitch s) {
  switch (s) {
    case chat::ThinkingSwitch::None: return "no switch";
    case chat::ThinkingSwitch::TemplateVariable: return "/think, /no_think (enable_thinking)";
    case chat::ThinkingSwitch::SoftSwitch: return "/think, /no_think (soft switch)";
  }
  return "";
}

}  // namespace

void register_run(CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt, or chat with a model");
  struct Opts {
    std::string model, prompt;
    int n_predict = -1;
    int threads = 0;
    uint32_t n_ctx = 4096;
    uint32_t n_ubatch = 512;
    int64_t seed = -1;
    bool no_bos = false;
    bool ignore_eos = false;
    bool chat = false, think = false, no_think = false, verbose = false;
    int reasoning_budget = -1;
    std::string system, template_file, chat_format;
    std::string grammar, grammar_file, json_schema;
    sample::SamplerParams sp;
    CacheOptions cache;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("model", o->model, "GGUF model file (default: the embedded hearth-kjv model)");
  auto* prompt_opt = sub->add_option("-p,--prompt", o->prompt, "prompt text (without -p: an interactive chat)");
  sub->add_option("-n,--n-predict", o->n_predict, "tokens to generate (-1: until end of text or a full context)");
  sub->add_option("--temp", o->sp.temp, "temperature (0: greedy)")->default_val(o->sp.temp);
  sub->add_option("--top-k", o->sp.top_k, "top-k (0: off)")->default_val(o->sp.top_k);
  sub->add_option("--top-p", o->sp.top_p, "top-p (1: off)")->default_val(o->sp.top_p);
  sub->add_option("--min-p", o->sp.min_p, "min-p (0: off)")->default_val(o->sp.min_p);
  sub->add_option("--repeat-penalty", o->sp.repeat_penalty, "repeat penalty (1: off)")->default_val(o->sp.repeat_penalty);
  sub->add_option("--repeat-last-n", o->sp.repeat_last_n, "tokens the penalties look back")->default_val(o->sp.repeat_last_n);
  sub->add_option("--presence-penalty", o->sp.presence_penalty, "presence penalty")->default_val(0.0f);
  sub->add_option("--frequency-penalty", o->sp.frequency_penalty, "frequency penalty")->default_val(0.0f);
  sub->add_option("-s,--seed", o->seed, "random seed (-1: from the clock)");
  sub->add_option("-t,--threads", o->threads, "compute threads (default: all cores)");
  auto* ctx_opt = sub->add_option("-c,--ctx-size", o->n_ctx, "context size n_ctx, tokens (default: 4096 or the model's training context if smaller)")
                      ->check(CLI::PositiveNumber);
  sub->add_option("--ubatch-size", o->n_ubatch, "micro-batch size n_ubatch")->check(CLI::PositiveNumber);
  sub->add_flag("--no-bos", o->no_bos, "do not add the BOS token (plain -p mode)");
  sub->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-text tokens");
  sub->add_flag("--chat", o->chat, "with -p: answer the prompt as one chat turn through the model's chat template");
  sub->add_option("--system", o->system, "chat: system prompt");
  auto* think_opt = sub->add_flag("--think", o->think, "chat: thinking on (the template's switch)");
  sub->add_flag("--no-think", o->no_think, "chat: thinking off (the template's switch)")->excludes(think_opt);
  sub->add_option("--reasoning-budget", o->reasoning_budget,
                  "chat: most thinking tokens, then the end of thinking is forced (-1: no limit)")
      ->check(CLI::Range(-1, 1 << 30));
  sub->add_option("--chat-template-file", o->template_file, "chat: Jinja chat template to use instead of the model's");
  sub->add_option("--chat-format", o->chat_format,
                  "chat: output format family (generic, qwen3, qwen3.5, llama3, llama4, gemma4, deepseek-r1, mistral; "
                  "default: detected from the template)");
  sub->add_flag("-v,--verbose", o->verbose, "chat: prompt and answer statistics after each answer");
  auto* grammar_opt = sub->add_option("--grammar", o->grammar, "GBNF grammar the output must follow (llama.cpp's)");
  auto* grammar_file_opt =
      sub->add_option("--grammar-file", o->grammar_file, "file with a GBNF grammar")->excludes(grammar_opt);
  sub->add_option("-j,--json-schema", o->json_schema, "JSON Schema the output must be valid against (its text)")
      ->excludes(grammar_opt)
      ->excludes(grammar_file_opt);
  o->cache.add_to(sub);
  add_command(app, sub, [o, ctx_opt, prompt_opt] {
    o->sp.seed = o->seed < 0 ? static_cast<uint64_t>(std::time(nullptr)) : static_cast<uint64_t>(o->seed);
    sample::Sampler sampler(o->sp);  // validates the settings before the model loads
    const double t_load0 = now_seconds();
    auto model = o->model.empty() ? model::Model::load_default() : model::Model::load(o->model);
    if (ctx_opt->count() == 0) o->n_ctx = std::min<uint32_t>(4096, model->hparams().n_ctx_train);
    const tokenizer::Tokenizer& tok = model->tokenizer();
    // Constrained decoding: tokens that cannot continue the grammar are never sampled, and the
    // end of text only once it is complete (llama.cpp's --grammar, --grammar-file, --json-schema).
    std::string gbnf = o->grammar;
    if (!o->grammar_file.empty()) gbnf = read_file(o->grammar_file);
    if (!o->json_schema.empty()) {
      nlohmann::ordered_json schema;
      try {
        schema = nlohmann::ordered_json::parse(o->json_schema);
      } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("--json-schema is not valid JSON: ") + e.what());
      }
      gbnf = sample::json_schema_to_grammar(schema);
    }
    if (!gbnf.empty()) {
      auto vocab = sample::GrammarVocab::from_tokenizer(tok);
      sampler.set_grammar(sample::Grammar::parse(gbnf, vocab.get()), vocab);
    }
    runtime::ContextParams cp;
    o->cache.apply(cp);
    cp.n_ubatch = o->n_ubatch;
    cp.n_threads = o->threads;
    {
      // The planner (src/plan): without -c, the default context shrinks to what fits in the free
      // memory; a -c that does not fit is refused with the numbers.
      plan::PlanParams pp;
      pp.n_ctx = o->n_ctx;
      pp.n_ubatch = cp.n_ubatch;
      pp.type_k = cp.type_k;
      pp.type_v = cp.type_v;
      const plan::ModelInfo info =
          plan::ModelInfo::from_header(model->file(), o->model.empty() ? "the embedded model" : o->model);
      const uint64_t free_bytes = plan::system_memory_bytes();
      if (ctx_opt->count() == 0) o->n_ctx = plan::default_context(info, pp, free_bytes, o->n_ctx);
      else plan::check_context(info, pp, free_bytes);
    }
    cp.n_ctx = o->n_ctx;

    const bool interactive = prompt_opt->count() == 0;
    if (interactive || o->chat) {
      ChatConfig config;
      config.n_predict = o->n_predict;
      config.ignore_eos = o->ignore_eos;
      config.reasoning_budget = o->reasoning_budget;
      ChatSession session(model, cp, sampler, load_template(*model, o->template_file, o->chat_format), config);
      const double t_load = now_seconds() - t_load0;
      const chat::ChatTemplate& t = session.chat_template();
      if (o->reasoning_budget >= 0 && !session.has_thinking_markers())
        note(std::string("hearth: note: the ") + chat::family_name(t.family()) +
             " format has no thinking markers; --reasoning-budget does nothing");
      const chat::Thinking thinking = o->think      ? chat::Thinking::On
                                      : o->no_think ? chat::Thinking::Off
                                                    : chat::Thinking::Default;
      catch_sigint();
      g_interrupted = false;
      if (interactive) {
        note("hearth: chat with " + (o->model.empty() ? std::string("the embedded hearth-kjv model") : o->model) +
             " (n_ctx " + std::to_string(session.context().n_ctx()) + "); template: " + t.name() + ", format " +
             chat::family_name(t.family()) + "; thinking: " + switch_description(t.thinking_switch()) + ".");
        note("Type /help for the commands. Ctrl-C stops an answer; Ctrl-D exits.");
        const int rc = run_interactive(session, o->system, thinking, o->verbose);
        std::signal(SIGINT, SIG_DFL);
        return rc;
      }
      // One turn for scripts: the answer on stdout, the thinking on stderr.
      json messages = json::array();
      set_system(messages, o->system);
      messages.push_back(user_message(session, o->prompt, thinking));
      AnswerPrinter printer(stdout, stderr);
      TurnStats stats;
      session.answer(messages, render_thinking(session, thinking), [&](const chat::Event& e) { printer.on(e); }, stats);
      printer.finish();
      std::signal(SIGINT, SIG_DFL);
      std::fprintf(stderr, "\n");
      std::fprintf(stderr, "load:       %8.2f ms\n", t_load * 1e3);
      print_stats(stats);
      return g_interrupted ? 130 : 0;
    }

    const std::vector<int32_t> prompt = tok.encode(o->prompt, !o->no_bos, false);
    if (prompt.empty()) throw Error("the prompt has no tokens");
    if (prompt.size() >= o->n_ctx)
      throw Error("the prompt is " + std::to_string(prompt.size()) + " tokens long, which does not fit in the context of " +
                  std::to_string(o->n_ctx) + " tokens (raise -c)");
    runtime::Context ctx(model, cp);
    const double t_load = now_seconds() - t_load0;

    g_interrupted = false;
    std::signal(SIGINT, on_sigint);
    tokenizer::StreamDecoder stream(tok);
    std::fputs(o->prompt.c_str(), stdout);  // the prompt as given, then the continuation
    std::fflush(stdout);

    const double t0 = now_seconds();
    runtime::Batch batch;
    for (size_t i = 0; i < prompt.size(); ++i)
      batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
    ctx.decode(batch);
    for (int32_t id : prompt) sampler.accept(id);
    const double t_prompt = now_seconds() - t0;
    std::vector<float> logits(ctx.logits(prompt.size() - 1).begin(), ctx.logits(prompt.size() - 1).end());

    int n_gen = 0;
    int32_t pos = static_cast<int32_t>(prompt.size());
    const char* stop_reason = "n_predict reached";
    const double t1 = now_seconds();
    while (o->n_predict < 0 || n_gen < o->n_predict) {
      if (g_interrupted) {
        stop_reason = "interrupted";
        break;
      }
      const int32_t id = sampler.sample(logits);
      if (tok.is_eog(id) && !o->ignore_eos) {
        stop_reason = "end of text";
        break;
      }
      std::fputs(stream.push(id).c_str(), stdout);
      std::fflush(stdout);
      ++n_gen;
      if (static_cast<uint32_t>(pos) >= ctx.n_ctx()) {
        stop_reason = "context full";
        break;
      }
      if (o->n_predict >= 0 && n_gen >= o->n_predict) break;
      batch.clear();
      batch.add(id, pos++, 0, true);
      ctx.decode(batch);
      const auto row = ctx.logits(0);
      logits.assign(row.begin(), row.end());
    }
    const double t_gen = now_seconds() - t1;
    std::fputs(stream.flush().c_str(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    std::signal(SIGINT, SIG_DFL);

    std::fprintf(stderr, "\n");
    std::fprintf(stderr, "load:       %8.2f ms\n", t_load * 1e3);
    std::fprintf(stderr, "prompt:     %5zu tokens in %8.2f ms = %8.2f tokens/s\n", prompt.size(), t_prompt * 1e3,
                 static_cast<double>(prompt.size()) / t_prompt);
    std::fprintf(stderr, "generation: %5d tokens in %8.2f ms = %8.2f tokens/s (%s)\n", n_gen, t_gen * 1e3,
                 n_gen > 0 ? n_gen / t_gen : 0.0, stop_reason);
    std::fprintf(stderr, "seed:       %llu, threads: %d, n_ctx: %u\n", static_cast<unsigned long long>(o->sp.seed),
                 ctx.pool().n_threads(), ctx.n_ctx());
    return g_interrupted ? 130 : 0;
  });
}

}  // namespace hearth::app

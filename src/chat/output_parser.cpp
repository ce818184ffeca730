// The incremental output parser (output_parser.h): a state machine over content, reasoning and
// tool-call blocks, with the family's markers (formats.h) and block readers (tool_syntax.h).
#include "chat/output_parser.h"

#include <random>

#include "chat/tool_syntax.h"
#include "hearth/error.h"

namespace hearth::chat {

using detail::BlockKind;
using detail::BlockResult;
using detail::Match;

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A marker that changes the state when it appears in content.
struct Trigger {
  enum class Action { ThinkOpen, Tool, Drop };
  std::string text;
  Action action = Action::Drop;
  BlockKind kind = BlockKind::Hermes;
  bool keep = false;  // the block text starts at the marker (its reader wants it)
};

std::vector<Trigger> content_triggers(Family family, const ThinkingMarkers& think, bool tools) {
  using A = Trigger::Action;
  std::vector<Trigger> t;
  if (!think.open.empty()) t.push_back({think.open, A::ThinkOpen});
  if (!tools) return t;
  switch (family) {
    case Family::Generic:
    case Family::Qwen3: t.push_back({"<tool_call>", A::Tool, BlockKind::Hermes}); break;
    case Family::Qwen35:
      t.push_back({"<tool_call>", A::Tool, BlockKind::Hermes});
      t.push_back({"<function=", A::Tool, BlockKind::XmlFunction, true});
      break;
    case Family::Llama3: t.push_back({"<|python_tag|>", A::Tool, BlockKind::Llama3PythonTag}); break;
    case Family::Llama4: t.push_back({"<|python_start|>", A::Tool, BlockKind::Llama4Tag}); break;
    case Family::Gemma4:
      t.push_back({"<|tool_call>", A::Tool, BlockKind::Gemma4});
      t.push_back({"<|tool_response>", A::Drop});  // the template's end of a tool-calling turn
      break;
    case Family::DeepSeekR1:
      t.push_back({"<｜tool▁calls▁begin｜>", A::Tool, BlockKind::DeepSeekCalls});
      t.push_back({"<｜tool▁call▁begin｜>", A::Tool, BlockKind::DeepSeekCall, true});
      t.push_back({"<｜tool▁calls▁end｜>", A::Drop});
      break;
    case Family::Mistral: t.push_back({"[TOOL_CALLS]", A::Tool, BlockKind::Mistral}); break;
  }
  return t;
}

// Length of the longest end of `buf` that is a proper prefix of one of `markers`.
size_t partial_suffix(std::string_view buf, const std::vector<std::string_view>& markers) {
  size_t best = 0;
  for (std::string_view m : markers)
    for (size_t len = std::min(buf.size(), m.size() - 1); len > best; --len)
      if (buf.substr(buf.size() - len) == m.substr(0, len)) {
        best = len;
        break;
      }
  return best;
}

// One trimmed section of text (content or reasoning): leading whitespace is dropped, trailing
// whitespace is held until more text of the section follows.
struct Section {
  bool started = false;
  std::string ws;

  std::string add(std::string_view t) {
    if (!started) {
      size_t i = 0;
      while (i < t.size() && is_ws(t[i])) ++i;
      t.remove_prefix(i);
      if (t.empty()) return {};
      started = true;
    }
    size_t last = t.size();
    while (last > 0 && is_ws(t[last - 1])) --last;
    if (last == 0) {
      ws.append(t);
      return {};
    }
    std::string out = std::move(ws);
    out.append(t.substr(0, last));
    ws.assign(t.substr(last));
    return out;
  }
  void end() {
    started = false;
    ws.clear();
  }
};

}  // namespace

nlohmann::ordered_json ParsedOutput::to_message() const {
  nlohmann::ordered_json m = {{"role", "assistant"}};
  m["content"] = content.empty() && !tool_calls.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(content);
  if (!reasoning.empty()) m["reasoning_content"] = reasoning;
  if (!tool_calls.empty()) {
    auto& calls = m["tool_calls"] = nlohmann::ordered_json::array();
    for (const ToolCall& c : tool_calls)
      calls.push_back(
          {{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return m;
}

struct OutputParser::Impl {
  enum class Mode { Content, Reasoning, Tool };

  Family family;
  ParserOptions opt;
  ThinkingMarkers think;
  std::vector<Trigger> triggers;
  std::vector<std::string_view> trigger_texts;
  bool start_json = false, start_pythonic = false;  // Llama: calls at the start of the answer

  Mode mode = Mode::Content;
  std::string buf;  // text not decided yet
  BlockKind block = BlockKind::Hermes;
  std::string opener;  // the marker that opened the current block (when not part of buf)
  Section content, reasoning;
  bool finished = false;
  ParsedOutput result;
  // Streaming (ParserOptions::stream_tool_calls): the calls of the current block begun so far.
  struct Streamed {
    std::string id;
    std::string args;  // arguments sent so far
  };
  std::vector<Streamed> streamed;
  std::mt19937_64 rng;
  std::vector<Event>* out = nullptr;

  Impl(Family f, ParserOptions o) : family(f), opt(std::move(o)), think(thinking_markers(f)) {
    triggers = content_triggers(f, think, opt.parse_tool_calls);
    for (const Trigger& t : triggers) trigger_texts.push_back(t.text);
    start_json = opt.parse_tool_calls && (f == Family::Llama3 || f == Family::Llama4);
    start_pythonic = opt.parse_tool_calls && f == Family::Llama4;
    if (opt.starts_in_reasoning && !think.open.empty()) mode = Mode::Reasoning;
    rng.seed(opt.id_seed != 0 ? opt.id_seed
                              : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
  }

  void push(EventKind kind, std::string text) {
    if (text.empty()) return;
    if (kind == EventKind::Content) result.content += text;
    if (kind == EventKind::Reasoning) result.reasoning += text;
    if (!out->empty() && out->back().kind == kind && kind != EventKind::Error) {
      out->back().text += text;
      return;
    }
    out->push_back({kind, std::move(text), {}, 0});
  }
  void emit_content(std::string_view t) { push(EventKind::Content, content.add(t)); }
  void emit_reasoning(std::string_view t) { push(EventKind::Reasoning, reasoning.add(t)); }

  std::string make_id() {
    static constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const bool mistral = family == Family::Mistral;  // its templates require 9 letters and digits
    std::string id = mistral ? "" : "call_";
    for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kAlnum[rng() % 62];
    return id;
  }

  // Each step returns whether it changed the state (the loop goes on) or needs more text.
  bool step_content(bool at_end) {
    if ((start_json || start_pythonic) && !content.started) {
      const std::string_view skip = result.tool_calls.empty() ? "" : ";";
      size_t start = 0;
      Match m = start_json ? detail::match_json_call_start(buf, skip, &start) : Match::No;
      BlockKind kind = BlockKind::Llama3Json;
      if (m != Match::Yes && start_pythonic) {
        size_t pstart = 0;
        const Match p = detail::match_pythonic_start(buf, &pstart);
        if (p == Match::Yes) {
          m = Match::Yes;
          start = pstart;
          kind = BlockKind::Pythonic;
        } else if (p == Match::Maybe) {
          m = Match::Maybe;
        }
      }
      if (m == Match::Yes) {
        buf.erase(0, start);
        opener.clear();
        block = kind;
        mode = Mode::Tool;
        return true;
      }
      if (m == Match::Maybe && !at_end) return false;
    }
    size_t best = std::string::npos;
    const Trigger* hit = nullptr;
    for (const Trigger& t : triggers) {
      const size_t p = buf.find(t.text);
      if (p != std::string::npos && (p < best || (p == best && t.text.size() > hit->text.size()))) {
        best = p;
        hit = &t;
      }
    }
    if (hit == nullptr) {
      const size_t hold = at_end ? 0 : partial_suffix(buf, trigger_texts);
      emit_content(std::string_view(buf).substr(0, buf.size() - hold));
      buf.erase(0, buf.size() - hold);
      return false;
    }
    emit_content(std::string_view(buf).substr(0, best));
    switch (hit->action) {
      case Trigger::Action::ThinkOpen:
        content.end();
        buf.erase(0, best + hit->text.size());
        mode = Mode::Reasoning;
        break;
      case Trigger::Action::Drop: buf.erase(0, best + hit->text.size()); break;
      case Trigger::Action::Tool:
        content.end();
        opener = hit->keep ? "" : hit->text;
        buf.erase(0, best + (hit->keep ? 0 : hit->text.size()));
        block = hit->kind;
        mode = Mode::Tool;
        break;
    }
    return true;
  }

  bool step_reasoning(bool at_end) {
    if (!reasoning.started) {
      // An opening marker written again where the prompt already opened the reasoning.
      size_t i = 0;
      while (i < buf.size() && is_ws(buf[i])) ++i;
      const std::string_view rest = std::string_view(buf).substr(i);
      if (rest.substr(0, think.open.size()) == think.open) {
        buf.erase(0, i + think.open.size());
        return true;
      }
      if (!rest.empty() && rest.size() < think.open.size() && think.open.starts_with(rest) && !at_end) return false;
    }
    const size_t p = buf.find(think.close);
    if (p == std::string::npos) {
      const size_t hold = at_end ? 0 : partial_suffix(buf, {think.close});
      emit_reasoning(std::string_view(buf).substr(0, buf.size() - hold));
      buf.erase(0, buf.size() - hold);
      return false;
    }
    emit_reasoning(std::string_view(buf).substr(0, p));
    reasoning.end();
    buf.erase(0, p + think.close.size());
    mode = Mode::Content;
    return true;
  }

  // Begins call `i` of the block (ToolCallBegin) if it has not begun, and sends the part of
  // `args` it has not sent yet (ToolCallArgs) when `args` extends what was sent.
  // `first`: the index of the block's first call.
  void stream_call(size_t first, size_t i, const std::string& name, const std::string& model_id,
                   const std::string& args) {
    const size_t index = first + i;
    if (i >= streamed.size()) {
      streamed.push_back({model_id.empty() ? make_id() : model_id, ""});
      out->push_back({EventKind::ToolCallBegin, "", {streamed[i].id, name, ""}, index});
    }
    Streamed& s = streamed[i];
    if (args.size() > s.args.size() && args.compare(0, s.args.size(), s.args) == 0) {
      out->push_back({EventKind::ToolCallArgs, args.substr(s.args.size()), {s.id, name, ""}, index});
      s.args = args;
    }
  }

  bool step_tool(bool at_end) {
    const BlockResult r = detail::read_block(block, buf, at_end, opt.tools);
    switch (r.status) {
      case BlockResult::Status::NeedMore:
        if (opt.stream_tool_calls) {
          const std::vector<detail::PartialCall> partial = detail::read_partial_block(block, buf, opt.tools);
          for (size_t i = 0; i < partial.size(); ++i)
            stream_call(result.tool_calls.size(), i, partial[i].name, partial[i].id, partial[i].arguments);
        }
        return false;
      case BlockResult::Status::Done: {
        const size_t first = result.tool_calls.size();
        for (size_t i = 0; i < r.calls.size(); ++i) {
          const detail::RawCall& c = r.calls[i];
          std::string id;
          if (opt.stream_tool_calls) {
            stream_call(first, i, c.name, c.id, c.arguments);
            id = streamed[i].id;
          } else {
            id = c.id.empty() ? make_id() : c.id;
          }
          ToolCall call{id, c.name, c.arguments};
          result.tool_calls.push_back(call);
          out->push_back({EventKind::ToolCall, "", std::move(call), first + i});
        }
        streamed.clear();
        break;
      }
      case BlockResult::Status::Invalid: {
        const std::string message = "malformed tool call (" + std::string(family_name(family)) + " format): " + r.error;
        result.errors.push_back(message);
        out->push_back({EventKind::Error, message, {}, 0});
        streamed.clear();
        emit_content(opener + buf.substr(0, r.consumed));
        break;
      }
    }
    buf.erase(0, std::min(r.consumed, buf.size()));
    opener.clear();
    mode = Mode::Content;
    return true;
  }

  void process(bool at_end) {
    while (true) {
      bool more = false;
      switch (mode) {
        case Mode::Content: more = step_content(at_end); break;
        case Mode::Reasoning: more = step_reasoning(at_end); break;
        case Mode::Tool: more = step_tool(at_end); break;
      }
      if (!more) return;
    }
  }
};

OutputParser::OutputParser(Family family, ParserOptions options)
    : impl_(std::make_unique<Impl>(family, std::move(options))) {}
OutputParser::~OutputParser() = default;
OutputParser::OutputParser(OutputParser&&) noexcept = default;
OutputParser& OutputParser::operator=(OutputParser&&) noexcept = default;

std::vector<Event> OutputParser::feed(std::string_view text) {
  if (impl_->finished) throw Error("OutputParser::feed after finish()");
  std::vector<Event> events;
  impl_->out = &events;
  impl_->buf.append(text);
  impl_->process(false);
  impl_->out = nullptr;
  return events;
}

std::vector<Event> OutputParser::finish() {
  std::vector<Event> events;
  if (impl_->finished) return events;
  impl_->out = &events;
  impl_->process(true);
  impl_->content.end();
  impl_->reasoning.end();
  impl_->finished = true;
  impl_->out = nullptr;
  return events;
}

bool OutputParser::in_reasoning() const { return impl_->mode == Impl::Mode::Reasoning; }
const ParsedOutput& OutputParser::result() const { return impl_->result; }
Family OutputParser::family() const { return impl_->family; }

ParsedOutput parse_output(Family family, std::string_view text, const ParserOptions& options) {
  OutputParser p(family, options);
  p.feed(text);
  p.finish();
  return p.result();
}

}  // namespace hearth::chat

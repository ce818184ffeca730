#include "server/session.h"

#include "server/util.h"

namespace hearth::server {

// One entry of the queue: a token's safe text (after stop strings) or the end of a choice.
struct Item {
  int choice = 0;
  std::string text;
  bool is_token = false;   // a generated (not end-of-generation) token
  bool has_token = false;  // with its logprobs in `token`
  TokenEvent token;  // with has_token (text empty: the event's text went through the stop matcher)
  bool done = false;
  Completion completion;
  std::string stop_string;
};

struct Session::Shared {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Item> items;

  void push(Item item) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      items.push_back(std::move(item));
    }
    cv.notify_one();
  }
};

struct Session::ChoiceState {
  std::optional<chat::OutputParser> parser;
  int reasoning_tokens = 0;
  int tool_calls = 0;
  bool done = false;
};

Session::Session(std::shared_ptr<Backend> backend, const tokenizer::Tokenizer& tokenizer, SessionParams params)
    : backend_(std::move(backend)), tok_(tokenizer), params_(std::move(params)), shared_(std::make_shared<Shared>()) {
  if (params_.n < 1) throw Error("n must be at least 1");
  for (int i = 0; i < params_.n; ++i) {
    auto c = std::make_unique<ChoiceState>();
    if (params_.parse) {
      chat::ParserOptions po = params_.parser_options;
      if (po.id_seed != 0) po.id_seed += static_cast<uint64_t>(i);
      c->parser.emplace(params_.family, po);
    }
    choices_.push_back(std::move(c));
  }
}

Session::~Session() { cancel(); }

void Session::start() {
  for (int i = 0; i < params_.n; ++i) {
    GenerationRequest r = params_.request;
    r.sampling.seed += static_cast<uint64_t>(i);
    // Engine-thread state: the stop matcher of this choice.
    auto matcher = std::make_shared<StopMatcher>(params_.stop);
    std::shared_ptr<Shared> shared = shared_;
    const bool logprobs = r.want_logprobs;
    r.on_token = [shared, matcher, i, logprobs](const TokenEvent& ev) {
      Item item;
      item.choice = i;
      if (!ev.eog) {
        item.is_token = true;
        item.text = matcher->feed(ev.text);
      }
      if (logprobs && !ev.eog) {
        item.has_token = true;
        item.token = ev;
        item.token.text.clear();
      }
      const bool stop = matcher->matched();
      if (item.is_token) shared->push(std::move(item));
      return stop ? Next::Stop : Next::Continue;
    };
    r.on_done = [shared, matcher, i](const Completion& c) {
      Item tail;
      tail.choice = i;
      tail.text = matcher->flush();
      if (!tail.text.empty()) shared->push(std::move(tail));
      Item item;
      item.choice = i;
      item.done = true;
      item.completion = c;
      item.stop_string = matcher->matched_string();
      shared->push(std::move(item));
    };
    try {
      handles_.push_back(backend_->submit(std::move(r)));
    } catch (...) {
      cancel();
      throw;
    }
  }
}

void Session::cancel() {
  for (auto& h : handles_)
    if (h && !h->done()) h->cancel();
}

std::optional<StepOutput> Session::next(std::chrono::milliseconds timeout) {
  Item item;
  {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    if (!shared_->cv.wait_for(lock, timeout, [&] { return !shared_->items.empty(); })) return std::nullopt;
    item = std::move(shared_->items.front());
    shared_->items.pop_front();
  }
  StepOutput out;
  out.choice = item.choice;
  ChoiceState& c = *choices_[static_cast<size_t>(item.choice)];
  auto take = [&](std::vector<chat::Event> events) {
    for (chat::Event& e : events) {
      if (e.kind == chat::EventKind::ToolCall) ++c.tool_calls;
      out.events.push_back(std::move(e));
    }
  };
  if (!item.text.empty()) {
    if (c.parser) take(c.parser->feed(item.text));
    else out.events.push_back({chat::EventKind::Content, item.text, {}});
  }
  if (item.is_token && c.parser && c.parser->in_reasoning()) ++c.reasoning_tokens;
  if (item.has_token) {
    TokenLogprob lp;
    lp.token = tok_.token_to_piece(item.token.token, true);
    lp.logprob = item.token.logprob;
    for (const TopLogprob& t : item.token.top) lp.top.emplace_back(tok_.token_to_piece(t.token, true), t.logprob);
    out.logprobs.push_back(std::move(lp));
  }
  if (item.done) {
    if (c.parser) take(c.parser->finish());
    out.done = true;
    out.completion = item.completion;
    out.stop_string = item.stop_string;
    out.reasoning_tokens = c.reasoning_tokens;
    out.tool_calls = c.tool_calls;
    c.done = true;
    ++finished_;
  }
  return out;
}

}  // namespace hearth::server

// `hearth run MODEL` without -p: the interactive chat, driven through a real terminal (tmux):
// type a message and see an answer, the KV cache kept across turns, /clear, multi-line input,
// /save and /load, thinking shown dimmed with a thinking budget and switched off with /no_think,
// Ctrl-C stopping an answer but not the program, Ctrl-C twice and Ctrl-D leaving it.
// The model is `hearth synth tiny-qwen3` (random weights, Qwen's special tokens, no chat
// template): hearth's ChatML fallback, or a real template given with --chat-template-file.
// Skipped, saying why, where tmux is not installed (tools/bootstrap installs it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-chat-tmux-" + std::to_string(getpid()) + "-" + name))
      .string();
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command; returns its stdout.
std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  if (status != nullptr) *status = st;
  return out;
}

bool have_tmux() {
  int st = -1;
  run("tmux -V >/dev/null 2>&1", &st);
  return st == 0;
}

// One tmux server of our own (its own socket) with one session running a command.
class Terminal {
 public:
  explicit Terminal(const std::string& command)
      : socket_("hearth-test-" + std::to_string(getpid()) + "-" + std::to_string(++count_)) {
    // The pane stays after hearth exits, showing its exit status.
    const std::string script = command + "; echo \"hearth exited with $?\"; sleep 120";
    int st = -1;
    run(tmux("new-session -d -s chat -x 200 -y 60 " + shell_quote(script)) + " 2>&1", &st);
    started_ = st == 0;
    if (started_) socket_path_ = run(tmux("display-message -p '#{socket_path}'"));
    while (!socket_path_.empty() && socket_path_.back() == '\n') socket_path_.pop_back();
  }
  ~Terminal() {
    run(tmux("kill-server") + " >/dev/null 2>&1");
    if (!socket_path_.empty()) std::filesystem::remove(socket_path_);
  }

  bool started() const { return started_; }
  void type(const std::string& text) { run(tmux("send-keys -t chat -l " + shell_quote(text))); }
  void key(const std::string& name) { run(tmux("send-keys -t chat " + name)); }
  void line(const std::string& text) {
    type(text);
    key("Enter");
  }
  // The whole pane with its scroll-back, wrapped lines joined; `escapes` keeps the attributes.
  std::string screen(bool escapes = false) {
    return run(tmux(std::string("capture-pane -p -J -S - -t chat") + (escapes ? " -e" : "")));
  }
  // Polls the pane until `pred` holds (every 20 ms, at most `timeout_s`).
  template <class Pred>
  bool wait_until(Pred pred, double timeout_s = 15.0) {
    const auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (Clock::now() < end) {
      if (pred(screen())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred(screen());
  }
  bool wait_for(const std::string& text, double timeout_s = 15.0) {
    return wait_until([&](const std::string& s) { return s.find(text) != std::string::npos; }, timeout_s);
  }

 private:
  std::string tmux(const std::string& args) const { return "tmux -L " + socket_ + " -f /dev/null " + args; }
  std::string socket_, socket_path_;
  bool started_ = false;
  static inline int count_ = 0;
};

// The statistics line hearth -v prints after each answer.
struct TurnStats {
  int prompt = 0, cached = 0, answer = 0, thinking = 0;
  bool opens_thinking = false;
  std::string stop;
};

std::vector<TurnStats> stats_of(const std::string& screen) {
  static const std::regex re(
      R"(\[prompt: (\d+) tokens( \(opens the thinking\))?, (\d+) cached, \d+ evaluated in [0-9.]+ s; )"
      R"(answer: (\d+) tokens \((\d+) thinking\)[^;]*; ([a-z_ ]+)\])");
  std::vector<TurnStats> out;
  for (auto it = std::sregex_iterator(screen.begin(), screen.end(), re); it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    out.push_back({std::stoi(m[1]), std::stoi(m[3]), std::stoi(m[4]), std::stoi(m[5]), m[2].matched, m[6]});
  }
  return out;
}

// Waits for the n-th statistics line and a fresh prompt after it.
bool wait_turn(Terminal& t, size_t n) {
  return t.wait_until([&](const std::string& s) {
    if (stats_of(s).size() < n) return false;
    const size_t last = s.rfind("[prompt: ");
    return s.find("\n> ", last) != std::string::npos;
  });
}

// The text between the line "> MESSAGE" and the next statistics line.
std::string answer_after(const std::string& screen, const std::string& message) {
  const size_t at = screen.rfind("> " + message + "\n");
  if (at == std::string::npos) return "";
  const size_t b = at + message.size() + 3;
  const size_t e = screen.find("[prompt: ", b);
  return screen.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

// A tiny random-weight Qwen 3 model (made once; "" if hearth synth failed).
const std::string& tiny_model() {
  static const std::string path = [] {
    const std::string p = temp_path("tiny-qwen3.gguf");
    int st = -1;
    run(std::string(HEARTH_BINARY) + " synth tiny-qwen3 -o " + shell_quote(p) + " --seed 3 2>&1", &st);
    std::atexit([] { std::filesystem::remove(temp_path("tiny-qwen3.gguf")); });
    return st == 0 ? p : std::string();
  }();
  return path;
}

std::string hearth_run(const std::string& args) {
  return std::string(HEARTH_BINARY) + " run " + shell_quote(tiny_model()) + " -t 1 -v " + args;
}

const std::string kQwen35Template = std::string(HEARTH_TESTDATA_DIR) + "/chat-templates/Qwen3.5-4B.jinja";

class ChatTmux : public testing::Test {
 protected:
  void SetUp() override {
    if (!have_tmux())
      GTEST_SKIP() << "tmux is not installed (tools/bootstrap installs it); the interactive chat test needs a terminal";
    ASSERT_FALSE(tiny_model().empty()) << "hearth synth tiny-qwen3 failed";
  }
  static std::string hearth(const std::string& args) { return hearth_run(args); }
};

TEST_F(ChatTmux, AnswersKeepsTheCacheClearsSavesAndLoads) {
  Terminal t(hearth("-n 12 --seed 1"));
  ASSERT_TRUE(t.started());
  // No template in the GGUF: the ChatML fallback, and it says so.
  ASSERT_TRUE(t.wait_for("Type /help")) << t.screen();
  EXPECT_NE(t.screen().find("no chat template"), std::string::npos) << t.screen();
  ASSERT_TRUE(t.wait_for("\n> "));

  t.line("Hello there");
  ASSERT_TRUE(wait_turn(t, 1)) << t.screen();
  std::vector<TurnStats> s = stats_of(t.screen());
  EXPECT_EQ(s[0].cached, 0);
  EXPECT_GT(s[0].answer, 0);
  EXPECT_NE(answer_after(t.screen(), "Hello there").find_first_not_of(" \n"), std::string::npos) << "no answer text:\n"
                                                                                                 << t.screen();
  const int first_prompt = s[0].prompt;

  // The second turn evaluates only what the conversation added.
  t.line("And now?");
  ASSERT_TRUE(wait_turn(t, 2)) << t.screen();
  s = stats_of(t.screen());
  EXPECT_GT(s[1].prompt, first_prompt);
  EXPECT_GE(s[1].cached, first_prompt) << t.screen();

  // Multi-line input: a trailing backslash, then a """ block.
  t.line("one \\");
  ASSERT_TRUE(t.wait_for("\n... "));
  t.line("two");
  ASSERT_TRUE(wait_turn(t, 3)) << t.screen();
  t.line("\"\"\"");
  t.line("block line 1");
  t.line("block line 2");
  t.line("\"\"\"");
  ASSERT_TRUE(wait_turn(t, 4)) << t.screen();

  const std::string saved = temp_path("conversation.json");
  t.line("/save " + saved);
  ASSERT_TRUE(t.wait_for("(saved 8 messages")) << t.screen();
  const auto messages = nlohmann::json::parse(std::ifstream(saved));
  ASSERT_EQ(messages.size(), 8u);
  EXPECT_EQ(messages[0]["content"], "Hello there");
  EXPECT_EQ(messages[1]["role"], "assistant");
  EXPECT_EQ(messages[4]["content"], "one \ntwo");
  EXPECT_EQ(messages[6]["content"], "block line 1\nblock line 2");

  // /clear forgets the conversation: the same first message makes the same prompt again, and the
  // cache still holds all of it but the last token.
  t.line("/clear");
  ASSERT_TRUE(t.wait_for("(conversation cleared)")) << t.screen();
  t.line("Hello there");
  ASSERT_TRUE(wait_turn(t, 5)) << t.screen();
  s = stats_of(t.screen());
  EXPECT_EQ(s[4].prompt, first_prompt);
  EXPECT_EQ(s[4].cached, first_prompt - 1);

  // /load brings the saved conversation back: the next prompt holds all of it.
  t.line("/load " + saved);
  ASSERT_TRUE(t.wait_for("(loaded 8 messages")) << t.screen();
  t.line("Last one");
  ASSERT_TRUE(wait_turn(t, 6)) << t.screen();
  s = stats_of(t.screen());
  EXPECT_GT(s[5].prompt, s[3].prompt);

  t.key("C-d");
  EXPECT_TRUE(t.wait_for("hearth exited with 0")) << t.screen();
  std::filesystem::remove(saved);
}

TEST_F(ChatTmux, CtrlCStopsTheAnswerNotTheProgram) {
  // An answer that would run for long: no end of turn, a large context.
  Terminal t(hearth("--ignore-eos -n -1 -c 65536 --seed 2"));
  ASSERT_TRUE(t.started());
  ASSERT_TRUE(t.wait_for("\n> ")) << t.screen();
  t.line("Tell me a long story");
  // Wait until some of the answer is on the screen, then interrupt it.
  ASSERT_TRUE(t.wait_until([](const std::string& s) { return answer_after(s, "Tell me a long story").size() > 20; }))
      << t.screen();
  t.key("C-c");
  ASSERT_TRUE(wait_turn(t, 1)) << t.screen();
  EXPECT_NE(t.screen().find("(stopped)"), std::string::npos) << t.screen();
  const std::vector<TurnStats> s = stats_of(t.screen());
  EXPECT_EQ(s[0].stop, "interrupted");
  EXPECT_GT(s[0].answer, 0);
  EXPECT_LT(s[0].answer, 60000);
  // Still running: a command works.
  t.line("/help");
  ASSERT_TRUE(t.wait_for("/no_think [TEXT]")) << t.screen();
  // Ctrl-C at the prompt asks for a second one, which leaves.
  t.key("C-c");
  ASSERT_TRUE(t.wait_for("(Ctrl-C again or Ctrl-D to exit)")) << t.screen();
  EXPECT_EQ(t.screen().find("hearth exited"), std::string::npos);
  t.key("C-c");
  EXPECT_TRUE(t.wait_for("hearth exited with 0")) << t.screen();
}

TEST_F(ChatTmux, ThinkingIsDimmedAndSwitchedOff) {
  // Qwen 3.5's template opens <think> in the prompt: the answer starts as thinking, which the
  // budget ends after 4 tokens. /no_think makes the template close it in the prompt.
  Terminal t(hearth("-n 24 --seed 5 --reasoning-budget 4 --chat-template-file " + shell_quote(kQwen35Template)));
  ASSERT_TRUE(t.started());
  ASSERT_TRUE(t.wait_for("format qwen3.5")) << t.screen();
  ASSERT_TRUE(t.wait_for("\n> "));
  t.line("Hi");
  ASSERT_TRUE(wait_turn(t, 1)) << t.screen();
  std::vector<TurnStats> s = stats_of(t.screen());
  EXPECT_TRUE(s[0].opens_thinking) << t.screen();
  EXPECT_EQ(s[0].thinking, 4) << t.screen();
  // The thinking is dim (SGR 2) on the terminal, and the dimming ends before the answer.
  const std::string colored = t.screen(true);
  const size_t dim = colored.find("\033[2m");
  ASSERT_NE(dim, std::string::npos) << colored;
  EXPECT_NE(colored.find("\033[0m", dim), std::string::npos);

  t.line("/no_think");
  ASSERT_TRUE(t.wait_for("(thinking off)")) << t.screen();
  t.line("Hi again");
  ASSERT_TRUE(wait_turn(t, 2)) << t.screen();
  // The template closed the thinking in the prompt (a random model may still open its own).
  s = stats_of(t.screen());
  EXPECT_FALSE(s[1].opens_thinking) << t.screen();
  EXPECT_LE(s[1].thinking, 4) << t.screen();
  t.line("/exit");
  EXPECT_TRUE(t.wait_for("hearth exited with 0")) << t.screen();
}

// `hearth run MODEL -p TEXT --chat`: one chat turn for scripts, the answer on stdout and the
// thinking on stderr. No terminal needed.
TEST(ChatCli, OneTurnForScripts) {
  ASSERT_FALSE(tiny_model().empty()) << "hearth synth tiny-qwen3 failed";
  const std::string err = temp_path("chat-err");
  int st = -1;
  const std::string out = run(hearth_run("-p Hi --chat -n 16 --seed 4 --reasoning-budget 3 --chat-template-file " +
                                         shell_quote(kQwen35Template)) +
                                  " 2>" + shell_quote(err),
                              &st);
  std::ifstream in(err);
  const std::string errors((std::istreambuf_iterator<char>(in)), {});
  ASSERT_EQ(st, 0) << errors;
  std::vector<TurnStats> s = stats_of(errors);
  ASSERT_EQ(s.size(), 1u) << errors;
  EXPECT_TRUE(s[0].opens_thinking);
  EXPECT_EQ(s[0].thinking, 3);
  // The thinking went to stderr, before the statistics; the answer on stdout has none of it.
  const std::string thinking = errors.substr(0, errors.find("\n\nload:"));
  ASSERT_GE(thinking.size(), 3u) << errors;
  EXPECT_EQ(out.find(thinking), std::string::npos) << out;
  EXPECT_EQ(out.find("think>"), std::string::npos) << out;
  EXPECT_FALSE(out.empty());
  // Thinking off through the template.
  const std::string off =
      run(hearth_run("-p Hi --chat -n 4 --seed 4 --no-think --chat-template-file " + shell_quote(kQwen35Template)) +
              " 2>&1",
          &st);
  ASSERT_EQ(st, 0) << off;
  s = stats_of(off);
  ASSERT_EQ(s.size(), 1u) << off;
  EXPECT_FALSE(s[0].opens_thinking);
  // Errors are one line.
  const std::string bad = run(hearth_run("-p Hi --chat --chat-format nope") + " 2>&1", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(bad.find("unknown chat format 'nope'"), std::string::npos) << bad;
  const std::string missing = run(hearth_run("-p Hi --chat --chat-template-file /nonexistent/t.jinja") + " 2>&1", &st);
  EXPECT_NE(st, 0);
  EXPECT_NE(missing.find("/nonexistent/t.jinja: cannot open"), std::string::npos) << missing;
  std::filesystem::remove(err);
}

}  // namespace

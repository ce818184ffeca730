// Conformance: every case of ../shared/testdata/chat-templates renders byte for byte as Python's
// jinja2 rendered it (Hugging Face's apply_chat_template setup), and every case where jinja2
// failed fails here too, with the same message.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "chat/template.h"

namespace {

const std::string kDir = std::string(HEARTH_TESTDATA_DIR) + "/chat-templates/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Where two renderings first differ, with some text of each around that byte.
std::string first_difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  const size_t from = i > 40 ? i - 40 : 0;
  auto excerpt = [&](const std::string& s) {
    return nlohmann::json(s.substr(from, std::min<size_t>(80, s.size() - std::min(from, s.size())))).dump();
  };
  return "first difference at byte " + std::to_string(i) + " (expected " + std::to_string(want.size()) +
         " bytes, got " + std::to_string(got.size()) + ")\n  expected: ..." + excerpt(want) + "\n  got:      ..." +
         excerpt(got);
}

std::vector<std::string> case_files() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(kDir)) {
    const std::string p = e.path().string();
    if (p.size() > 11 && p.compare(p.size() - 11, 11, ".cases.json") == 0) files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ChatTemplateConformance, EveryCaseRendersAsJinja2DidAndFailsWhereItFailed) {
  const std::vector<std::string> files = case_files();
  ASSERT_GE(files.size(), 10u) << "no case files in " << kDir;
  int rendered = 0, failed_as_expected = 0;
  double render_seconds = 0;
  for (const std::string& file : files) {
    const auto j = nlohmann::ordered_json::parse(slurp(file));
    const std::string name = j.at("template").get<std::string>();
    std::optional<hearth::chat::Template> t;
    try {
      t = hearth::chat::Template::parse(slurp(kDir + name), name);
    } catch (const hearth::Error& e) {
      ADD_FAILURE() << name << ": does not parse: " << e.what();
      continue;
    }
    hearth::chat::RenderOptions opts;
    opts.now = hearth::chat::parse_date(j.at("date_for_strftime_now").get<std::string>());
    for (const auto& c : j.at("cases")) {
      const std::string case_name = name + " / " + c.at("name").get<std::string>();
      const hearth::chat::Value ctx = hearth::chat::chat_context(c);
      const auto start = std::chrono::steady_clock::now();
      std::string got;
      std::optional<hearth::chat::TemplateError> error;
      try {
        got = t->render(ctx, opts);
      } catch (const hearth::chat::TemplateError& e) {
        error = e;
      }
      render_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (c.contains("expected_error")) {
        // jinja2's text is "TemplateError: MESSAGE".
        std::string want = c.at("expected_error").get<std::string>();
        if (const size_t colon = want.find(": "); colon != std::string::npos) want = want.substr(colon + 2);
        if (!error) {
          ADD_FAILURE() << case_name << ": rendered, but jinja2 failed with '" << want << "'";
          continue;
        }
        EXPECT_EQ(error->message(), want) << case_name << ": " << error->what();
        ++failed_as_expected;
        continue;
      }
      if (error) {
        ADD_FAILURE() << case_name << ": failed: " << error->what();
        continue;
      }
      const std::string want = c.at("expected").get<std::string>();
      if (got != want) {
        ADD_FAILURE() << case_name << ": " << first_difference(want, got);
        continue;
      }
      ++rendered;
    }
  }
  std::printf("chat templates: %d cases rendered byte-exact, %d failed as jinja2 did, %.2f ms in render()\n",
              rendered, failed_as_expected, render_seconds * 1e3);
  EXPECT_GT(rendered, 0);
  EXPECT_GT(failed_as_expected, 0);
  EXPECT_LT(render_seconds, 1.0);
}

}  // namespace

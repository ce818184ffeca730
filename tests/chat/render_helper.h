// Shared by the chat tests: render a template source with a JSON context the way the
// conformance cases do (Hugging Face setup, strftime_now fixed to 2026-07-26).
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat/template.h"

namespace chat_test {

/// One table-driven case: `tmpl` rendered with the JSON object `ctx` gives `want`.
struct Case {
  const char* name;
  const char* tmpl;
  const char* ctx;
  const char* want;
};

inline std::string render(const std::string& tmpl, const std::string& ctx = "{}") {
  const hearth::chat::Template t = hearth::chat::Template::parse(tmpl, "t");
  hearth::chat::RenderOptions opts;
  opts.now = hearth::chat::parse_date("2026-07-26");
  return t.render(hearth::chat::from_json(nlohmann::ordered_json::parse(ctx)), opts);
}

inline void run_cases(const Case* cases, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const Case& c = cases[i];
    try {
      EXPECT_EQ(render(c.tmpl, c.ctx), c.want) << "case " << c.name << ": " << c.tmpl;
    } catch (const hearth::Error& e) {
      ADD_FAILURE() << "case " << c.name << " failed: " << e.what();
    }
  }
}

/// The error a template gives (parse or render), or "" if it renders.
inline std::string error_of(const std::string& tmpl, const std::string& ctx = "{}") {
  try {
    render(tmpl, ctx);
  } catch (const hearth::chat::TemplateError& e) {
    return e.what();
  }
  return "";
}

}  // namespace chat_test

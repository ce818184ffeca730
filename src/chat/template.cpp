#include "chat/template.h"

#include <cstdio>

#include "chat/jinja_ast.h"
#include "chat/jinja_interp.h"

namespace hearth::chat {

Template Template::parse(std::string_view source, const std::string& name, const ParseOptions& options) {
  auto program = std::make_shared<detail::Program>();
  program->source = std::make_unique<detail::Source>(name, source);
  program->body = detail::parse(*program->source, detail::lex(*program->source, options));
  Template t;
  t.program_ = std::move(program);
  return t;
}

std::string Template::render(const Value& context, const RenderOptions& options) const {
  if (!context.is_dict())
    throw Error("the context of template '" + name() + "' must be a dict, not " + context.type_name());
  Interpreter in(*program_->source, options);
  return in.render(program_->body, context);
}

const std::string& Template::name() const { return program_->source->name; }

Value chat_context(const nlohmann::ordered_json& j) {
  if (!j.is_object()) throw Error("the template context must be a JSON object");
  Value ctx = Value::make_dict();
  for (const char* key : {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"})
    if (const auto it = j.find(key); it != j.end()) ctx.dict().set(Value(key), from_json(*it));
  if (const auto extra = j.find("extra"); extra != j.end()) {
    if (!extra->is_object()) throw Error("the 'extra' key of the template context must be a JSON object");
    for (const auto& [k, v] : extra->items()) ctx.dict().set(Value(k), from_json(v));
  }
  return ctx;
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::tm parse_date(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char sep = 0;
  int consumed = 0;
  const int n = std::sscanf(text.c_str(), "%4d-%2d-%2d%n%c%2d:%2d%n:%2d%n", &y, &mo, &d, &consumed, &sep, &h, &mi,
                            &consumed, &s, &consumed);
  const bool shape_ok = (n == 3 && static_cast<size_t>(consumed) == text.size()) ||
                        (n >= 6 && (sep == ' ' || sep == 'T') && static_cast<size_t>(consumed) == text.size());
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (!shape_ok || y < 1 || mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
      h > 23 || mi > 59 || s > 60 || h < 0 || mi < 0 || s < 0)
    throw Error("'" + text + "' is not a date of the form YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS]");
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  tm.tm_wday = static_cast<int>(((days % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
  tm.tm_yday = static_cast<int>(days - days_from_civil(y, 1, 1));
  tm.tm_isdst = -1;
  return tm;
}

}  // namespace hearth::chat

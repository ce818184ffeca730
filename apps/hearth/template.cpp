// hearth template (MODEL.gguf | TEMPLATE.jinja) --context CONTEXT.json [--date YYYY-MM-DD]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "chat/template.h"
#include "commands.h"
#include "common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hearth::app {
namespace {

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace

void register_template(CLI::App& app) {
  auto* sub = app.add_subcommand("template", "Render a chat template (a GGUF's tokenizer.chat_template or a "
                                             ".jinja file) with the variables of a JSON context");
  struct Opts {
    std::string source, context, date;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("source", o->source, "GGUF model (its tokenizer.chat_template) or Jinja template file")->required();
  sub->add_option("--context", o->context,
                  "JSON object with messages, tools, add_generation_prompt, bos_token, eos_token; the keys of "
                  "its 'extra' object (enable_thinking, ...) become variables too")
      ->required();
  sub->add_option("--date", o->date, "date strftime_now() formats, YYYY-MM-DD[ HH:MM[:SS]] (default: now)");
  add_command(app, sub, [o] {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(read_file(o->context));
    } catch (const nlohmann::json::exception& e) {
      throw Error(o->context + ": not valid JSON: " + e.what());
    }
    chat::Value ctx = chat::chat_context(j);
    std::string source, name = o->source;
    if (is_gguf(o->source)) {
      const gguf::File f = gguf::File::open(o->source);
      const gguf::Value* t = f.find("tokenizer.chat_template");
      if (t == nullptr || t->type() != gguf::ValueType::STRING)
        throw Error(o->source + " has no tokenizer.chat_template");
      source = t->str();
      name = o->source + ":tokenizer.chat_template";
      const bool has_bos = ctx.dict().find_str("bos_token") != nullptr;
      const bool has_eos = ctx.dict().find_str("eos_token") != nullptr;
      if (!has_bos || !has_eos) {
        // The defaults come from the vocabulary, as llama.cpp fills them in.
        const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_gguf(f);
        if (!has_bos && tok.bos()) ctx.dict().set(chat::Value("bos_token"), chat::Value(tok.token_text(*tok.bos())));
        if (!has_eos && tok.eos()) ctx.dict().set(chat::Value("eos_token"), chat::Value(tok.token_text(*tok.eos())));
      }
    } else {
      source = read_file(o->source);
    }
    chat::RenderOptions opts;
    if (!o->date.empty()) opts.now = chat::parse_date(o->date);
    const chat::Template t = chat::Template::parse(source, name);
    const std::string out = t.render(ctx, opts);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return 0;
  });
}

}  // namespace hearth::app

// hearth tokenize MODEL (TEXT | --file F) [--ids] [--no-bos] [--parse-special]
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hearth::app {

void register_tokenize(CLI::App& app) {
  auto* sub = app.add_subcommand("tokenize", "Show the tokens of a text");
  struct Opts {
    std::string model, text, file;
    bool ids = false, no_bos = false, parse_special = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("model", o->model, "GGUF model (or vocabulary-only) file")->required();
  auto* text = sub->add_option("text", o->text, "text to tokenize");
  auto* file = sub->add_option("--file", o->file, "read the text from this file");
  text->excludes(file);
  sub->add_flag("--ids", o->ids, "print only the ids, space-separated on one line");
  sub->add_flag("--no-bos", o->no_bos, "add no BOS/EOS tokens");
  sub->add_flag("--parse-special", o->parse_special, "turn special-token text (<|im_start|>) into its token");
  add_command(app, sub, [o, text, file] {
    if (text->count() == 0 && file->count() == 0) throw Error("give a TEXT or --file");
    const std::string input = file->count() ? read_file(o->file) : o->text;
    const gguf::File f = gguf::File::open(o->model);
    const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_gguf(f);
    const std::vector<int32_t> ids = tok.encode(input, !o->no_bos, o->parse_special);
    if (o->ids) {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    } else {
      for (int32_t id : ids) {
        std::string piece = tok.token_to_piece(id, true);
        std::string shown;
        for (char c : piece) {
          if (c == '\n') shown += "\\n";
          else if (c == '\t') shown += "\\t";
          else shown += c;
        }
        std::printf("%6d -> '%s'\n", id, shown.c_str());
      }
    }
    return 0;
  });
}

}  // namespace hearth::app

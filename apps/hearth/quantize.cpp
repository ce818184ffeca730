// hearth quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--tensor-type PATTERN=TYPE]... [--pure] [--threads N]:
// llama-quantize's file types and mixes (formats.md §4).
#include <unistd.h>

#include <cstdio>
#include <map>

#include "commands.h"
#include "common.h"
#include "quant/quantize_file.h"

namespace hearth::app {
namespace {

std::string file_type_list() {
  std::string s;
  for (const quant::FileTypeInfo& f : quant::file_types()) {
    if (quant::traits(f.default_type).from_float == nullptr) continue;
    s += s.empty() ? "" : ", ";
    s += f.name;
  }
  return s;
}

quant::GgmlType parse_type(const std::string& name, const char* option) {
  const auto t = quant::type_from_name(name);
  if (!t || quant::traits(*t).from_float == nullptr)
    throw Error(std::string(option) + ": hearth cannot quantize to type '" + name + "'");
  return *t;
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "Quantize a GGUF model with llama-quantize's mixes (Q4_K_M, Q8_0, ...)");
  struct Opts {
    std::string in, out, type;
    std::vector<std::string> tensor_types;
    std::string token_embd_type, output_type, imatrix;
    bool pure = false, leave_output = false, allow_requantize = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("input", o->in, "GGUF model to quantize (F32, F16 or BF16 weights)")->required();
  sub->add_option("output", o->out, "GGUF file to write")->required();
  sub->add_option("type", o->type, "file type: " + file_type_list())->required();
  sub->add_option("--imatrix", o->imatrix,
                  "importance matrix (GGUF or legacy .dat, from hearth imatrix / llama-imatrix): weighted quantizers");
  sub->add_option("--tensor-type", o->tensor_types, "PATTERN=TYPE: tensors whose name matches the regex get TYPE (first match wins; repeatable)");
  sub->add_option("--token-embedding-type", o->token_embd_type, "type of token_embd.weight");
  sub->add_option("--output-tensor-type", o->output_type, "type of output.weight");
  sub->add_flag("--pure", o->pure, "every quantized tensor gets the file type's default type (no mix rules)");
  sub->add_flag("--leave-output-tensor", o->leave_output, "keep output.weight unquantized");
  sub->add_flag("--allow-requantize", o->allow_requantize, "allow quantized input tensors to be requantized");
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  add_command(app, sub, [o] {
    const auto ftype = quant::file_type_from_name(o->type);
    if (!ftype) throw Error("unknown file type '" + o->type + "' (one of " + file_type_list() + ")");
    quant::QuantizeParams params;
    params.mix.ftype = *ftype;
    params.mix.pure = o->pure;
    params.mix.leave_output = o->leave_output;
    if (!o->token_embd_type.empty()) params.mix.token_embedding_type = parse_type(o->token_embd_type, "--token-embedding-type");
    if (!o->output_type.empty()) params.mix.output_tensor_type = parse_type(o->output_type, "--output-tensor-type");
    for (const std::string& t : o->tensor_types) params.mix.overrides.push_back(quant::TensorTypeOverride::parse(t));
    params.n_threads = o->threads;
    if (!o->imatrix.empty()) {
      params.imatrix = std::make_shared<const quant::Imatrix>(quant::Imatrix::read(o->imatrix));
      params.mix.has_imatrix = true;
      std::fprintf(stderr, "imatrix %s: %zu entries, %u chunks\n", o->imatrix.c_str(), params.imatrix->entries.size(),
                   params.imatrix->chunk_count);
    }
    params.allow_requantize = o->allow_requantize;

    const bool tty = isatty(fileno(stderr));
    const auto progress = [tty](size_t done, size_t total, const quant::TensorPlan& t) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / total);
      const std::string bar = std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.');
      if (tty) {
        std::fprintf(stderr, "\r[%s] %4zu/%zu %-40.40s %6s -> %-6s", bar.c_str(), done, total, t.name.c_str(),
                     quant::traits(t.from).name, quant::traits(t.to).name);
      } else {
        std::fprintf(stderr, "[%s] %4zu/%zu %s %s -> %s\n", bar.c_str(), done, total, t.name.c_str(),
                     quant::traits(t.from).name, quant::traits(t.to).name);
      }
    };
    const quant::QuantizeReport r = quant::quantize_file(o->in, o->out, params, progress);
    if (tty) std::fprintf(stderr, "\n");
    std::map<std::string, int> counts;
    for (const quant::TensorPlan& t : r.tensors) ++counts[quant::traits(t.to).name];
    std::string mix;
    for (const auto& [name, n] : counts) mix += (mix.empty() ? "" : ", ") + std::to_string(n) + " " + name;
    std::printf("wrote %s: %s, %s -> %s (%.2f bits per weight), %zu tensors (%s), in %.1f s\n", o->out.c_str(),
                quant::file_type_info(*ftype).name, format_bytes(r.bytes_in).c_str(), format_bytes(r.bytes_out).c_str(),
                r.bits_per_weight(), r.tensors.size(), mix.c_str(), r.seconds);
    return 0;
  });
}

}  // namespace hearth::app

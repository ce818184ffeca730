// hearth quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--tensor-type PATTERN=TYPE]... [--pure] [--threads N]:
// llama-quantize's file types and mixes (formats.md §4).
// hearth quantize IN.gguf OUT.gguf --dynamic BPW|MIX --imatrix FILE [...]: each tensor's type picked
// from its measured sensitivity under a bits-per-weight budget (quant/dynamic.h).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "commands.h"
#include "common.h"
#include "quant/dynamic.h"
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

// Progress line of a step over tensors (a bar that redraws on a terminal, else one line each).
void print_progress(bool tty, size_t done, size_t total, const std::string& name, const std::string& what) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / total);
  const std::string bar =
      std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), '.');
  if (tty) std::fprintf(stderr, "\r[%s] %4zu/%zu %-40.40s %-16s", bar.c_str(), done, total, name.c_str(), what.c_str());
  else std::fprintf(stderr, "[%s] %4zu/%zu %s %s\n", bar.c_str(), done, total, name.c_str(), what.c_str());
}

// The progress of quantize_file().
quant::QuantizeProgress tensor_progress(bool tty) {
  return [tty](size_t done, size_t total, const quant::TensorPlan& t) {
    const std::string what = std::string(quant::traits(t.from).name) + " -> " + quant::traits(t.to).name;
    print_progress(tty, done, total, t.name, what);
  };
}

// --dynamic's argument: bits per weight, or the name of a mix whose size is the budget.
struct DynamicBudget {
  double bpw = 0;                        // when a number was given
  std::optional<quant::FileType> mix;    // when a mix name was given
};

DynamicBudget parse_dynamic(const std::string& text) {
  DynamicBudget b;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size()) {
    if (!std::isfinite(v) || v <= 0) throw Error("--dynamic " + text + ": bits per weight must be a positive number");
    b.bpw = v;
    return b;
  }
  b.mix = quant::file_type_from_name(text);
  if (!b.mix || quant::traits(quant::file_type_info(*b.mix).default_type).from_float == nullptr)
    throw Error("--dynamic " + text +
                ": expected bits per weight (e.g. 4.5) or the name of a mix whose size to match (" + file_type_list() +
                ")");
  return b;
}

// `hearth quantize --dynamic`: measure, allocate, print the table, quantize.
int run_dynamic(const std::string& in_path, const std::string& out_path, quant::QuantizeParams params,
                const DynamicBudget& budget, quant::DynamicWeighting weighting, int64_t sample) {
  const bool tty = isatty(fileno(stderr));
  std::error_code ec;  // quantize_file() checks this too, but only after the measurement
  if (std::filesystem::equivalent(in_path, out_path, ec))
    throw Error("output file " + out_path + " is the input file; choose another name");
  const gguf::File in = gguf::File::open(in_path);
  quant::DynamicPlan plan = quant::dynamic_candidates(in, params);
  uint64_t budget_bytes = 0;
  if (budget.mix) {
    quant::QuantizeParams mix = params;
    mix.mix.ftype = *budget.mix;
    budget_bytes = quant::mix_bytes(in, mix, plan);
  } else {
    budget_bytes = static_cast<uint64_t>(std::floor(budget.bpw * static_cast<double>(plan.n_elements) / 8.0 + 1e-6));
  }
  const double want_bpw = 8.0 * static_cast<double>(budget_bytes) / static_cast<double>(plan.n_elements);
  // The range is known before the (slow) measurement: check it first.
  if (want_bpw < plan.min_bits_per_weight() - 1e-9 || want_bpw > plan.max_bits_per_weight() + 1e-9) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "--dynamic: %.4g bits per weight is out of reach for this model; its quantized tensors can take "
                  "%.4g to %.4g bits per weight",
                  want_bpw, plan.min_bits_per_weight(), plan.max_bits_per_weight());
    throw Error(buf);
  }
  const double t0 = now_seconds();
  quant::measure_sensitivity(in, params, plan, sample,
                             [tty](size_t done, size_t total, const quant::DynamicTensor& t) {
                               print_progress(tty, done, total, t.name, "sensitivity");
                             });
  if (tty) std::fprintf(stderr, "\n");
  quant::allocate_dynamic_bytes(plan, budget_bytes, weighting);
  const double t_measure = now_seconds() - t0;

  const std::vector<double> weights = quant::dynamic_weights(plan, weighting);
  std::printf("%-32s %-8s %6s %11s %9s\n", "tensor", "type", "bpw", "rel. error", "weight");
  for (size_t k = 0; k < plan.tensors.size(); ++k) {
    const quant::DynamicTensor& t = plan.tensors[k];
    const quant::GgmlType type = t.types[t.chosen];
    const double bpw = 8.0 * static_cast<double>(t.bytes[t.chosen]) / static_cast<double>(t.n_elements);
    char error[32] = "(fixed)";
    if (!t.fixed) std::snprintf(error, sizeof error, "%.3e", t.rel_error[t.chosen]);
    std::printf("%-32s %-8s %6.3f %11s %9.4f\n", t.name.c_str(), quant::traits(type).name, bpw, error, weights[k]);
  }
  std::printf("dynamic: %.4f bits per weight over %zu quantized tensors (%s parameters; budget %.4f%s%s), "
              "sensitivity measured in %.1f s\n",
              plan.bits_per_weight(), plan.tensors.size(), format_count(plan.n_elements).c_str(), want_bpw,
              budget.mix ? ", the size of " : "", budget.mix ? quant::file_type_info(*budget.mix).name : "", t_measure);

  params.tensor_types = plan.types();
  params.mix.ftype = plan.file_type();
  const quant::QuantizeReport r = quant::quantize_file(in_path, out_path, params, tensor_progress(tty));
  if (tty) std::fprintf(stderr, "\n");
  std::printf("wrote %s: dynamic (general.file_type %s), %s -> %s (%.2f bits per weight), %zu tensors, in %.1f s\n",
              out_path.c_str(), quant::file_type_info(params.mix.ftype).name, format_bytes(r.bytes_in).c_str(),
              format_bytes(r.bytes_out).c_str(), r.bits_per_weight(), r.tensors.size(), r.seconds);
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "Quantize a GGUF model with llama-quantize's mixes (Q4_K_M, Q8_0, ...)");
  struct Opts {
    std::string in, out, type;
    std::vector<std::string> tensor_types;
    std::string token_embd_type, output_type, imatrix, dynamic, weighting = "params";
    bool pure = false, leave_output = false, allow_requantize = false;
    int threads = 0;
    int64_t sample = quant::kDynamicSampleElements;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("input", o->in, "GGUF model to quantize (F32, F16 or BF16 weights)")->required();
  sub->add_option("output", o->out, "GGUF file to write")->required();
  sub->add_option("type", o->type, "file type: " + file_type_list() + " (not with --dynamic)");
  CLI::Option* dyn = sub->add_option("--dynamic", o->dynamic,
                  "BPW or MIX: pick each tensor's type from its imatrix-weighted quantization error, within BPW "
                  "bits per weight or the size of MIX (e.g. Q4_K_M); needs --imatrix");
  sub->add_option("--dynamic-weighting", o->weighting,
                  "how --dynamic weighs a tensor's relative error: params (its share of the parameters, twice for a "
                  "token_embd that is also the output; default) or tensor (all alike)")
      ->check(CLI::IsMember({"params", "tensor"}))
      ->needs(dyn);
  sub->add_option("--dynamic-sample", o->sample,
                  "with --dynamic: measure each tensor on at most N weights, rows evenly sampled (default " +
                      std::to_string(quant::kDynamicSampleElements) + ")")
      ->check(CLI::PositiveNumber)
      ->needs(dyn);
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
    const bool dynamic = !o->dynamic.empty();
    if (dynamic && !o->type.empty())
      throw Error("give a file type (" + o->type + ") or --dynamic " + o->dynamic + ", not both");
    if (!dynamic && o->type.empty()) throw Error("give a file type (" + file_type_list() + ") or --dynamic BPW");
    std::optional<quant::FileType> ftype = quant::FileType::Q4_K_M;  // --dynamic replaces it with its own
    DynamicBudget budget;
    if (dynamic) {
      budget = parse_dynamic(o->dynamic);
      if (o->imatrix.empty())
        throw Error("--dynamic needs an importance matrix (--imatrix FILE, made by hearth imatrix): the sensitivity "
                    "of each tensor is its quantization error weighted by it");
      if (o->pure) throw Error("--pure and --dynamic do not go together: --dynamic picks every tensor's type");
    } else {
      ftype = quant::file_type_from_name(o->type);
      if (!ftype) throw Error("unknown file type '" + o->type + "' (one of " + file_type_list() + ")");
    }
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
    if (dynamic)
      return run_dynamic(o->in, o->out, params, budget,
                         o->weighting == "tensor" ? quant::DynamicWeighting::kTensor
                                                  : quant::DynamicWeighting::kParameters,
                         o->sample);

    const bool tty = isatty(fileno(stderr));
    const quant::QuantizeProgress progress = tensor_progress(tty);
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

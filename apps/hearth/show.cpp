// hearth show MODEL [--json]: what a GGUF file holds, read from its header alone.
// hearth show --memory MODEL [-c N_CTX] [--ubatch-size N] [--parallel N]: what a context of it allocates.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "gguf/gguf.h"
#include "model/embedded.h"
#include "model/hparams.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "runtime/memory.h"

namespace hearth::app {
namespace {

struct TypeTotal {
  uint64_t count = 0;
  uint64_t bytes = 0;
  uint64_t elements = 0;
};

nlohmann::json value_to_json(const gguf::Value& v) {
  using gguf::ValueType;
  if (v.type() == ValueType::STRING) return v.str();
  if (v.is_array()) {
    // Large arrays (vocabularies) are summarised.
    if (v.count() > 64) return {{"type", v.type_string()}, {"count", v.count()}};
    nlohmann::json a = nlohmann::json::array();
    for (uint64_t i = 0; i < v.count(); ++i) {
      if (v.elem_type() == ValueType::STRING) a.push_back(v.strings()[i]);
      else if (v.elem_type() == ValueType::FLOAT32 || v.elem_type() == ValueType::FLOAT64) a.push_back(v.at<double>(i));
      else if (v.elem_type() == ValueType::BOOL) a.push_back(v.at<bool>(i));
      else if (v.elem_type() == ValueType::UINT64) a.push_back(v.at<uint64_t>(i));
      else a.push_back(v.at<int64_t>(i));
    }
    return a;
  }
  switch (v.type()) {
    case ValueType::FLOAT32: case ValueType::FLOAT64: return v.get<double>();
    case ValueType::BOOL: return v.get<bool>();
    case ValueType::UINT64: return v.get<uint64_t>();
    default: return v.get<int64_t>();
  }
}

std::string token_text(const gguf::File& f, std::optional<uint32_t> id) {
  if (!id) return "";
  const gguf::Value* toks = f.find("tokenizer.ggml.tokens");
  if (toks == nullptr || !toks->is_array() || toks->elem_type() != gguf::ValueType::STRING || *id >= toks->count())
    return "";
  return toks->strings()[*id];
}

int show_memory(const std::string& path, uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_seq_max,
                const CacheOptions& cache, bool json) {
  runtime::ContextParams cp;
  cache.apply(cp);
  const auto model = path.empty() ? model::Model::load_default() : model::Model::load(path);
  const runtime::MemoryPlan plan = runtime::plan_memory(*model, n_ctx, n_ubatch, n_seq_max, cp.type_k, cp.type_v);
  const uint64_t total = plan.weight_bytes + plan.kv_bytes + plan.state_bytes;
  // Weights the loader rewrote into the lane layout (kernels/gemm.h) in place: part of
  // weight_bytes, no extra memory.
  uint64_t repacked = 0;
  for (const gguf::TensorInfo& t : model->file().tensors())
    if (model->file().tensor_layout(t) != 0) repacked += t.nbytes;
  if (json) {
    nlohmann::json j;
    j["path"] = model->file().path();
    j["n_ctx"] = n_ctx;
    j["n_ubatch"] = n_ubatch;
    j["n_seq_max"] = n_seq_max;
    j["type_k"] = runtime::kv_cache_type_name(cp.type_k);
    j["type_v"] = runtime::kv_cache_type_name(cp.type_v);
    j["weights_bytes"] = plan.weight_bytes;
    j["other_weights_bytes"] = plan.other_weight_bytes;
    j["kv_cache_bytes"] = plan.kv_bytes;
    j["state_bytes"] = plan.state_bytes;
    j["repacked_bytes"] = repacked;
    j["total_bytes"] = total;
    nlohmann::json rows = nlohmann::json::array();
    for (const runtime::MemoryRow& r : plan.rows)
      rows.push_back({{"kind", r.kind}, {"n_layers", r.n_layers}, {"weights_bytes", r.weight_bytes},
                      {"kv_cells", r.kv_cells}, {"kv_cache_bytes", r.kv_bytes}, {"state_bytes", r.state_bytes}});
    j["layers"] = rows;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s: n_ctx %u, n_ubatch %u, n_seq_max %u (K %s, V %s)\n", model->file().path().c_str(), n_ctx, n_ubatch,
              n_seq_max, runtime::kv_cache_type_name(cp.type_k).c_str(),
              runtime::kv_cache_type_name(cp.type_v).c_str());
  std::printf("%-24s %6s %12s %10s %12s %12s\n", "layers", "count", "weights", "KV cells", "KV cache", "state");
  for (const runtime::MemoryRow& r : plan.rows)
    std::printf("%-24s %6u %12s %10u %12s %12s\n", r.kind.c_str(), r.n_layers, format_bytes(r.weight_bytes).c_str(),
                r.kv_cells, format_bytes(r.kv_bytes).c_str(), format_bytes(r.state_bytes).c_str());
  std::printf("%-24s %6s %12s\n", "embeddings, output", "", format_bytes(plan.other_weight_bytes).c_str());
  std::printf("%-24s %6s %12s %10s %12s %12s\n", "total", "", format_bytes(plan.weight_bytes).c_str(), "",
              format_bytes(plan.kv_bytes).c_str(), format_bytes(plan.state_bytes).c_str());
  std::printf("repacked at load (in place, no extra memory): %s (%llu bytes)\n", format_bytes(repacked).c_str(),
              static_cast<unsigned long long>(repacked));
  std::printf("weights + KV cache + state: %s (%llu bytes)\n", format_bytes(total).c_str(),
              static_cast<unsigned long long>(total));
  return 0;
}

}  // namespace

void register_show(CLI::App& app) {
  auto* sub = app.add_subcommand("show", "Show a model's architecture, size, tensor types and tokenizer");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("model", *path, "GGUF model file (default: the embedded hearth-kjv model)");
  sub->add_flag("--json", *json, "machine-readable output");
  auto memory = std::make_shared<bool>(false);
  auto n_ctx = std::make_shared<uint32_t>(4096);
  auto n_ubatch = std::make_shared<uint32_t>(512);
  auto n_seq = std::make_shared<uint32_t>(1);
  sub->add_flag("--memory", *memory, "bytes a context allocates: weights, KV cache and recurrent state per layer kind");
  sub->add_option("-c,--ctx-size", *n_ctx, "with --memory: context size n_ctx, tokens")->check(CLI::Range(1u, 1u << 30));
  sub->add_option("--ubatch-size", *n_ubatch, "with --memory: micro-batch size n_ubatch")->check(CLI::Range(1u, 1u << 20));
  sub->add_option("--parallel", *n_seq, "with --memory: sequences at once (n_seq_max)")->check(CLI::Range(1u, 64u));
  auto cache = std::make_shared<CacheOptions>();
  cache->add_to(sub, /*with_flash=*/false);
  add_command(app, sub, [path, json, memory, n_ctx, n_ubatch, n_seq, cache] {
    if (*memory) return show_memory(*path, *n_ctx, *n_ubatch, *n_seq, *cache, *json);
    const gguf::File f = path->empty() ? gguf::File::from_static(model::embedded_default_model().data(),
                                                                 model::embedded_default_model().size(),
                                                                 std::string(model::embedded_default_model_name()))
                                       : gguf::File::open(*path);
    std::map<std::string, TypeTotal> types;
    TypeTotal all;
    for (const gguf::TensorInfo& t : f.tensors()) {
      TypeTotal& tt = types[std::string(quant::type_name(t.type))];
      for (TypeTotal* x : {&tt, &all}) {
        ++x->count;
        x->bytes += t.nbytes;
        x->elements += static_cast<uint64_t>(t.n_elements());
      }
    }
    const std::string arch = f.get<std::string>("general.architecture").value_or("");
    std::optional<model::HParams> hp;
    std::string hp_error;
    try {
      hp = model::HParams::read(f);
    } catch (const Error& e) {
      hp_error = e.what();
    }
    const std::string tok_model = f.get<std::string>("tokenizer.ggml.model").value_or("");
    const std::string tok_pre = f.get<std::string>("tokenizer.ggml.pre").value_or("");
    const gguf::Value* toks = f.find("tokenizer.ggml.tokens");
    const uint64_t n_tokens = toks != nullptr && toks->is_array() ? toks->count() : 0;
    const auto bos = f.get<uint32_t>("tokenizer.ggml.bos_token_id");
    const auto eos = f.get<uint32_t>("tokenizer.ggml.eos_token_id");
    const auto tmpl = f.get<std::string>("tokenizer.chat_template");

    if (*json) {
      nlohmann::json j;
      j["path"] = f.path();
      j["gguf_version"] = f.version();
      j["file_bytes"] = f.file_size();
      j["architecture"] = arch;
      j["name"] = f.get<std::string>("general.name").value_or("");
      j["n_params"] = all.elements;
      j["n_tensors"] = all.count;
      j["weights_bytes"] = all.bytes;
      j["file_type"] = f.get<uint32_t>("general.file_type").has_value() ? nlohmann::json(*f.get<uint32_t>("general.file_type")) : nlohmann::json();
      nlohmann::json jt = nlohmann::json::object();
      for (const auto& [name, t] : types) jt[name] = {{"count", t.count}, {"bytes", t.bytes}, {"n_params", t.elements}};
      j["tensor_types"] = jt;
      if (hp) {
        j["context_length"] = hp->n_ctx_train;
        j["n_embd"] = hp->n_embd;
        j["n_layer"] = hp->n_layer;
        j["n_head"] = hp->n_head.empty() ? 0 : hp->n_head[0];
        j["n_head_kv"] = hp->n_head_kv.empty() ? 0 : hp->n_head_kv[0];
        j["head_dim"] = hp->head_dim_k;
        j["n_ff"] = hp->n_ff.empty() ? 0 : hp->n_ff[0];
        j["n_vocab"] = hp->n_vocab;
        j["rope_freq_base"] = hp->rope_freq_base;
      } else {
        j["hparams_error"] = hp_error;
      }
      j["tokenizer"] = {{"model", tok_model}, {"pre", tok_pre}, {"n_tokens", n_tokens}};
      if (bos) j["tokenizer"]["bos_token_id"] = *bos;
      if (eos) j["tokenizer"]["eos_token_id"] = *eos;
      j["chat_template"] = tmpl.has_value();
      nlohmann::json meta = nlohmann::json::object();
      for (const auto& [k, v] : f.metadata()) meta[k] = value_to_json(v);
      j["metadata"] = meta;
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }

    std::printf("file           %s (%s, GGUF v%u)\n", f.path().c_str(), format_bytes(f.file_size()).c_str(), f.version());
    std::printf("architecture   %s\n", arch.empty() ? "(none)" : arch.c_str());
    if (auto name = f.get<std::string>("general.name")) std::printf("name           %s\n", name->c_str());
    std::printf("parameters     %s (%llu)\n", format_count(all.elements).c_str(),
                static_cast<unsigned long long>(all.elements));
    if (hp) {
      std::printf("context length %u\n", hp->n_ctx_train);
      std::printf("shape          %u layers, n_embd %u, %u heads (%u KV) x %u, n_ff %u, vocab %u\n", hp->n_layer,
                  hp->n_embd, hp->n_head.empty() ? 0 : hp->n_head[0], hp->n_head_kv.empty() ? 0 : hp->n_head_kv[0],
                  hp->head_dim_k, hp->n_ff.empty() ? 0 : hp->n_ff[0], hp->n_vocab);
      std::printf("rope           base %g, %u dims%s\n", hp->rope_freq_base, hp->n_rot,
                  f.find_tensor("rope_freqs.weight") ? ", frequency factors" : "");
    } else {
      std::printf("hyper-params   %s\n", hp_error.c_str());
    }
    std::printf("tokenizer      %s", tok_model.empty() ? "(none)" : tok_model.c_str());
    if (!tok_pre.empty()) std::printf(", pre %s", tok_pre.c_str());
    std::printf(", %llu tokens", static_cast<unsigned long long>(n_tokens));
    if (bos) std::printf(", bos %u '%s'", *bos, token_text(f, bos).c_str());
    if (eos) std::printf(", eos %u '%s'", *eos, token_text(f, eos).c_str());
    std::printf("\n");
    std::printf("chat template  %s\n", tmpl ? ("yes (" + std::to_string(tmpl->size()) + " bytes)").c_str() : "no");
    std::printf("tensors        %llu, %s\n", static_cast<unsigned long long>(all.count), format_bytes(all.bytes).c_str());
    for (const auto& [name, t] : types) {
      std::printf("  %-8s %5llu tensors  %12s  %12s params  %6.2f bits/weight\n", name.c_str(),
                  static_cast<unsigned long long>(t.count), format_bytes(t.bytes).c_str(), format_count(t.elements).c_str(),
                  t.elements ? 8.0 * static_cast<double>(t.bytes) / static_cast<double>(t.elements) : 0.0);
    }
    return 0;
  });
}

}  // namespace hearth::app

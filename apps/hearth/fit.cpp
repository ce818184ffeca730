// hearth fit MODEL|FILE|URL [--quant T] [-c N_CTX] [--cache-type-k T] [--cache-type-v T] [--parallel N]
//            [--hw NAME[,NAME..] | --vram GB --ram GB] [--json]
// hearth fit --table [--quant T[,T..]] [-c N_CTX] [--hw NAME[,NAME..]]
//
// Will a model run on this hardware, with which context, how fast: the memory a context needs
// (weights, KV cache per layer kind, recurrent state, compute buffers), whether it fits, the
// largest context that fits, the layers per device when the GPU alone is too small, and the
// generation speed memory bandwidth allows. From the GGUF header only (src/plan).
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "commands.h"
#include "common.h"
#include "plan/catalogue.h"
#include "plan/header.h"
#include "plan/plan.h"
#include "runtime/bandwidth.h"
#include "runtime/kv_cache.h"

namespace hearth::app {
namespace {

using json = nlohmann::ordered_json;

struct FitOptions {
  std::string model;
  std::string quant;
  uint32_t n_ctx = 0;  // 0: min(8192, n_ctx_train)
  uint32_t n_ubatch = 512;
  uint32_t n_seq = 1;
  std::string hw;
  double vram_gb = -1, ram_gb = -1, vram_bw = 0, ram_bw = 0;
  bool json = false, table = false;
  CacheOptions cache;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

quant::FileType parse_quant(const std::string& name) {
  const auto ft = quant::file_type_from_name(name);
  if (!ft) {
    std::string names;
    for (const quant::FileTypeInfo& t : quant::file_types()) names += (names.empty() ? "" : ", ") + std::string(t.name);
    throw Error("--quant: unknown file type '" + name + "' (known: " + names + ")");
  }
  return *ft;
}

plan::Device device_of(const plan::Hardware& h) { return {h.name, h.memory_bytes, h.bandwidth_gb_s}; }

uint64_t gb_to_bytes(double gb, const char* flag) {
  if (!(gb > 0) || !std::isfinite(gb)) throw Error(std::string(flag) + " must be a positive number of GB (GiB)");
  return static_cast<uint64_t>(gb * static_cast<double>(uint64_t{1} << 30));
}

double ram_bandwidth() {
  const auto r = runtime::measure_read_bandwidth(uint64_t{256} << 20,
                                                 {static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))}, 2);
  return r.front().gb_per_s;
}

std::vector<plan::Device> devices_of(const FitOptions& o) {
  std::vector<plan::Device> out;
  if (!o.hw.empty()) {
    if (o.vram_gb >= 0 || o.ram_gb >= 0) throw Error("give either --hw or --vram/--ram, not both");
    for (const std::string& name : split_list(o.hw)) out.push_back(device_of(plan::find_hardware(name)));
    if (out.empty()) throw Error("--hw: no hardware named");
    return out;
  }
  if (o.vram_gb >= 0) out.push_back({"gpu", gb_to_bytes(o.vram_gb, "--vram"), o.vram_bw});
  if (o.ram_gb >= 0) out.push_back({"ram", gb_to_bytes(o.ram_gb, "--ram"), o.ram_bw > 0 ? o.ram_bw : ram_bandwidth()});
  if (out.empty()) out.push_back({"this machine (available)", plan::system_memory_bytes(), ram_bandwidth()});
  return out;
}

std::string gib(uint64_t b) { return plan::format_gib(b); }

std::string tg_text(double tps) {
  if (!(tps > 0)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, tps >= 100 ? "%.0f t/s" : "%.1f t/s", tps);
  return buf;
}

int fit_model(const FitOptions& o) {
  std::optional<quant::FileType> ft;
  if (!o.quant.empty()) ft = parse_quant(o.quant);
  const plan::ModelInfo m = plan::open_model(o.model, ft);
  plan::PlanParams p;
  runtime::ContextParams cp;
  o.cache.apply(cp);
  p.type_k = cp.type_k;
  p.type_v = cp.type_v;
  p.n_ubatch = o.n_ubatch;
  p.n_seq_max = o.n_seq;
  p.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min<uint32_t>(8192, m.hp.n_ctx_train > 0 ? m.hp.n_ctx_train : 8192);
  const plan::Plan plan = plan::make_plan(m, p);
  const std::vector<plan::Device> devices = devices_of(o);
  const plan::Placement placed = plan::place(plan, devices);
  const uint32_t limit = std::max(m.hp.n_ctx_train, p.n_ctx);
  const uint32_t max_ctx = plan::max_context(m, p, devices, limit);
  const std::string quant_name = ft ? quant::file_type_info(*ft).name : "";

  if (o.json) {
    json j;
    j["model"] = m.name;
    j["arch"] = m.hp.arch;
    if (ft) j["quant"] = quant_name;
    j["n_params"] = m.n_params();
    j["n_active_params"] = m.n_active_params();
    j["n_ctx"] = p.n_ctx;
    j["n_ctx_train"] = m.hp.n_ctx_train;
    j["n_ubatch"] = p.n_ubatch;
    j["n_seq_max"] = p.n_seq_max;
    j["cache_type_k"] = runtime::kv_cache_type_name(p.type_k);
    j["cache_type_v"] = runtime::kv_cache_type_name(p.type_v);
    j["weights_bytes"] = plan.weights_bytes();
    j["kv_cache_bytes"] = plan.kv_bytes();
    j["state_bytes"] = plan.state_bytes();
    j["compute_bytes"] = plan.compute_bytes;
    j["runtime_bytes"] = plan.runtime_bytes;
    j["repacked_bytes"] = plan.repacked_bytes;
    j["total_bytes"] = plan.total_bytes();
    j["layers"] = json::array();
    for (const runtime::MemoryRow& r : plan.memory.rows)
      j["layers"].push_back({{"kind", r.kind}, {"n_layers", r.n_layers}, {"weight_bytes", r.weight_bytes},
                             {"kv_cells", r.kv_cells}, {"kv_bytes", r.kv_bytes}, {"state_bytes", r.state_bytes}});
    j["other_weight_bytes"] = plan.memory.other_weight_bytes;
    j["devices"] = json::array();
    for (size_t i = 0; i < placed.parts.size(); ++i) {
      const auto& part = placed.parts[i];
      j["devices"].push_back({{"name", part.device}, {"memory_bytes", part.capacity_bytes},
                              {"bandwidth_gb_s", devices[i].bandwidth_gb_s}, {"first_layer", part.first_layer},
                              {"n_layers", part.n_layers}, {"bytes", part.bytes}, {"read_bytes", part.read_bytes},
                              {"fits", part.bytes <= part.capacity_bytes}});
    }
    j["fits"] = placed.fits;
    j["max_context"] = max_ctx;
    j["read_bytes_per_token"] = plan.read_bytes_per_token();
    j["tg_tokens_per_s"] = placed.tg_tokens_per_s;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  std::printf("model      %s (%s%s; %s, %u layers, %s params, %s active per token)\n", m.name.c_str(),
              ft ? quant_name.c_str() : "file", "", m.hp.arch.c_str(), m.hp.n_layer, format_count(m.n_params()).c_str(),
              format_count(m.n_active_params()).c_str());
  std::printf("context    n_ctx %u (trained %u), n_ubatch %u, %u sequence(s), K %s, V %s\n\n", p.n_ctx,
              m.hp.n_ctx_train, p.n_ubatch, p.n_seq_max, runtime::kv_cache_type_name(p.type_k).c_str(),
              runtime::kv_cache_type_name(p.type_v).c_str());
  std::printf("%-28s %7s %9s %12s %12s %12s\n", "layer kind", "layers", "KV cells", "weights", "KV cache", "state");
  for (const runtime::MemoryRow& r : plan.memory.rows)
    std::printf("%-28s %7u %9u %12s %12s %12s\n", r.kind.c_str(), r.n_layers, r.kv_cells, gib(r.weight_bytes).c_str(),
                gib(r.kv_bytes).c_str(), gib(r.state_bytes).c_str());
  std::printf("%-28s %7s %9s %12s\n", "embeddings, output, norms", "", "", gib(plan.memory.other_weight_bytes).c_str());
  std::printf("\nweights           %12s\n", gib(plan.weights_bytes()).c_str());
  std::printf("KV cache          %12s\n", gib(plan.kv_bytes()).c_str());
  std::printf("recurrent state   %12s\n", gib(plan.state_bytes()).c_str());
  std::printf("compute buffers   %12s   (estimate for micro-batches of %u tokens)\n", gib(plan.compute_bytes).c_str(),
              std::min(p.n_ubatch, p.n_ctx));
  std::printf("program, tokenizer %11s\n", gib(plan.runtime_bytes).c_str());
  std::printf("repacked weights  %12s   (weights are repacked in place: no extra memory)\n", gib(plan.repacked_bytes).c_str());
  std::printf("total             %12s\n\n", gib(plan.total_bytes()).c_str());
  std::printf("%-26s %11s %9s %12s %6s %13s\n", "device", "memory", "layers", "bytes", "fits", "read/token");
  for (const auto& part : placed.parts) {
    const std::string layers = part.n_layers == 0 ? "-"
                               : std::to_string(part.first_layer) + "-" +
                                     std::to_string(part.first_layer + part.n_layers - 1);
    std::printf("%-26s %11s %9s %12s %6s %13s\n", part.device.c_str(), gib(part.capacity_bytes).c_str(),
                layers.c_str(), gib(part.bytes).c_str(), part.bytes <= part.capacity_bytes ? "yes" : "NO",
                gib(part.read_bytes).c_str());
  }
  std::printf("\nfits: %s", placed.fits ? "yes" : "no");
  if (placed.parts.size() > 1 && placed.fits) std::printf(" (%u of %u layers on %s)", placed.parts[0].n_layers,
                                                         m.hp.n_layer, placed.parts[0].device.c_str());
  std::printf("\nlargest context that fits: %u%s\n", max_ctx,
              max_ctx == limit ? " (the trained context)" : max_ctx == 0 ? " (the model does not fit)" : "");
  std::printf("expected generation speed: %s (memory-bound: %s read per token at %d tokens of context)\n",
              tg_text(placed.tg_tokens_per_s).c_str(), gib(plan.read_bytes_per_token()).c_str(), p.n_ctx);
  return 0;
}

int fit_table(const FitOptions& o) {
  std::vector<quant::FileType> quants;
  for (const std::string& q : split_list(o.quant.empty() ? "Q4_K_M" : o.quant)) quants.push_back(parse_quant(q));
  std::vector<plan::Hardware> hw;
  const std::string hw_list = o.hw.empty() ? "rtx3070,rtx4090,rtx5090,rtx-pro-6000,h100,h200,m4-16gb,m4-pro-64gb,"
                                             "m4-max-128gb,m3-ultra-512gb,pi5-8gb,ddr5-2ch-64gb"
                                           : o.hw;
  for (const std::string& name : split_list(hw_list)) hw.push_back(plan::find_hardware(name));
  const uint32_t n_ctx = o.n_ctx > 0 ? o.n_ctx : 8192;
  runtime::ContextParams cp;
  o.cache.apply(cp);
  std::printf("Context %u tokens (capped at the trained context), K %s, V %s; cells: fits on the device alone, "
              "with the memory-bound generation speed.\n\n",
              n_ctx, runtime::kv_cache_type_name(cp.type_k).c_str(), runtime::kv_cache_type_name(cp.type_v).c_str());
  std::printf("| model | quant | params (active) | weights | KV + state | total |");
  for (const plan::Hardware& h : hw) std::printf(" %s |", h.name.c_str());
  std::printf("\n|---|---|---|---|---|---|");
  for (size_t i = 0; i < hw.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const plan::CatalogueModel& cm : plan::catalogue_models()) {
    for (quant::FileType ft : quants) {
      const plan::ModelInfo m = plan::ModelInfo::from_header(plan::catalogue_header(cm, ft), cm.name);
      plan::PlanParams p;
      p.n_ctx = std::min(n_ctx, m.hp.n_ctx_train);
      p.n_ubatch = o.n_ubatch;
      p.n_seq_max = o.n_seq;
      p.type_k = cp.type_k;
      p.type_v = cp.type_v;
      const plan::Plan plan = plan::make_plan(m, p);
      std::printf("| %s | %s | %s (%s) | %s | %s | %s |", cm.name.c_str(), quant::file_type_info(ft).name,
                  format_count(m.n_params()).c_str(), format_count(m.n_active_params()).c_str(),
                  gib(plan.weights_bytes()).c_str(), gib(plan.kv_bytes() + plan.state_bytes()).c_str(),
                  gib(plan.total_bytes()).c_str());
      for (const plan::Hardware& h : hw) {
        const plan::Placement pl = plan::place(plan, {device_of(h)});
        std::printf(" %s |", pl.fits ? tg_text(pl.tg_tokens_per_s).c_str() : "-");
      }
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

void register_fit(CLI::App& app) {
  auto* sub = app.add_subcommand("fit", "Will a model fit this hardware, at which context, how fast (from its header)");
  auto o = std::make_shared<FitOptions>();
  sub->add_option("model", o->model, "catalogue model name (hearth fit --table lists them), GGUF file or http(s) URL");
  sub->add_option("--quant", o->quant, "catalogue models: file type (Q4_K_M, Q8_0, F16, ...; --table: a list)");
  sub->add_option("-c,--ctx-size", o->n_ctx, "context size n_ctx, tokens (default: 8192 or the trained context)")
      ->check(CLI::Range(1u, 1u << 30));
  sub->add_option("--ubatch-size", o->n_ubatch, "micro-batch size n_ubatch")->check(CLI::Range(1u, 1u << 20));
  sub->add_option("--parallel", o->n_seq, "sequences at once (n_seq_max)")->check(CLI::Range(1u, 64u));
  sub->add_option("--hw", o->hw, "devices, GPU first, e.g. rtx4090,ddr5-2ch-64gb (this: this machine)");
  sub->add_option("--vram", o->vram_gb, "GPU memory, GiB (instead of --hw)");
  sub->add_option("--ram", o->ram_gb, "system memory for the layers that do not fit the GPU, GiB");
  sub->add_option("--vram-bandwidth", o->vram_bw, "with --vram: GPU memory bandwidth, GB/s (for the speed estimate)");
  sub->add_option("--ram-bandwidth", o->ram_bw, "with --ram: memory bandwidth, GB/s (default: measured here)");
  sub->add_flag("--json", o->json, "machine-readable output");
  sub->add_flag("--table", o->table, "the catalogue's model x hardware table (markdown)");
  o->cache.add_to(sub, false);
  add_command(app, sub, [o] {
    if (o->table) return fit_table(*o);
    if (o->model.empty()) throw Error("hearth fit: name a model (catalogue name, GGUF file or URL), or give --table");
    return fit_model(*o);
  });
}

}  // namespace hearth::app

#include "plan/plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "hearth/error.h"
#include "model/kv_layout.h"
#include "runtime/kv_cache.h"

namespace hearth::plan {
namespace {

/// Layer index of a tensor named blk.N.*, or -1.
int64_t block_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  char* end = nullptr;
  const long n = std::strtol(name.c_str() + 4, &end, 10);
  return end != name.c_str() + 4 && *end == '.' ? n : -1;
}

/// Whether a tensor is a stack of expert matrices {n_in, n_out, n_expert} (llama.cpp's *_exps).
bool is_expert_stack(const gguf::TensorInfo& t, uint32_t n_expert) {
  return n_expert > 0 && t.n_dims == 3 && t.name.find("_exps.") != std::string::npos &&
         static_cast<uint64_t>(t.ne[2]) == n_expert;
}

/// Bytes of `t` one token reads: n_used of the n_expert slices of an expert stack, else all.
uint64_t active_bytes(const gguf::TensorInfo& t, const model::HParams& hp) {
  if (!is_expert_stack(t, hp.n_expert)) return t.nbytes;
  return t.nbytes / hp.n_expert * hp.n_expert_used;
}

/// The role of a per-layer tensor: its name after "blk.N.", a shared expert's (_shexp) as its
/// dense twin's (the architectures reuse the dense FFN's scratch slots for it).
std::string role_of(const std::string& name) {
  const size_t dot = name.find('.', 4);
  std::string role = dot == std::string::npos ? name : name.substr(dot + 1);
  if (const size_t at = role.find("_shexp"); at != std::string::npos) role.erase(at, 6);
  return role;
}

}  // namespace

ModelInfo ModelInfo::from_header(gguf::File file, std::string name) {
  ModelInfo m{std::move(file), {}, {}, std::move(name)};
  m.hp = model::HParams::read(m.file);
  m.specs = model::kv_layer_specs(m.hp, m.file);
  if (m.name.empty()) m.name = m.file.path();
  return m;
}

uint64_t ModelInfo::n_params() const {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : file.tensors()) n += static_cast<uint64_t>(t.n_elements());
  return n;
}

uint64_t ModelInfo::n_active_params() const {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    const uint64_t e = static_cast<uint64_t>(t.n_elements());
    n += is_expert_stack(t, hp.n_expert) ? e / hp.n_expert * hp.n_expert_used : e;
  }
  return n;
}

uint64_t Plan::total_bytes() const {
  return memory.weight_bytes + memory.kv_bytes + memory.state_bytes + compute_bytes + runtime_bytes + repacked_bytes;
}

uint64_t Plan::read_bytes_per_token() const {
  uint64_t n = other_read_bytes;
  for (uint64_t b : layer_read_bytes) n += b;
  return n;
}

// The estimate follows how the architectures use model::Scratch (compute.h): one [n][width]
// float buffer per slot, each slot holding the output of one kind of matrix. Its width is taken
// from the tensor table: for each per-layer matrix role (attn_q.weight, ffn_up_exps.weight, ...)
// the widest output over the layers (expert stacks: times n_expert_used, the rows routed to the
// experts of a micro-batch), plus three [n][n_embd] residual/norm/output buffers. The matmul
// quantizes its input rows (kernels/gemm.h: a Q8_K row of ~1.14 bytes per value and its tiled
// copy, 448 bytes per 256 values) and each thread unpacks 16 weight rows (384 bytes per 256
// values); MoE expert products do the same per thread for up to n rows. The logits of one output
// row are kept. Measured against runtime::Context::compute_bytes in tests/plan (docs/fit.md).
uint64_t estimate_compute_bytes(const ModelInfo& m, uint32_t n_rows, int n_threads) {
  std::map<std::string, uint64_t> width;  // role -> widest output, floats per token
  uint64_t max_in = m.hp.n_embd, max_in_exp = 0;
  for (const gguf::TensorInfo& t : m.file.tensors()) {
    if (t.n_dims < 2) continue;
    max_in = std::max<uint64_t>(max_in, static_cast<uint64_t>(t.ne[0]));
    const int64_t il = block_of(t.name);
    if (il < 0) continue;
    uint64_t w = static_cast<uint64_t>(t.ne[1]);
    if (is_expert_stack(t, m.hp.n_expert)) {
      w *= m.hp.n_expert_used;
      max_in_exp = std::max<uint64_t>(max_in_exp, static_cast<uint64_t>(t.ne[0]));
    }
    uint64_t& slot = width[role_of(t.name)];
    slot = std::max(slot, w);
  }
  uint64_t floats = 3 * uint64_t{m.hp.n_embd};
  for (const auto& [role, w] : width) floats += w;
  const uint64_t n = n_rows;
  const uint64_t threads = static_cast<uint64_t>(n_threads > 0 ? n_threads : std::max(1u, std::thread::hardware_concurrency()));
  auto chunks = [](uint64_t n_in) { return (n_in + 255) / 256; };
  auto act_row = [&](uint64_t n_in) { return chunks(n_in) * (292 + 448); };  // Q8_K row + tiled copy
  // A single row goes through the gemv kernels, which need no weight tiles.
  const uint64_t tiles = n > 1 ? threads * 384 * 16 : 0;
  uint64_t bytes = 4 * n * floats + n * act_row(max_in) + tiles * chunks(max_in);
  if (max_in_exp > 0) {
    bytes += 4 * n * m.hp.n_expert_used * m.hp.n_embd;  // the gathered expert inputs
    bytes += threads * n * act_row(max_in_exp) + tiles * chunks(max_in_exp);
    bytes += n * m.hp.n_expert_used * 16 + 4 * uint64_t{m.hp.n_expert};  // routing: ids, weights, order
  }
  return bytes + 4 * uint64_t{m.hp.n_vocab};
}

Plan make_plan(const ModelInfo& m, const PlanParams& p) {
  Plan plan;
  plan.params = p;
  plan.memory = runtime::plan_memory(m.file, m.hp, m.specs, p.n_ctx, p.n_ubatch, p.n_seq_max, p.type_k, p.type_v);
  plan.compute_bytes = estimate_compute_bytes(m, std::min(p.n_ubatch, p.n_ctx), p.n_threads);
  plan.runtime_bytes = (uint64_t{12} << 20) + m.file.data_offset() + 160 * uint64_t{m.hp.n_vocab};
  const size_t n_layer = m.specs.size();
  const std::vector<uint32_t> cells = runtime::KvCache::layer_cells(m.specs, p.n_ctx, p.n_ubatch, p.n_seq_max);
  plan.layer_bytes.assign(n_layer, 0);
  plan.layer_read_bytes.assign(n_layer, 0);
  for (size_t il = 0; il < n_layer; ++il) {
    const model::KvLayerSpec& s = m.specs[il];
    const uint64_t kv = runtime::KvCache::layer_size_bytes(s, cells[il], p.type_k, p.type_v);
    const uint64_t state = uint64_t{p.n_seq_max} * (s.n_embd_r + s.n_embd_s) * sizeof(float);
    // A token attends to the whole context on a full layer, to its window on a windowed one.
    uint32_t seen = p.n_ctx;
    if (s.window.kind != model::AttnWindow::Kind::kFull) seen = std::min<uint32_t>(seen, s.window.size);
    plan.layer_bytes[il] = kv + state;
    plan.layer_read_bytes[il] = runtime::KvCache::layer_size_bytes(s, seen, p.type_k, p.type_v) + state / p.n_seq_max;
  }
  const gguf::TensorInfo* output = m.file.find_tensor("output.weight");
  for (const gguf::TensorInfo& t : m.file.tensors()) {
    const int64_t il = block_of(t.name);
    if (il >= 0 && static_cast<size_t>(il) < n_layer) {
      plan.layer_bytes[static_cast<size_t>(il)] += t.nbytes;
      plan.layer_read_bytes[static_cast<size_t>(il)] += active_bytes(t, m.hp);
      continue;
    }
    plan.other_bytes += t.nbytes;
    // Embedding tables are gathered one row per token, unless token_embd is also the output head.
    const bool embedding = t.name.find("token_embd") != std::string::npos && t.n_dims == 2;
    if (embedding && !(t.name == "token_embd.weight" && output == nullptr)) {
      plan.other_read_bytes += t.nbytes / static_cast<uint64_t>(std::max<int64_t>(1, t.ne[1]));
    } else {
      plan.other_read_bytes += t.nbytes;
    }
  }
  return plan;
}

namespace {

template <class Fits>
uint32_t largest(uint32_t limit, Fits fits) {
  if (limit == 0 || !fits(1)) return 0;
  if (fits(limit)) return limit;
  uint32_t lo = 1, hi = limit;  // fits(lo), !fits(hi)
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace

uint32_t max_context(const ModelInfo& m, const PlanParams& p, uint64_t budget_bytes, uint32_t limit) {
  PlanParams q = p;
  return largest(limit, [&](uint32_t n_ctx) {
    q.n_ctx = n_ctx;
    return make_plan(m, q).total_bytes() <= budget_bytes;
  });
}

uint32_t max_context(const ModelInfo& m, const PlanParams& p, const std::vector<Device>& devices, uint32_t limit) {
  PlanParams q = p;
  return largest(limit, [&](uint32_t n_ctx) {
    q.n_ctx = n_ctx;
    return place(make_plan(m, q), devices).fits;
  });
}

Placement place(const Plan& plan, const std::vector<Device>& devices) {
  if (devices.empty()) throw Error("no device to place the model on");
  Placement out;
  const size_t n_layer = plan.layer_bytes.size();
  auto read_seconds = [](const Placement::Part& part, const Device& d) {
    return d.bandwidth_gb_s > 0 ? static_cast<double>(part.read_bytes) / (d.bandwidth_gb_s * 1e9) : 0.0;
  };
  uint64_t all_read = plan.read_bytes_per_token();
  if (devices.size() == 1 || plan.total_bytes() <= devices[0].memory_bytes) {
    Placement::Part part{devices[0].name, 0, static_cast<uint32_t>(n_layer), plan.total_bytes(),
                         devices[0].memory_bytes, all_read, 0};
    part.seconds_per_token = read_seconds(part, devices[0]);
    out.parts.push_back(part);
  } else {
    size_t il = 0;
    for (size_t d = 0; d < devices.size(); ++d) {
      const bool last = d + 1 == devices.size();
      Placement::Part part{devices[d].name, static_cast<uint32_t>(il), 0, plan.compute_bytes, devices[d].memory_bytes,
                           0, 0};
      if (last) {
        part.bytes += plan.other_bytes + plan.runtime_bytes;
        part.read_bytes += plan.other_read_bytes;
      }
      while (il < n_layer && (last || part.bytes + plan.layer_bytes[il] <= devices[d].memory_bytes)) {
        part.bytes += plan.layer_bytes[il];
        part.read_bytes += plan.layer_read_bytes[il];
        ++part.n_layers;
        ++il;
      }
      part.seconds_per_token = read_seconds(part, devices[d]);
      out.parts.push_back(part);
    }
  }
  out.fits = true;
  double seconds = 0;
  for (const Placement::Part& part : out.parts) {
    out.fits = out.fits && part.bytes <= part.capacity_bytes;
    seconds += part.seconds_per_token;
  }
  out.tg_tokens_per_s = seconds > 0 ? 1.0 / seconds : 0.0;
  return out;
}

uint64_t system_memory_bytes(bool total) {
  std::ifstream in("/proc/meminfo");
  if (!in) throw Error("cannot read /proc/meminfo to learn this machine's memory");
  const std::string want = total ? "MemTotal:" : "MemAvailable:";
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == want) return kib * 1024;
  }
  throw Error("/proc/meminfo has no " + want + " line");
}

std::string format_gib(uint64_t bytes) {
  char buf[64];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / static_cast<double>(uint64_t{1} << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / static_cast<double>(uint64_t{1} << 20));
  }
  return buf;
}

namespace {

std::string breakdown(const Plan& plan) {
  return format_gib(plan.weights_bytes()) + " weights + " + format_gib(plan.kv_bytes()) + " KV cache + " +
         format_gib(plan.state_bytes()) + " recurrent state + " + format_gib(plan.compute_bytes) + " compute buffers + " +
         format_gib(plan.runtime_bytes) + " program and tokenizer";
}

}  // namespace

uint32_t default_context(const ModelInfo& m, const PlanParams& p, uint64_t budget_bytes, uint32_t preferred) {
  const uint32_t limit = std::max<uint32_t>(1, std::min(m.hp.n_ctx_train > 0 ? m.hp.n_ctx_train : preferred, preferred));
  const uint32_t n = max_context(m, p, budget_bytes, limit);
  if (n == 0) {
    PlanParams one = p;
    one.n_ctx = 1;
    const Plan plan = make_plan(m, one);
    throw Error(m.name + " does not fit in " + format_gib(budget_bytes) + " of free memory even with a context of 1: " +
                breakdown(plan) + " = " + format_gib(plan.total_bytes()));
  }
  return n;
}

void check_context(const ModelInfo& m, const PlanParams& p, uint64_t budget_bytes) {
  const Plan plan = make_plan(m, p);
  if (plan.total_bytes() <= budget_bytes) return;
  const uint32_t best = max_context(m, p, budget_bytes, p.n_ctx);
  throw Error("a context of " + std::to_string(p.n_ctx) + " tokens needs " + format_gib(plan.total_bytes()) + " (" +
              breakdown(plan) + ") but " + format_gib(budget_bytes) + " of memory is free; " +
              (best > 0 ? "the largest context that fits is -c " + std::to_string(best)
                        : std::string("the model does not fit even with a context of 1")));
}

}  // namespace hearth::plan

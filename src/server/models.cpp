#include "server/models.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "chat/formats.h"
#include "kernels/threadpool.h"
#include "model/embedded.h"
#include "plan/plan.h"
#include "quant/mix.h"
#include "quant/types.h"
#include "runtime/context.h"
#include "server/util.h"

namespace hearth::server {

using json = nlohmann::ordered_json;
using Clock = std::chrono::system_clock;

std::shared_ptr<const sample::GrammarVocab> LoadedModel::grammar_vocab() const {
  std::lock_guard<std::mutex> lock(vocab_mutex_);
  if (!vocab_) vocab_ = sample::GrammarVocab::from_tokenizer(model->tokenizer());
  return vocab_;
}

chat::ChatTemplate model_chat_template(const model::Model& model, bool& builtin) {
  const tokenizer::Tokenizer& tok = model.tokenizer();
  builtin = false;
  try {
    return chat::ChatTemplate::from_gguf(model.file(), tok);
  } catch (const chat::NoChatTemplateError&) {
    builtin = true;
    const std::string bos = tok.bos() ? tok.token_text(*tok.bos()) : "";
    const std::string eos = tok.eos() ? tok.token_text(*tok.eos()) : "";
    return chat::ChatTemplate(chat::kChatMlTemplate, "built-in ChatML template", bos, eos, chat::Family::Generic);
  }
}

// The --chat-template-file template with the vocabulary's BOS/EOS texts (its family detected from
// the source). Throws TemplateError for a template that does not parse.
chat::ChatTemplate override_template(const model::Model& model, const std::string& source) {
  const tokenizer::Tokenizer& tok = model.tokenizer();
  const std::string bos = tok.bos() ? tok.token_text(*tok.bos()) : "";
  const std::string eos = tok.eos() ? tok.token_text(*tok.eos()) : "";
  return chat::ChatTemplate(source, "--chat-template-file", bos, eos);
}

uint32_t planned_context(const gguf::File& file, const std::string& name, const EngineParams& ep, bool automatic) {
  plan::PlanParams pp;
  pp.n_ctx = ep.n_ctx * ep.n_parallel;
  pp.n_ubatch = ep.n_ubatch;
  pp.n_seq_max = std::min<uint32_t>(ep.n_parallel + 1, runtime::kMaxSequences);
  pp.type_k = ep.type_k;
  pp.type_v = ep.type_v;
  pp.n_threads = ep.n_threads;
  const plan::ModelInfo info = plan::ModelInfo::from_header(file, name);
  const uint64_t free_bytes = plan::system_memory_bytes();
  if (!automatic) {
    try {
      plan::check_context(info, pp, free_bytes);
    } catch (const Error& e) {
      // The planner counts KV cells: say it per request too.
      std::string per_request;
      try {
        per_request = "; per request that is -c " +
                      std::to_string(plan::max_context(info, pp, free_bytes, pp.n_ctx) / ep.n_parallel);
      } catch (const Error&) {
      }
      throw Error("-c " + std::to_string(ep.n_ctx) + " with --parallel " + std::to_string(ep.n_parallel) + " (" +
                  std::to_string(pp.n_ctx) + " KV cells) does not fit: " + e.what() + per_request);
    }
    return ep.n_ctx;
  }
  const uint32_t cells = plan::default_context(info, pp, free_bytes, pp.n_ctx);
  return std::max<uint32_t>(1, cells / ep.n_parallel);
}

json gguf_value_json(const gguf::Value& v, size_t max_array) {
  using gguf::ValueType;
  const auto scalar = [](ValueType t, const auto& get) -> json {
    switch (t) {
      case ValueType::BOOL: return get(bool{});
      case ValueType::FLOAT32:
      case ValueType::FLOAT64: return get(double{});
      case ValueType::UINT8:
      case ValueType::UINT16:
      case ValueType::UINT32:
      case ValueType::UINT64: return get(uint64_t{});
      default: return get(int64_t{});
    }
  };
  if (v.type() == ValueType::STRING) return v.str();
  if (!v.is_array()) return scalar(v.type(), [&](auto tag) { return v.get<decltype(tag)>(); });
  json a = json::array();
  if (v.count() > max_array) return a;
  if (v.elem_type() == ValueType::STRING) {
    for (const std::string& s : v.strings()) a.push_back(s);
    return a;
  }
  for (uint64_t i = 0; i < v.count(); ++i)
    a.push_back(scalar(v.elem_type(), [&](auto tag) { return v.at<decltype(tag)>(i); }));
  return a;
}

namespace {

// "8.2B", "5.8M": Ollama's parameter_size.
std::string parameter_size(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof(buf), "%.1fB", n / 1e9);
  else if (n >= 1000000ull) std::snprintf(buf, sizeof(buf), "%.1fM", n / 1e6);
  else std::snprintf(buf, sizeof(buf), "%.1fK", n / 1e3);
  return buf;
}

// general.file_type's name ("Q8_0"), else the type of the largest tensor.
std::string quantization_level(const gguf::File& f) {
  if (auto ft = f.get<uint32_t>("general.file_type"))
    for (const quant::FileTypeInfo& info : quant::file_types())
      if (static_cast<uint32_t>(info.ftype) == *ft) return info.name;
  const gguf::TensorInfo* big = nullptr;
  for (const gguf::TensorInfo& t : f.tensors())
    if (!big || t.nbytes > big->nbytes) big = &t;
  return big ? std::string(quant::type_name(big->type)) : "unknown";
}

}  // namespace

ModelRegistry::ModelRegistry(RegistryOptions options) : options_(std::move(options)) {
  if (!options_.factory) throw Error("ModelRegistry: no backend factory");
  reaper_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping_) break;
      lock.unlock();
      expire();
      lock.lock();
    }
  });
}

ModelRegistry::~ModelRegistry() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  reaper_.join();
  shutdown(true);
}

void ModelRegistry::add_entry(std::shared_ptr<ModelEntry> e, const gguf::File& f) {
  const std::string arch = f.get<std::string>("general.architecture").value_or("unknown");
  for (const gguf::TensorInfo& t : f.tensors()) e->n_params += static_cast<uint64_t>(t.n_elements());
  e->n_ctx_train = f.get<uint32_t>(arch + ".context_length").value_or(0);
  e->details = {{"parent_model", ""},
                {"format", "gguf"},
                {"family", arch},
                {"families", json::array({arch})},
                {"parameter_size", parameter_size(e->n_params)},
                {"quantization_level", quantization_level(f)}};
  e->capabilities = {"completion"};
  std::optional<std::string> tmpl = f.get<std::string>("tokenizer.chat_template");
  if (!options_.chat_template.empty()) tmpl = options_.chat_template;  // --chat-template-file
  if (tmpl) {
    const chat::Family family = chat::detect_family(*tmpl);
    if (tmpl->find("tools") != std::string::npos) e->capabilities.push_back("tools");
    const chat::ThinkingMarkers m = chat::thinking_markers(family);
    if (!m.open.empty() && (tmpl->find(m.open) != std::string::npos ||
                            tmpl->find("enable_thinking") != std::string::npos))
      e->capabilities.push_back("thinking");
  }
  e->capabilities.push_back("embedding");  // Engine::embed pools any model's final hidden states
  e->digest = sha256_hex(e->name + "\n" + e->path + "\n" + std::to_string(e->size) + "\n" +
                         std::to_string(Clock::to_time_t(e->modified)));
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& other : entries_)
    if (other->name == e->name)
      throw Error("two models are named " + e->name + " (" + (other->path.empty() ? "embedded" : other->path) +
                  " and " + (e->path.empty() ? "embedded" : e->path) + ")");
  e->keep_alive_ms = options_.default_keep_alive_ms;
  entries_.push_back(std::move(e));
}

void ModelRegistry::add_file(const std::string& path) {
  const gguf::File f = gguf::File::open(path);
  auto e = std::make_shared<ModelEntry>();
  e->name = model_name_from_path(path);
  e->path = path;
  e->size = f.file_size();
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(path, ec);
  e->modified = Clock::now();
  if (!ec)
    e->modified += std::chrono::duration_cast<Clock::duration>(mtime - std::filesystem::file_time_type::clock::now());
  add_entry(std::move(e), f);
}

void ModelRegistry::add_dir(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) throw Error("--models-dir " + dir + " is not a directory");
  std::vector<std::string> files;
  for (const auto& de : std::filesystem::directory_iterator(dir))
    if (de.is_regular_file() && de.path().extension() == ".gguf") files.push_back(de.path().string());
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) add_file(f);
}

void ModelRegistry::add_default(const std::string& name) {
  const std::span<const uint8_t> bytes = model::embedded_default_model();
  const gguf::File f =
      gguf::File::from_static(bytes.data(), bytes.size(), std::string(model::embedded_default_model_name()));
  auto e = std::make_shared<ModelEntry>();
  e->name = name;
  e->size = bytes.size();
  e->modified = Clock::now();
  add_entry(std::move(e), f);
}

std::vector<std::shared_ptr<ModelEntry>> ModelRegistry::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_;
}

std::string ModelRegistry::names() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  for (const auto& e : entries_) out += (out.empty() ? "" : ", ") + e->name;
  return out;
}

std::shared_ptr<ModelEntry> ModelRegistry::resolve(const std::string& requested) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.size() == 1) return entries_[0];
  for (const auto& e : entries_)
    if (e->name == requested) return e;
  if (requested.empty()) return nullptr;
  const std::string norm = normalize_model_name(requested);
  for (const auto& e : entries_)
    if (e->name == norm) return e;
  // A file stem or path ("qwen3-8b-q4_k_m", "/m/Qwen3-8B-Q4_K_M.gguf").
  const std::string stem = model_name_from_path(requested);
  for (const auto& e : entries_)
    if (e->name == stem || (!e->path.empty() && e->path == requested)) return e;
  return nullptr;
}

ModelRegistry::Lease& ModelRegistry::Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    release();
    registry_ = o.registry_;
    entry_ = std::move(o.entry_);
    loaded_ = std::move(o.loaded_);
    load_ns_ = o.load_ns_;
    o.registry_ = nullptr;
  }
  return *this;
}

void ModelRegistry::Lease::release() {
  if (registry_ && entry_) registry_->release(entry_);
  registry_ = nullptr;
  entry_.reset();
  loaded_.reset();
}

ModelRegistry::Lease ModelRegistry::acquire(const std::shared_ptr<ModelEntry>& entry,
                                            std::optional<int64_t> keep_alive_ms) {
  std::lock_guard<std::mutex> load_lock(entry->load_mutex);
  int64_t load_ns = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw ShuttingDownError("the server is shutting down");
    if (entry->loaded) {
      ++entry->active;
      if (keep_alive_ms) entry->keep_alive_ms = *keep_alive_ms;
      return Lease(this, entry, entry->loaded, 0);
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Loaded on a thread of its own: the OpenMP team that repacks the weights leaves with it, so the
  // engine's compute threads keep spin-waiting (kernels::run_on_fresh_thread).
  std::shared_ptr<const model::Model> m;
  kernels::run_on_fresh_thread(
      [&] { m = entry->path.empty() ? model::Model::load_default() : model::Model::load(entry->path); });
  bool builtin = false;
  auto loaded = std::make_shared<LoadedModel>(
      options_.chat_template.empty() ? model_chat_template(*m, builtin) : override_template(*m, options_.chat_template));
  loaded->builtin_template = builtin;
  loaded->model = m;
  loaded->params = options_.engine;
  if (options_.plan_memory) loaded->params.n_ctx = planned_context(m->file(), entry->name, options_.engine, options_.auto_context);
  loaded->backend = options_.factory(m, loaded->params);
  loaded->loaded_at = Clock::now();
  load_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mutex_);
  entry->loaded = loaded;
  ++entry->active;
  entry->keep_alive_ms = keep_alive_ms.value_or(options_.default_keep_alive_ms);
  return Lease(this, entry, loaded, load_ns);
}

void ModelRegistry::unload_locked(ModelEntry& e, std::vector<std::shared_ptr<LoadedModel>>& dropped) {
  if (e.loaded) dropped.push_back(std::move(e.loaded));
  e.loaded.reset();
}

void ModelRegistry::release(const std::shared_ptr<ModelEntry>& entry) {
  std::vector<std::shared_ptr<LoadedModel>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (entry->active > 0) --entry->active;
    if (entry->active == 0) {
      if (entry->keep_alive_ms == 0) unload_locked(*entry, dropped);
      else if (entry->keep_alive_ms > 0)
        entry->expires_at = Clock::now() + std::chrono::milliseconds(entry->keep_alive_ms);
    }
  }
  for (auto& d : dropped) d->backend->shutdown(true);
}

void ModelRegistry::set_keep_alive(const std::shared_ptr<ModelEntry>& entry, int64_t keep_alive_ms) {
  std::vector<std::shared_ptr<LoadedModel>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    entry->keep_alive_ms = keep_alive_ms;
    if (entry->active == 0) {
      if (keep_alive_ms == 0) unload_locked(*entry, dropped);
      else if (keep_alive_ms > 0) entry->expires_at = Clock::now() + std::chrono::milliseconds(keep_alive_ms);
    }
  }
  for (auto& d : dropped) d->backend->shutdown(true);
}

void ModelRegistry::expire() {
  std::vector<std::shared_ptr<LoadedModel>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = Clock::now();
    for (auto& e : entries_)
      if (e->loaded && e->active == 0 && e->keep_alive_ms >= 0 && e->expires_at <= now) unload_locked(*e, dropped);
  }
  for (auto& d : dropped) d->backend->shutdown(true);
}

void ModelRegistry::shutdown(bool cancel) {
  std::vector<std::shared_ptr<LoadedModel>> all;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& e : entries_)
      if (e->loaded) all.push_back(e->loaded);
  }
  for (auto& d : all) d->backend->shutdown(cancel);
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& e : entries_) e->loaded.reset();
}

std::vector<std::shared_ptr<ModelEntry>> ModelRegistry::loaded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::shared_ptr<ModelEntry>> out;
  for (const auto& e : entries_)
    if (e->loaded) out.push_back(e);
  return out;
}

}  // namespace hearth::server

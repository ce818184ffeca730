// The models `hearth serve` can answer with: their names (Ollama's name:tag, api.md 0.6 and 2.1),
// what /api/tags, /api/show and /v1/models say about them, and their residency: a model is loaded
// (its Model, chat template and Backend) on first use and unloaded when its keep_alive runs out.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "chat/prompt.h"
#include "model/model.h"
#include "sample/grammar.h"
#include "server/backend.h"

namespace hearth::server {

/// A resident model: everything a request needs.
struct LoadedModel {
  explicit LoadedModel(chat::ChatTemplate t) : chat_template(std::move(t)) {}

  std::shared_ptr<const model::Model> model;
  std::shared_ptr<Backend> backend;
  chat::ChatTemplate chat_template;
  bool builtin_template = false;  ///< the GGUF has none: hearth's ChatML template
  EngineParams params;
  std::chrono::system_clock::time_point loaded_at;

  /// The grammar vocabulary of the model's tokenizer (built on first use).
  std::shared_ptr<const sample::GrammarVocab> grammar_vocab() const;

 private:
  mutable std::mutex vocab_mutex_;
  mutable std::shared_ptr<const sample::GrammarVocab> vocab_;
};

/// One servable model.
struct ModelEntry {
  std::string name;    ///< "hearth-kjv:latest"
  std::string path;    ///< the GGUF file; "" for the embedded default model
  uint64_t size = 0;   ///< bytes on disk
  std::chrono::system_clock::time_point modified;
  std::string digest;  ///< hex SHA-256 of the name, path, size and time (stands for Ollama's manifest digest)
  nlohmann::ordered_json details;       ///< Ollama `details` (format, family, parameter_size, quantization_level)
  std::vector<std::string> capabilities;  ///< "completion", "tools", "thinking", "embedding"
  uint32_t n_ctx_train = 0;
  uint64_t n_params = 0;

  // Residency (guarded by the registry's mutex).
  std::shared_ptr<LoadedModel> loaded;
  int active = 0;             ///< requests using it now
  int64_t keep_alive_ms = 0;  ///< of the latest request (negative: forever)
  std::chrono::system_clock::time_point expires_at;
  std::mutex load_mutex;      ///< held while loading
};

/// Settings of the registry.
struct RegistryOptions {
  EngineParams engine;                   ///< for every model's Backend
  int64_t default_keep_alive_ms = 300000;  ///< 5 minutes (negative: forever)
  BackendFactory factory;                ///< makes the Backends
  /// A chat template source for every model instead of the GGUF's (--chat-template-file); "" for none.
  std::string chat_template;
  /// The memory planner (src/plan) at each load, against the machine's available memory: true
  /// (no -c given) shrinks engine.n_ctx to the largest per-request context that fits with
  /// n_parallel slots (at most engine.n_ctx and the model's training context); false refuses to
  /// load a model whose n_ctx · n_parallel cells do not fit, with the numbers.
  bool auto_context = false;
  /// Check contexts against the available memory at all (false in tests with scripted engines).
  bool plan_memory = false;
};

/// The per-request context of the model in `file` served by an engine with `ep` (n_ctx ·
/// n_parallel KV cells, n_parallel + 1 sequences), from the memory planner (src/plan) against
/// the machine's available memory: with `automatic`, the largest that fits, at most ep.n_ctx and
/// the training context; else ep.n_ctx. Throws Error naming the bytes needed, the memory
/// available and the largest context that fits when even that does not fit.
uint32_t planned_context(const gguf::File& file, const std::string& name, const EngineParams& ep, bool automatic);

/// The models of a server. Thread-safe.
class ModelRegistry {
 public:
  explicit ModelRegistry(RegistryOptions options);
  ~ModelRegistry();  ///< unloads everything (Backend::shutdown(true))

  /// Registers a GGUF file under model_name_from_path (reads only its header). Throws Error for a
  /// file that is not a readable GGUF, or a second model of the same name.
  void add_file(const std::string& path);
  /// Registers every *.gguf directly in `dir`. Throws Error if `dir` is not a directory.
  void add_dir(const std::string& dir);
  /// Registers the embedded default model as `name`.
  void add_default(const std::string& name = "hearth-kjv:latest");

  /// All models, in registration order.
  std::vector<std::shared_ptr<ModelEntry>> list() const;
  /// The model a request names (api.md 0.6): exact name, then Ollama's normalised name, then the
  /// file stem. With a single registered model, any name (even "") selects it. nullptr if none.
  std::shared_ptr<ModelEntry> resolve(const std::string& requested) const;
  /// "a:latest, b:latest": the names, for error messages.
  std::string names() const;

  /// A model in use by one request; unuse on destruction starts its keep_alive.
  class Lease {
   public:
    Lease() = default;
    Lease(ModelRegistry* registry, std::shared_ptr<ModelEntry> entry, std::shared_ptr<LoadedModel> loaded,
          int64_t load_ns)
        : registry_(registry), entry_(std::move(entry)), loaded_(std::move(loaded)), load_ns_(load_ns) {}
    Lease(Lease&& o) noexcept { *this = std::move(o); }
    Lease& operator=(Lease&& o) noexcept;
    ~Lease() { release(); }
    /// Ends the use now.
    void release();
    LoadedModel& operator*() const { return *loaded_; }
    LoadedModel* operator->() const { return loaded_.get(); }
    const ModelEntry& entry() const { return *entry_; }
    /// Nanoseconds this request spent loading the model (0 if it was resident).
    int64_t load_ns() const { return load_ns_; }

   private:
    ModelRegistry* registry_ = nullptr;
    std::shared_ptr<ModelEntry> entry_;
    std::shared_ptr<LoadedModel> loaded_;
    int64_t load_ns_ = 0;
  };

  /// Loads `entry` if needed and marks it in use. keep_alive_ms (nullopt: the server default;
  /// negative: forever; 0: unload when the request ends) applies from the end of the request.
  /// Throws Error if the model cannot be loaded.
  Lease acquire(const std::shared_ptr<ModelEntry>& entry, std::optional<int64_t> keep_alive_ms);
  /// Sets a model's keep_alive without using it; 0 unloads it now if idle (Ollama's empty-prompt
  /// load/unload requests).
  void set_keep_alive(const std::shared_ptr<ModelEntry>& entry, int64_t keep_alive_ms);
  /// Unloads idle models whose keep_alive ran out (called every second by a thread of the registry).
  void expire();
  /// Shuts every loaded Backend down (with `cancel`: cancelling running requests) and unloads.
  void shutdown(bool cancel);

  /// The loaded models with their expiry (for /api/ps, /metrics).
  std::vector<std::shared_ptr<ModelEntry>> loaded() const;

  const RegistryOptions& options() const { return options_; }

 private:
  void add_entry(std::shared_ptr<ModelEntry> e, const gguf::File& file);
  void release(const std::shared_ptr<ModelEntry>& entry);
  void unload_locked(ModelEntry& entry, std::vector<std::shared_ptr<LoadedModel>>& dropped);

  RegistryOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<ModelEntry>> entries_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread reaper_;
};

/// The chat template of a model: tokenizer.chat_template, else hearth's ChatML template
/// (`builtin` set true).
chat::ChatTemplate model_chat_template(const model::Model& model, bool& builtin);

/// A GGUF metadata value as JSON (arrays of more than `max_array` elements as []).
nlohmann::ordered_json gguf_value_json(const gguf::Value& value, size_t max_array);

}  // namespace hearth::server

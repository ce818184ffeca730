// What the HTTP layer of `hearth serve` needs from a generation engine: submit, embed, stats,
// shutdown (engine.h's Engine, behind an interface so that the HTTP layer can be tested with a
// scripted engine). One Backend serves one model.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "model/model.h"
#include "server/engine.h"

namespace hearth::server {

/// A generation engine for one model. Thread-safe, like Engine; callbacks of submitted requests
/// run on the engine's own thread.
class Backend {
 public:
  virtual ~Backend() = default;
  /// Engine::submit (throws ContextOverflowError, QueueFullError, ShuttingDownError, Error).
  virtual std::shared_ptr<RequestHandle> submit(GenerationRequest request) = 0;
  /// Engine::embed: the L2-normalised mean-pooled embedding of `tokens` (n_embd floats).
  virtual std::vector<float> embed(const std::vector<int32_t>& tokens) = 0;
  virtual EngineStats stats() const = 0;
  /// Engine::shutdown: takes no new requests; with `cancel` cancels the running ones.
  virtual void shutdown(bool cancel) = 0;
};

/// Makes the Backend of a loaded model. Throws Error for settings the model cannot use.
using BackendFactory =
    std::function<std::shared_ptr<Backend>(std::shared_ptr<const model::Model>, const EngineParams&)>;

/// The factory of real engines (an Engine per model; engine_backend.cpp).
BackendFactory engine_backend_factory();

}  // namespace hearth::server

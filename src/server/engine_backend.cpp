// Backend over the real Engine (engine.h).
#include "server/backend.h"

namespace hearth::server {
namespace {

class EngineBackend : public Backend {
 public:
  EngineBackend(std::shared_ptr<const model::Model> model, const EngineParams& params)
      : engine_(std::move(model), params) {}
  std::shared_ptr<RequestHandle> submit(GenerationRequest request) override {
    return engine_.submit(std::move(request));
  }
  std::vector<float> embed(const std::vector<int32_t>& tokens) override { return engine_.embed(tokens); }
  EngineStats stats() const override { return engine_.stats(); }
  void shutdown(bool cancel) override { engine_.shutdown(cancel); }

 private:
  Engine engine_;
};

}  // namespace

BackendFactory engine_backend_factory() {
  return [](std::shared_ptr<const model::Model> model, const EngineParams& params) -> std::shared_ptr<Backend> {
    return std::make_shared<EngineBackend>(std::move(model), params);
  };
}

}  // namespace hearth::server

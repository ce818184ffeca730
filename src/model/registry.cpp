#include <functional>
#include <map>

#include "model/arch.h"
#include "model/kv_layout.h"

namespace hearth::model {
namespace {

using Factory = std::unique_ptr<Architecture> (*)(const HParams&, Weights&);

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {
      {"llama", &make_llama},
      {"llama4", &make_llama4},
      {"qwen3", &make_qwen3},
      {"qwen3moe", &make_qwen3moe},
      {"qwen35", &make_qwen35},
      {"qwen35moe", &make_qwen35moe},
      {"qwen3next", &make_qwen3next},
      {"gemma3", &make_gemma3},
      {"gemma4", &make_gemma4},
  };
  return f;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (const auto& [name, f] : factories()) out.push_back(name);
  return out;
}

std::unique_ptr<Architecture> make_architecture(const HParams& hp, Weights& w) {
  const auto it = factories().find(hp.arch);
  if (it == factories().end()) {
    std::string list;
    for (const std::string& n : supported_architectures()) list += (list.empty() ? "" : ", ") + n;
    throw Error(w.file().path() + ": unsupported architecture '" + hp.arch + "' (hearth runs: " + list + ")");
  }
  return it->second(hp, w);
}

std::vector<KvLayerSpec> kv_layer_specs(const HParams& hp, const gguf::File& file) {
  if (hp.arch == "llama" || hp.arch == "qwen3" || hp.arch == "qwen3moe") return kv_layers_dense(hp);
  if (hp.arch == "llama4") return kv_layers_llama4(hp, file);
  if (hp.arch == "qwen35" || hp.arch == "qwen35moe" || hp.arch == "qwen3next") return kv_layers_qwen35(hp, file);
  if (hp.arch == "gemma3" || hp.arch == "gemma4") return kv_layers_gemma(hp, file);
  std::string list;
  for (const std::string& n : supported_architectures()) list += (list.empty() ? "" : ", ") + n;
  throw Error(file.path() + ": unsupported architecture '" + hp.arch + "' (hearth runs: " + list + ")");
}

}  // namespace hearth::model

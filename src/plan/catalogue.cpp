#include "plan/catalogue.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "hearth/error.h"
#include "model/synth.h"
#include "quant/quantize_file.h"
#include "runtime/bandwidth.h"

namespace hearth::plan {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

constexpr uint64_t kGiB = uint64_t{1} << 30;

}  // namespace

const std::vector<CatalogueModel>& catalogue_models() {
  // Shapes: architectures.md §12 (model::synth_shapes). Qwen3.6 27B and 35B-A3B have the shapes
  // of the Qwen3.5 sizes (§12.3); Llama 3.3 70B that of Llama 3.1 70B (§12.1).
  static const std::vector<CatalogueModel> models = {
      {"llama3.2-1b", "llama3.2-1b", "Llama 3.2 1B"},
      {"llama3.2-3b", "llama3.2-3b", "Llama 3.2 3B"},
      {"llama3.1-8b", "llama3.1-8b", "Llama 3.1 8B"},
      {"llama3.1-70b", "llama3.1-70b", "Llama 3.1 / 3.3 70B"},
      {"llama4-scout", "llama4-scout", "Llama 4 Scout 17B-16E"},
      {"llama4-maverick", "llama4-maverick", "Llama 4 Maverick 17B-128E"},
      {"qwen3-0.6b", "qwen3-0.6b", "Qwen3-0.6B"},
      {"qwen3-1.7b", "qwen3-1.7b", "Qwen3-1.7B"},
      {"qwen3-4b", "qwen3-4b", "Qwen3-4B"},
      {"qwen3-8b", "qwen3-8b", "Qwen3-8B"},
      {"qwen3-14b", "qwen3-14b", "Qwen3-14B"},
      {"qwen3-32b", "qwen3-32b", "Qwen3-32B"},
      {"qwen3-30b-a3b", "qwen3-30b-a3b", "Qwen3-30B-A3B"},
      {"qwen3-235b-a22b", "qwen3-235b-a22b", "Qwen3-235B-A22B"},
      {"qwen3-next-80b-a3b", "qwen3-next-80b-a3b", "Qwen3-Next-80B-A3B"},
      {"qwen3.5-0.8b", "qwen3.5-0.8b", "Qwen3.5-0.8B"},
      {"qwen3.5-4b", "qwen3.5-4b", "Qwen3.5-4B"},
      {"qwen3.5-9b", "qwen3.5-9b", "Qwen3.5-9B"},
      {"qwen3.5-27b", "qwen3.5-27b", "Qwen3.5-27B"},
      {"qwen3.6-27b", "qwen3.5-27b", "Qwen3.6-27B"},
      {"qwen3.5-35b-a3b", "qwen3.5-35b-a3b", "Qwen3.5-35B-A3B"},
      {"qwen3.6-35b-a3b", "qwen3.5-35b-a3b", "Qwen3.6-35B-A3B"},
      {"qwen3.5-397b-a17b", "qwen3.5-397b-a17b", "Qwen3.5-397B-A17B"},
      {"gemma3-1b", "gemma3-1b", "Gemma 3 1B"},
      {"gemma3-4b", "gemma3-4b", "Gemma 3 4B"},
      {"gemma3-12b", "gemma3-12b", "Gemma 3 12B"},
      {"gemma3-27b", "gemma3-27b", "Gemma 3 27B"},
      {"gemma4-e2b", "gemma4-e2b", "Gemma 4 E2B"},
      {"gemma4-e4b", "gemma4-e4b", "Gemma 4 E4B"},
      {"gemma4-26b-a4b", "gemma4-26b-a4b", "Gemma 4 26B-A4B"},
      {"gemma4-31b", "gemma4-31b", "Gemma 4 31B"},
  };
  return models;
}

const CatalogueModel* find_catalogue_model(const std::string& name) {
  const std::string want = lower(name);
  for (const CatalogueModel& m : catalogue_models())
    if (m.name == want) return &m;
  return nullptr;
}

gguf::File catalogue_header(const CatalogueModel& model, quant::FileType ftype) {
  // The F16 header of a shape is made once (its tokenizer has up to 262144 tokens).
  static std::mutex mutex;
  static std::map<std::string, gguf::File> f16;
  std::unique_lock lock(mutex);
  auto it = f16.find(model.shape);
  if (it == f16.end())
    it = f16.emplace(model.shape, model::synth_header(model::find_synth_shape(model.shape))).first;
  const gguf::File base = it->second;
  lock.unlock();

  quant::QuantizeParams qp;
  qp.mix.ftype = ftype;
  std::vector<quant::GgmlType> types(base.tensors().size());
  for (size_t i = 0; i < types.size(); ++i) types[i] = base.tensors()[i].type;
  if (ftype != quant::FileType::F16)
    for (const quant::TensorPlan& t : quant::plan_quantization(base, qp)) types[t.index] = t.to;
  gguf::Writer w;
  for (const auto& [key, value] : base.metadata()) w.set(key, value);
  w.set("general.file_type", gguf::Value::of(static_cast<uint32_t>(ftype)));
  for (size_t i = 0; i < types.size(); ++i) {
    const gguf::TensorInfo& t = base.tensors()[i];
    w.add_tensor(t.name, types[i], std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
  }
  std::ostringstream out;
  w.begin(out);
  const std::string bytes = out.str();
  return gguf::File::from_header(std::vector<uint8_t>(bytes.begin(), bytes.end()), w.file_size(),
                                 model.name + " " + quant::file_type_info(ftype).name);
}

const std::vector<Hardware>& catalogue_hardware() {
  // Memory as sold ("24 GB" of VRAM or RAM is 24 GiB); bandwidth in 1e9 bytes/s from the
  // vendors' spec sheets (docs/fit.md "Hardware catalogue").
  static const std::vector<Hardware> hw = {
      {"rtx3070", "NVIDIA GeForce RTX 3070", 8 * kGiB, 448, true, "nvidia.com RTX 3070 specs: 8 GB GDDR6, 256-bit, 14 Gbps"},
      {"rtx3090", "NVIDIA GeForce RTX 3090", 24 * kGiB, 936, true, "nvidia.com RTX 3090 specs: 24 GB GDDR6X, 384-bit, 19.5 Gbps"},
      {"rtx4080", "NVIDIA GeForce RTX 4080", 16 * kGiB, 716.8, true, "nvidia.com RTX 4080 specs: 16 GB GDDR6X, 256-bit, 22.4 Gbps"},
      {"rtx4090", "NVIDIA GeForce RTX 4090", 24 * kGiB, 1008, true, "nvidia.com RTX 4090 specs: 24 GB GDDR6X, 384-bit, 21 Gbps"},
      {"rtx5090", "NVIDIA GeForce RTX 5090", 32 * kGiB, 1792, true, "nvidia.com RTX 5090 specs: 32 GB GDDR7, 512-bit, 28 Gbps"},
      {"rtx-pro-6000", "NVIDIA RTX PRO 6000 Blackwell", 96 * kGiB, 1792, true, "nvidia.com RTX PRO 6000 Blackwell datasheet: 96 GB GDDR7, 1792 GB/s"},
      {"a6000", "NVIDIA RTX A6000", 48 * kGiB, 768, true, "nvidia.com RTX A6000 datasheet: 48 GB GDDR6, 768 GB/s"},
      {"a100-40gb", "NVIDIA A100 40GB SXM", 40 * kGiB, 1555, true, "nvidia.com A100 datasheet: 40 GB HBM2, 1555 GB/s"},
      {"a100-80gb", "NVIDIA A100 80GB SXM", 80 * kGiB, 2039, true, "nvidia.com A100 datasheet: 80 GB HBM2e, 2039 GB/s (SXM)"},
      {"h100", "NVIDIA H100 SXM", 80 * kGiB, 3350, true, "nvidia.com H100 datasheet: 80 GB HBM3, 3.35 TB/s (SXM)"},
      {"h200", "NVIDIA H200 SXM", 141 * kGiB, 4800, true, "nvidia.com H200 datasheet: 141 GB HBM3e, 4.8 TB/s"},
      {"m4-16gb", "Apple M4, 16 GB", 16 * kGiB, 120, false, "apple.com Mac mini (M4) tech specs: 120 GB/s"},
      {"m4-32gb", "Apple M4, 32 GB", 32 * kGiB, 120, false, "apple.com Mac mini (M4) tech specs: 120 GB/s"},
      {"m4-pro-24gb", "Apple M4 Pro, 24 GB", 24 * kGiB, 273, false, "apple.com Mac mini (M4 Pro) tech specs: 273 GB/s"},
      {"m4-pro-64gb", "Apple M4 Pro, 64 GB", 64 * kGiB, 273, false, "apple.com Mac mini (M4 Pro) tech specs: 273 GB/s"},
      {"m4-max-36gb", "Apple M4 Max (14-core CPU), 36 GB", 36 * kGiB, 410, false, "apple.com MacBook Pro (M4 Max) tech specs: 410 GB/s"},
      {"m4-max-128gb", "Apple M4 Max (16-core CPU), 128 GB", 128 * kGiB, 546, false, "apple.com MacBook Pro (M4 Max) tech specs: 546 GB/s"},
      {"m2-ultra-192gb", "Apple M2 Ultra, 192 GB", 192 * kGiB, 800, false, "apple.com Mac Studio (M2 Ultra) tech specs: 800 GB/s"},
      {"m3-ultra-96gb", "Apple M3 Ultra, 96 GB", 96 * kGiB, 819, false, "apple.com Mac Studio (M3 Ultra) tech specs: 819 GB/s"},
      {"m3-ultra-256gb", "Apple M3 Ultra, 256 GB", 256 * kGiB, 819, false, "apple.com Mac Studio (M3 Ultra) tech specs: 819 GB/s"},
      {"m3-ultra-512gb", "Apple M3 Ultra, 512 GB", 512 * kGiB, 819, false, "apple.com Mac Studio (M3 Ultra) tech specs: 819 GB/s"},
      {"pi5-8gb", "Raspberry Pi 5, 8 GB", 8 * kGiB, 17.1, false, "raspberrypi.com Pi 5 product brief: LPDDR4X-4267, 32-bit bus = 17.1 GB/s"},
      {"pi5-16gb", "Raspberry Pi 5, 16 GB", 16 * kGiB, 17.1, false, "raspberrypi.com Pi 5 product brief: LPDDR4X-4267, 32-bit bus = 17.1 GB/s"},
      {"ddr4-2ch-32gb", "PC, 32 GB dual-channel DDR4-3200", 32 * kGiB, 51.2, false, "JEDEC DDR4-3200: 25.6 GB/s per 64-bit channel, 2 channels"},
      {"ddr5-2ch-64gb", "PC, 64 GB dual-channel DDR5-5600", 64 * kGiB, 89.6, false, "JEDEC DDR5-5600: 44.8 GB/s per 64-bit channel, 2 channels"},
      {"ddr5-2ch-128gb", "PC, 128 GB dual-channel DDR5-5600", 128 * kGiB, 89.6, false, "JEDEC DDR5-5600: 44.8 GB/s per 64-bit channel, 2 channels"},
      {"epyc-12ch-384gb", "Server, 384 GB 12-channel DDR5-4800 (AMD EPYC 9004)", 384 * kGiB, 460.8, false, "amd.com EPYC 9004 specs: 12 channels DDR5-4800, 460.8 GB/s"},
  };
  return hw;
}

Hardware find_hardware(const std::string& name) {
  const std::string want = lower(name);
  if (want == "this") {
    const std::vector<runtime::BandwidthResult> r = runtime::measure_read_bandwidth(
        uint64_t{256} << 20, {static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))}, 2);
    return {"this", "this machine", system_memory_bytes(true), r.front().gb_per_s, false,
            "/proc/meminfo MemTotal; runtime::measure_read_bandwidth (256 MiB, all threads)"};
  }
  std::string names = "this";
  for (const Hardware& h : catalogue_hardware()) {
    if (h.name == want) return h;
    names += ", " + h.name;
  }
  throw Error("unknown hardware '" + name + "' (known: " + names + ")");
}

}  // namespace hearth::plan

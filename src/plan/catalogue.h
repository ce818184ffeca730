// The planner's catalogues: the seed models' real shapes (architectures.md §12; headers made by
// model::synth_header with the tensor types of a llama-quantize mix, so `hearth fit qwen3.5-9b
// --quant Q4_K_M` needs no file) and hardware with its memory and bandwidth (vendor spec sheets).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "quant/mix.h"

namespace hearth::plan {

/// A model of the catalogue.
struct CatalogueModel {
  std::string name;    ///< "qwen3.5-9b"
  std::string shape;   ///< model::find_synth_shape name (architectures.md §12)
  std::string title;   ///< "Qwen3.5-9B"
};

/// The seed models: Llama 3.x, Llama 4, Qwen 3 dense and MoE, Qwen 3.5 / 3.6, Gemma 3 and 4.
const std::vector<CatalogueModel>& catalogue_models();

/// The model called `name` (case-insensitive), or nullptr.
const CatalogueModel* find_catalogue_model(const std::string& name);

/// The header a GGUF of `model` in file type `ftype` would have: the synthesized F16 header with
/// each tensor's type chosen by the ftype's mix (quant::plan_quantization, formats.md §4.4), so
/// the weight bytes are those of a real llama-quantize output of that shape. Throws Error for a
/// file type that needs an importance matrix (IQ1/IQ2) or that hearth cannot write.
gguf::File catalogue_header(const CatalogueModel& model, quant::FileType ftype);

/// A device of the hardware catalogue.
struct Hardware {
  std::string name;          ///< "rtx4090", "m4-max-128gb", "pi5-8gb", "ddr5-2ch-64gb"
  std::string title;         ///< "NVIDIA GeForce RTX 4090"
  uint64_t memory_bytes = 0; ///< memory (binary GiB as the vendors' "GB" of VRAM / RAM mean)
  double bandwidth_gb_s = 0; ///< peak memory bandwidth, 1e9 bytes/s, from the vendor's spec sheet
  bool gpu = false;          ///< discrete GPU memory (else system / unified memory)
  std::string source;        ///< where the numbers come from
};

/// The hardware catalogue (docs/fit.md lists it with sources).
const std::vector<Hardware>& catalogue_hardware();

/// The device called `name` (case-insensitive). "this" is this machine: MemTotal of
/// /proc/meminfo and the bandwidth runtime::measure_read_bandwidth measures (256 MiB, all
/// threads; a second or so). Throws Error listing the known names for anything else.
Hardware find_hardware(const std::string& name);

}  // namespace hearth::plan

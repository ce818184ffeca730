// Whole-file quantization: what `hearth quantize` (and llama-quantize) does to a GGUF model.
// Source: ../shared/docs/formats.md §4 (which tensors, which types, metadata written) and §3
// (the per-row quantizers, reached through the traits table's from_float).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "quant/imatrix.h"
#include "quant/mix.h"

namespace hearth::quant {

/// Settings of one quantization run.
struct QuantizeParams {
  MixOptions mix;                 ///< file type, overrides, pure
  int n_threads = 0;              ///< rows are quantized on this many threads (0: all cores)
  bool allow_requantize = false;  ///< allow quantized input tensors to be dequantized and requantized
  /// Importance matrix (formats.md §3.7), or null. When set, `mix.has_imatrix` is treated as
  /// true, and every tensor with an entry is quantized with its type's weighted quantizer
  /// (quant/quantize_weighted.h) using the entry's per-column importance (per expert slice for
  /// 3-D tensors); tensors without an entry use the reference quantizer.
  std::shared_ptr<const Imatrix> imatrix;
  /// Exact types by tensor name, used instead of the mix's choice (what `hearth quantize
  /// --dynamic` allocated, quant/dynamic.h). Each name must be a tensor of the file that
  /// should_quantize() accepts, and its rows must be whole blocks of the type; else Error.
  std::map<std::string, GgmlType> tensor_types;
};

/// One planned tensor: its name, input type and the type it is written in.
struct TensorPlan {
  size_t index = 0;  ///< index in the input file's tensor table
  std::string name;
  GgmlType from = GgmlType::F32;
  GgmlType to = GgmlType::F32;
  uint64_t bytes_in = 0;   ///< bytes of the input tensor
  uint64_t bytes_out = 0;  ///< bytes of the output tensor
};

/// Plans the output of quantizing `in`: every tensor in llama.cpp's loader order with the type
/// the mix gives it (formats.md §4.3–4.4), or the one `params.tensor_types` names. Throws Error,
/// before anything is written, for a type hearth cannot quantize to, a quantized input without
/// `allow_requantize`, an input type hearth cannot read, a tensor that needs an importance matrix
/// but has no entry (formats.md §4.5), an imatrix entry whose size is not ne0·ne2 of its tensor
/// (except token_embd, whose mismatching entry is ignored; formats.md §3.7), or a `tensor_types`
/// entry that names no tensor, a tensor that is not quantized, or a type whose block size does
/// not divide ne0.
std::vector<TensorPlan> plan_quantization(const gguf::File& in, const QuantizeParams& params);

/// The per-column importance of tensor `t` ([ne2][ne0] f32: ne0 columns per expert matrix) from
/// the imatrix `im` (formats.md §3.7 "Loading"), or empty when `im` is null, has no entry for
/// it, or (token_embd only) the entry's size is not ne0·ne2, which llama-quantize ignores
/// (formats.md §3.7 "Use at quantization"). Throws Error for any other size mismatch or a
/// non-finite value.
std::vector<float> tensor_importance(const Imatrix* im, const gguf::TensorInfo& t);

/// Totals of a finished run.
struct QuantizeReport {
  std::vector<TensorPlan> tensors;
  uint64_t bytes_in = 0;   ///< sum of the input tensors' bytes
  uint64_t bytes_out = 0;  ///< sum of the output tensors' bytes
  uint64_t n_elements = 0; ///< parameters
  double seconds = 0;

  /// Bits per weight of the output tensors.
  double bits_per_weight() const { return n_elements ? 8.0 * static_cast<double>(bytes_out) / n_elements : 0.0; }
};

/// Called after each tensor is written: (tensors done, total, the tensor's plan).
using QuantizeProgress = std::function<void(size_t done, size_t total, const TensorPlan& t)>;

/// Quantizes the GGUF file `in_path` into `out_path` (formats.md §4): metadata copied, with
/// `general.file_type` and `general.quantization_version` = 2 set and `split.*` removed;
/// tensors in loader order, each converted row by row with its type's reference quantizer, or
/// with the weighted quantizer and the imatrix entry's importance when `params.imatrix` has one.
/// The output is written to `out_path + ".tmp"` and renamed when complete, so an error never
/// leaves a partial file under the final name. Memory: one chunk of rows as f32 at a time.
/// Throws Error for the reasons of plan_quantization(), an unreadable input, `out_path` equal
/// to `in_path`, or an I/O failure.
QuantizeReport quantize_file(const std::string& in_path, const std::string& out_path, const QuantizeParams& params,
                             const QuantizeProgress& progress = nullptr);

}  // namespace hearth::quant

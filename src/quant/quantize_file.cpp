#include "quant/quantize_file.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "hearth/error.h"
#include "quant/quantize_weighted.h"

namespace hearth::quant {
namespace {

// Rows are converted and quantized in chunks of about this many f32 elements (64 MiB).
constexpr int64_t kChunkElements = int64_t{16} << 20;

}  // namespace

std::vector<float> tensor_importance(const Imatrix* im, const gguf::TensorInfo& t) {
  if (im == nullptr) return {};
  std::vector<float> imp = im->importance(t.name);
  if (imp.empty()) return imp;
  const int64_t want = t.ne[0] * t.ne[2];
  if (static_cast<int64_t>(imp.size()) != want) {
    if (t.name.rfind("token_embd", 0) == 0) return {};
    throw Error("imatrix entry " + t.name + " has " + std::to_string(imp.size()) + " values; the tensor " +
                t.shape_string() + " needs ne0*ne2 = " + std::to_string(want));
  }
  for (size_t i = 0; i < imp.size(); ++i)
    if (!std::isfinite(imp[i]))
      throw Error("imatrix entry " + t.name + " has a non-finite importance at index " + std::to_string(i));
  return imp;
}

std::vector<TensorPlan> plan_quantization(const gguf::File& in, const QuantizeParams& params) {
  MixOptions mix = params.mix;
  if (params.imatrix) mix.has_imatrix = true;
  MixPlanner planner(MixModelInfo::from_file(in), mix);
  for (const auto& [name, type] : params.tensor_types) {
    const gguf::TensorInfo* t = in.find_tensor(name);
    if (t == nullptr) throw Error("a type is given for tensor " + name + ", which the file does not have");
    if (!should_quantize(t->name, t->n_dims, mix.leave_output))
      throw Error("a type is given for tensor " + name + ", which is not quantized (it keeps its type)");
    if (t->ne[0] % traits(type).blck_size != 0)
      throw Error(std::string("tensor ") + name + " cannot be " + traits(type).name + ": its rows of " +
                  std::to_string(t->ne[0]) + " elements are not a multiple of the block size " +
                  std::to_string(traits(type).blck_size));
  }
  std::vector<TensorPlan> plan;
  for (size_t i : loader_order(in.tensors())) {
    const gguf::TensorInfo& t = in.tensors()[i];
    TensorPlan p;
    p.index = i;
    p.name = t.name;
    p.from = t.type;
    p.to = planner.choose(t);  // also when tensor_types overrides it: the mix's counters advance
    if (const auto it = params.tensor_types.find(t.name); it != params.tensor_types.end()) p.to = it->second;
    p.bytes_in = t.nbytes;
    if (p.to != p.from) {
      const TypeTraits& from = traits(p.from);
      const TypeTraits& to = traits(p.to);
      if (to.from_float == nullptr)
        throw Error("tensor " + t.name + ": hearth cannot quantize to " + to.name + " yet");
      if (from.to_float == nullptr)
        throw Error("tensor " + t.name + ": hearth cannot read tensors of type " + from.name);
      if (from.is_quantized && !params.allow_requantize)
        throw Error("tensor " + t.name + " is already " + from.name + "; requantizing to " + to.name +
                    " loses quality, pass --allow-requantize to do it anyway");
      if (requires_imatrix(p.to, params.mix.ftype, t.name) &&
          (!params.imatrix || params.imatrix->find(t.name) == nullptr))
        throw Error("tensor " + t.name + ": " + to.name + " in a " + file_type_info(params.mix.ftype).name +
                    " file needs an importance matrix (hearth imatrix)" +
                    (params.imatrix ? std::string("; the imatrix has no entry for it") : std::string()));
      tensor_importance(params.imatrix.get(), t);  // size and finiteness checked before writing
    }
    p.bytes_out = row_size(p.to, t.ne[0]) * static_cast<uint64_t>(t.n_elements() / t.ne[0]);
    plan.push_back(std::move(p));
  }
  return plan;
}

QuantizeReport quantize_file(const std::string& in_path, const std::string& out_path, const QuantizeParams& params,
                             const QuantizeProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (std::filesystem::equivalent(in_path, out_path, ec))
    throw Error("output file " + out_path + " is the input file; choose another name");
  const gguf::File in = gguf::File::open(in_path);
  QuantizeReport report;
  report.tensors = plan_quantization(in, params);

  gguf::Writer w;
  for (const auto& [key, value] : in.metadata()) w.set(key, value);
  // As llama-quantize (ggml's gguf_set_val_* remove the key and append it): these two keys
  // move to the end of the metadata, in this order.
  w.remove("general.quantization_version");
  w.set("general.quantization_version", gguf::Value::of(uint32_t{2}));
  w.remove("general.file_type");
  w.set("general.file_type", gguf::Value::of(static_cast<uint32_t>(params.mix.ftype)));
  for (const char* key : {"split.no", "split.count", "split.tensors.count"}) w.remove(key);
  for (const TensorPlan& p : report.tensors) {
    const gguf::TensorInfo& t = in.tensors()[p.index];
    w.add_tensor(t.name, p.to, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
  }

  const std::string tmp_path = out_path + ".tmp";
  try {
    w.begin(tmp_path);
    const int n_threads = params.n_threads > 0 ? params.n_threads : omp_get_num_procs();
    std::vector<float> f32;
    std::vector<uint8_t> out;
    for (size_t k = 0; k < report.tensors.size(); ++k) {
      const TensorPlan& p = report.tensors[k];
      const gguf::TensorInfo& t = in.tensors()[p.index];
      const std::span<const uint8_t> src = in.tensor_data(t);
      if (p.to == p.from) {
        w.write_data(src);
      } else {
        const TypeTraits& from = traits(p.from);
        const TypeTraits& to = traits(p.to);
        const int64_t ne0 = t.ne[0];
        const int64_t n_rows = t.n_elements() / ne0;
        const size_t in_row = row_size(p.from, ne0);
        const size_t out_row = row_size(p.to, ne0);
        const int64_t chunk_rows = std::max<int64_t>(1, kChunkElements / ne0);
        const std::vector<float> imp = tensor_importance(params.imatrix.get(), t);
        const FromFloatWeightedFn weighted = imp.empty() ? nullptr : weighted_quantizer(p.to);
        const int64_t ne1 = t.ne[1], ne2 = t.ne[2];
        for (int64_t r0 = 0; r0 < n_rows; r0 += chunk_rows) {
          const int64_t nr = std::min(chunk_rows, n_rows - r0);
          f32.resize(static_cast<size_t>(nr * ne0));
          out.resize(static_cast<size_t>(nr) * out_row);
          std::exception_ptr failure;  // an exception must not leave an OpenMP region
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
          for (int64_t r = 0; r < nr; ++r) {
            try {
              float* row = f32.data() + r * ne0;
              from.to_float(src.data() + static_cast<size_t>(r0 + r) * in_row, row, ne0);
              if (weighted != nullptr) {
                const int64_t expert = ((r0 + r) / ne1) % ne2;  // rows run over ne1 within ne2
                weighted(row, out.data() + static_cast<size_t>(r) * out_row, ne0, imp.data() + expert * ne0);
              } else {
                to.from_float(row, out.data() + static_cast<size_t>(r) * out_row, ne0);
              }
            } catch (...) {
#pragma omp critical(hearth_quantize_failure)
              if (!failure) failure = std::current_exception();
            }
          }
          if (failure) std::rethrow_exception(failure);
          w.write_data(out);
        }
      }
      report.bytes_in += p.bytes_in;
      report.bytes_out += p.bytes_out;
      report.n_elements += static_cast<uint64_t>(t.n_elements());
      if (progress) progress(k + 1, report.tensors.size(), p);
    }
    w.finish();
    std::filesystem::rename(tmp_path, out_path);
  } catch (...) {
    std::filesystem::remove(tmp_path, ec);
    throw;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace hearth::quant

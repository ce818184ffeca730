#include "model/weights.h"

#include <sys/sysinfo.h>

#include <cstdlib>
#include <string_view>

#include "kernels/dot.h"
#include "kernels/gemm.h"
#include "kernels/threadpool.h"

namespace hearth::model {

const gguf::TensorInfo& Weights::find(const std::string& name) const {
  const gguf::TensorInfo* t = file_.find_tensor(name);
  if (t == nullptr) throw Error(file_.path() + ": tensor '" + name + "' is missing");
  return *t;
}

void Weights::check_shape(const gguf::TensorInfo& t, std::vector<int64_t> ne) const {
  ne.resize(4, 1);
  for (size_t d = 0; d < 4; ++d) {
    if (t.ne[d] != ne[d]) {
      gguf::TensorInfo want;
      want.n_dims = 1;
      for (uint32_t i = 0; i < 4; ++i) {
        want.ne[i] = ne[i];
        if (ne[i] > 1) want.n_dims = i + 1;
      }
      throw Error(file_.path() + ": tensor '" + t.name + "' has shape " + t.shape_string() + ", expected " +
                  want.shape_string());
    }
  }
}

namespace {

/// gguf::File layout tags of weights in kernels::WeightLayout::lanes and ::x16.
constexpr uint8_t kLanesTag = 1, kX16Tag = 2;

/// Which repacked layouts HEARTH_REPACK allows: "0" none (the file's layout), "lanes" only the
/// lane layout (to compare the two), anything else (or unset) both.
enum class RepackMode { off, lanes_only, all };
RepackMode repack_mode() {
  const char* v = std::getenv("HEARTH_REPACK");
  if (v == nullptr) return RepackMode::all;
  const std::string_view s(v);
  return s == "0" ? RepackMode::off : s == "lanes" ? RepackMode::lanes_only : RepackMode::all;
}

/// Whether a file of `bytes` may be repacked: repacked pages are private copies that stay
/// resident, where the file's own pages can be dropped and read again, so a file of more than
/// 3/4 of the machine's RAM (one that may only run by streaming from disk) keeps its layout.
bool fits_resident(uint64_t bytes) {
  struct sysinfo si{};
  if (sysinfo(&si) != 0) return false;
  const uint64_t ram = static_cast<uint64_t>(si.totalram) * si.mem_unit;
  return bytes <= ram / 4 * 3;
}

}  // namespace

kernels::MatrixView Weights::view(const gguf::TensorInfo& t) const {
  kernels::MatrixView m;
  m.type = t.type;
  m.n_in = t.ne[0];
  m.n_out = t.ne[1] * t.ne[2] * t.ne[3];
  m.data = file_.tensor_data(t).data();
  m.row_bytes = quant::row_size(t.type, t.ne[0]);
  const uint8_t tag = file_.tensor_layout(t);
  m.layout = tag == kLanesTag ? kernels::WeightLayout::lanes
             : tag == kX16Tag ? kernels::WeightLayout::x16
                              : kernels::WeightLayout::natural;
  return m;
}

kernels::MatrixView Weights::repacked_view(const gguf::TensorInfo& t) {
  kernels::MatrixView m = view(t);
  const RepackMode mode = repack_mode();
  if (m.layout != kernels::WeightLayout::natural || mode == RepackMode::off || !fits_resident(file_.file_size())) return m;
  // The x16 layout where the path has its kernel (a stack of experts: 16-row groups within each
  // expert), else the lane layout.
  const bool x16 = mode == RepackMode::all && kernels::gemm::prefers_x16_layout(t.type, t.ne[0], t.ne[1]);
  if (!x16 && !kernels::gemm::prefers_lane_layout(t.type, t.ne[0])) return m;
  const kernels::ThreadPool pool(0);
  const bool done = file_.rewrite_tensor(t, x16 ? kX16Tag : kLanesTag, [&](std::span<uint8_t> bytes) {
    if (x16) kernels::gemm::repack_to_x16(m, bytes.data(), pool);
    else kernels::gemm::repack_to_lanes(m, bytes.data(), pool);
  });
  if (done) {
    m.layout = x16 ? kernels::WeightLayout::x16 : kernels::WeightLayout::lanes;
    repacked_bytes_ += t.nbytes;
  }
  return m;
}

std::optional<kernels::MatrixView> Weights::matrix_opt(const std::string& name, int64_t n_in, int64_t n_out) {
  if (file_.find_tensor(name) == nullptr) return std::nullopt;
  return matrix(name, n_in, n_out);
}

kernels::MatrixView Weights::matrix(const std::string& name, int64_t n_in, int64_t n_out) {
  const gguf::TensorInfo& t = find(name);
  check_shape(t, {n_in, n_out});
  if (kernels::vec_dot_fn(t.type) == nullptr)
    throw Error(file_.path() + ": tensor '" + name + "' has type " + std::string(quant::type_name(t.type)) +
                ", which hearth cannot compute with yet");
  return repacked_view(t);
}

kernels::MatrixView Weights::expert_stack(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_expert) {
  const gguf::TensorInfo& t = find(name);
  check_shape(t, {n_in, n_out, n_expert});
  if (kernels::vec_dot_fn(t.type) == nullptr)
    throw Error(file_.path() + ": tensor '" + name + "' has type " + std::string(quant::type_name(t.type)) +
                ", which hearth cannot compute with yet");
  return repacked_view(t);
}

kernels::MatrixView Weights::embedding(const std::string& name, int64_t n_embd, int64_t n_vocab) {
  const gguf::TensorInfo& t = find(name);
  check_shape(t, {n_embd, n_vocab});
  if (quant::traits(t.type).to_float == nullptr)
    throw Error(file_.path() + ": tensor '" + name + "' has type " + std::string(quant::type_name(t.type)) +
                ", which hearth cannot convert yet");
  return view(t);
}

const float* Weights::vector_opt(const std::string& name, int64_t n) {
  if (file_.find_tensor(name) == nullptr) return nullptr;
  return vector(name, n);
}

const float* Weights::vector(const std::string& name, int64_t n) {
  const gguf::TensorInfo& t = find(name);
  check_shape(t, {n});
  const auto data = file_.tensor_data(t);
  if (t.type == quant::GgmlType::F32) return reinterpret_cast<const float*>(data.data());
  const quant::TypeTraits& tt = quant::traits(t.type);
  if (tt.to_float == nullptr)
    throw Error(file_.path() + ": tensor '" + name + "' has type " + tt.name + ", which hearth cannot convert yet");
  std::vector<float>& out = owned_.emplace_back(static_cast<size_t>(n));
  tt.to_float(data.data(), out.data(), n);
  return out.data();
}

}  // namespace hearth::model

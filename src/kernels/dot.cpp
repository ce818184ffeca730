// Lookup of the dot-product kernel per weight type and of the activation converter per
// partner format (formats.md §2.7). The tables hold the scalar reference kernels; the lookup
// functions at the bottom prefer the SIMD kernels (kernels/dot_avx.h) of the CPU path chosen at
// run time (kernels/cpu.h).
#include "kernels/dot.h"

#include <array>
#include <cstddef>
#include <string>

#include "hearth/error.h"
#include "kernels/cpu.h"
#include "kernels/dot_avx.h"
#include "kernels/dot_lattice.h"
#include "kernels/dot_scalar.h"

namespace hearth::kernels {
namespace {

using quant::GgmlType;

template <class Fn>
struct Entry {
  GgmlType type;
  Fn fn;
};

// Weight type -> dot product with its partner activation format (formats.md §2.7).
constexpr Entry<VecDotFn> kDots[] = {
    {GgmlType::F32, scalar::vec_dot_f32},   {GgmlType::F16, scalar::vec_dot_f16},
    {GgmlType::BF16, scalar::vec_dot_bf16}, {GgmlType::Q4_0, scalar::vec_dot_q4_0},
    {GgmlType::Q8_0, scalar::vec_dot_q8_0}, {GgmlType::Q4_K, scalar::vec_dot_q4_K},
    {GgmlType::Q5_K, scalar::vec_dot_q5_K}, {GgmlType::Q6_K, scalar::vec_dot_q6_K},
    {GgmlType::Q4_1, scalar::vec_dot_q4_1}, {GgmlType::Q5_0, scalar::vec_dot_q5_0},
    {GgmlType::Q5_1, scalar::vec_dot_q5_1}, {GgmlType::Q2_K, scalar::vec_dot_q2_K},
    {GgmlType::Q3_K, scalar::vec_dot_q3_K}, {GgmlType::IQ4_NL, scalar::vec_dot_iq4_nl},
    {GgmlType::IQ4_XS, scalar::vec_dot_iq4_xs}, {GgmlType::TQ1_0, scalar::vec_dot_tq1_0},
    {GgmlType::TQ2_0, scalar::vec_dot_tq2_0}, {GgmlType::MXFP4, scalar::vec_dot_mxfp4},
    // Lattice i-quants (kernels/dot_lattice.h).
    {GgmlType::IQ2_XXS, scalar::vec_dot_iq2_xxs}, {GgmlType::IQ2_XS, scalar::vec_dot_iq2_xs},
    {GgmlType::IQ2_S, scalar::vec_dot_iq2_s},     {GgmlType::IQ3_XXS, scalar::vec_dot_iq3_xxs},
    {GgmlType::IQ3_S, scalar::vec_dot_iq3_s},     {GgmlType::IQ1_S, scalar::vec_dot_iq1_s},
    {GgmlType::IQ1_M, scalar::vec_dot_iq1_m},
};

// Activation format -> converter from f32 (formats.md §3.1).
constexpr Entry<ActQuantizeFn> kActs[] = {
    {GgmlType::F32, scalar::act_quantize_f32},   {GgmlType::F16, scalar::act_quantize_f16},
    {GgmlType::BF16, scalar::act_quantize_bf16}, {GgmlType::Q8_0, scalar::act_quantize_q8_0},
    {GgmlType::Q8_K, scalar::act_quantize_q8_K}, {GgmlType::Q8_1, scalar::act_quantize_q8_1},
};

// A table indexed by ggml type id; nullptr where hearth has no function.
template <class Fn, size_t N>
constexpr std::array<Fn, quant::kGgmlTypeCount> index_by_type(const Entry<Fn> (&entries)[N]) {
  std::array<Fn, quant::kGgmlTypeCount> table{};
  for (const Entry<Fn>& e : entries) table[static_cast<size_t>(e.type)] = e.fn;
  return table;
}
constexpr auto kDotTable = index_by_type(kDots);
constexpr auto kActTable = index_by_type(kActs);

bool valid_id(quant::GgmlType type) {
  const auto id = static_cast<int32_t>(type);
  return id >= 0 && id < quant::kGgmlTypeCount;
}

}  // namespace

// SIMD kernels (kernels/dot_avx.h) of the requested path, falling back path by path to the
// scalar tables above for the types a path has no kernel of its own for.

VecDotFn vec_dot_fn(quant::GgmlType weight_type, CpuPath path) {
  if (!cpu_supports(path))
    throw Error(std::string("this CPU cannot run the ") + cpu_path_name(path) +
                " kernels; it has: " + cpu_feature_names(cpu_features()));
  if (!valid_id(weight_type)) return nullptr;
#if defined(__x86_64__)
  if (path == CpuPath::avx512)
    if (VecDotFn f = avx512::vec_dot_fn(weight_type)) return f;
  if (path >= CpuPath::avx2)
    if (VecDotFn f = avx2::vec_dot_fn(weight_type)) return f;
#endif
  return kDotTable[static_cast<size_t>(weight_type)];
}

ActQuantizeFn act_quantize_fn(quant::GgmlType act_type, CpuPath path) {
  if (!cpu_supports(path))
    throw Error(std::string("this CPU cannot run the ") + cpu_path_name(path) +
                " kernels; it has: " + cpu_feature_names(cpu_features()));
  if (!valid_id(act_type)) return nullptr;
#if defined(__x86_64__)
  if (path == CpuPath::avx512)
    if (ActQuantizeFn f = avx512::act_quantize_fn(act_type)) return f;
  if (path >= CpuPath::avx2)
    if (ActQuantizeFn f = avx2::act_quantize_fn(act_type)) return f;
#endif
  return kActTable[static_cast<size_t>(act_type)];
}

VecDotFn vec_dot_fn(quant::GgmlType weight_type) { return vec_dot_fn(weight_type, active_cpu_path()); }

ActQuantizeFn act_quantize_fn(quant::GgmlType act_type) { return act_quantize_fn(act_type, active_cpu_path()); }

}  // namespace hearth::kernels

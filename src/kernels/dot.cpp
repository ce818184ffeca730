// Lookup of the dot-product kernel per weight type and of the activation converter per
// partner format (formats.md §2.7). Only the scalar reference kernels exist so far; SIMD
// versions chosen at run time will be added to these tables.
#include "kernels/dot.h"

#include <array>
#include <cstddef>

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

VecDotFn vec_dot_fn(quant::GgmlType weight_type) {
  return valid_id(weight_type) ? kDotTable[static_cast<size_t>(weight_type)] : nullptr;
}

ActQuantizeFn act_quantize_fn(quant::GgmlType act_type) {
  return valid_id(act_type) ? kActTable[static_cast<size_t>(act_type)] : nullptr;
}

}  // namespace hearth::kernels

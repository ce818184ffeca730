#include "quant/types.h"

#include <array>
#include <cctype>
#include <string>

#include "hearth/error.h"
#include "quant/convert.h"
#include "quant/convert_lattice.h"
#include "quant/quantize_lattice.h"

namespace hearth::quant {
namespace {

using T = GgmlType;

// Block sizes and bytes per block: formats.md §1.6. Conversion functions are filled in
// for the types hearth implements.
constexpr TypeTraits kTable[] = {
    {T::F32, "F32", 1, 4, false, to_float_f32, from_float_f32, T::F32},
    {T::F16, "F16", 1, 2, false, to_float_f16, from_float_f16, T::F16},
    {T::Q4_0, "Q4_0", 32, 18, true, to_float_q4_0, from_float_q4_0, T::Q8_0},
    {T::Q4_1, "Q4_1", 32, 20, true, to_float_q4_1, from_float_q4_1, T::Q8_1},
    {T::Q5_0, "Q5_0", 32, 22, true, to_float_q5_0, from_float_q5_0, T::Q8_0},
    {T::Q5_1, "Q5_1", 32, 24, true, to_float_q5_1, from_float_q5_1, T::Q8_1},
    {T::Q8_0, "Q8_0", 32, 34, true, to_float_q8_0, from_float_q8_0, T::Q8_0},
    {T::Q8_1, "Q8_1", 32, 36, true, to_float_q8_1, from_float_q8_1, T::Q8_1},
    {T::Q2_K, "Q2_K", 256, 84, true, to_float_q2_K, from_float_q2_K, T::Q8_K},
    {T::Q3_K, "Q3_K", 256, 110, true, to_float_q3_K, from_float_q3_K, T::Q8_K},
    {T::Q4_K, "Q4_K", 256, 144, true, to_float_q4_K, from_float_q4_K, T::Q8_K},
    {T::Q5_K, "Q5_K", 256, 176, true, to_float_q5_K, from_float_q5_K, T::Q8_K},
    {T::Q6_K, "Q6_K", 256, 210, true, to_float_q6_K, from_float_q6_K, T::Q8_K},
    {T::Q8_K, "Q8_K", 256, 292, true, to_float_q8_K, from_float_q8_K, T::Q8_K},
    {T::IQ2_XXS, "IQ2_XXS", 256, 66, true, to_float_iq2_xxs, from_float_iq2_xxs, T::Q8_K},
    {T::IQ2_XS, "IQ2_XS", 256, 74, true, to_float_iq2_xs, from_float_iq2_xs, T::Q8_K},
    {T::IQ3_XXS, "IQ3_XXS", 256, 98, true, to_float_iq3_xxs, from_float_iq3_xxs, T::Q8_K},
    {T::IQ1_S, "IQ1_S", 256, 50, true, to_float_iq1_s, from_float_iq1_s, T::Q8_K},
    {T::IQ4_NL, "IQ4_NL", 32, 18, true, to_float_iq4_nl, from_float_iq4_nl, T::Q8_0},
    {T::IQ3_S, "IQ3_S", 256, 110, true, to_float_iq3_s, from_float_iq3_s, T::Q8_K},
    {T::IQ2_S, "IQ2_S", 256, 82, true, to_float_iq2_s, from_float_iq2_s, T::Q8_K},
    {T::IQ4_XS, "IQ4_XS", 256, 136, true, to_float_iq4_xs, from_float_iq4_xs, T::Q8_K},
    {T::I8, "I8", 1, 1, false, nullptr, nullptr, T::I8},
    {T::I16, "I16", 1, 2, false, nullptr, nullptr, T::I16},
    {T::I32, "I32", 1, 4, false, nullptr, nullptr, T::I32},
    {T::I64, "I64", 1, 8, false, nullptr, nullptr, T::I64},
    {T::F64, "F64", 1, 8, false, nullptr, nullptr, T::F64},
    {T::IQ1_M, "IQ1_M", 256, 56, true, to_float_iq1_m, from_float_iq1_m, T::Q8_K},
    {T::BF16, "BF16", 1, 2, false, to_float_bf16, from_float_bf16, T::BF16},
    {T::TQ1_0, "TQ1_0", 256, 54, true, to_float_tq1_0, from_float_tq1_0, T::Q8_K},
    {T::TQ2_0, "TQ2_0", 256, 66, true, to_float_tq2_0, from_float_tq2_0, T::Q8_K},
    {T::MXFP4, "MXFP4", 32, 17, true, to_float_mxfp4, from_float_mxfp4, T::Q8_0},
    {T::NVFP4, "NVFP4", 64, 36, true, nullptr, nullptr, T::Q8_0},
    {T::Q1_0, "Q1_0", 128, 18, true, nullptr, nullptr, T::Q8_0},
    {T::Q2_0, "Q2_0", 64, 18, true, nullptr, nullptr, T::Q8_0},
};

// Index by id; nullptr for removed/unknown ids.
constexpr std::array<const TypeTraits*, kGgmlTypeCount> make_index() {
  std::array<const TypeTraits*, kGgmlTypeCount> index{};
  for (const TypeTraits& t : kTable) index[static_cast<size_t>(t.type)] = &t;
  return index;
}
constexpr auto kIndex = make_index();

}  // namespace

const TypeTraits* find_traits(int32_t type_id) {
  if (type_id < 0 || type_id >= kGgmlTypeCount) return nullptr;
  return kIndex[static_cast<size_t>(type_id)];
}

const TypeTraits& traits(GgmlType type) {
  const TypeTraits* t = find_traits(static_cast<int32_t>(type));
  if (t == nullptr) throw Error("invalid ggml type id " + std::to_string(static_cast<int32_t>(type)));
  return *t;
}

std::string_view type_name(GgmlType type) {
  const TypeTraits* t = find_traits(static_cast<int32_t>(type));
  return t ? std::string_view(t->name) : std::string_view("?");
}

std::optional<GgmlType> type_from_name(std::string_view name) {
  for (const TypeTraits& t : kTable) {
    const std::string_view n(t.name);
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < n.size() && same; ++i)
      same = std::toupper(static_cast<unsigned char>(name[i])) == n[i];
    if (same) return t.type;
  }
  return std::nullopt;
}

size_t row_size(GgmlType type, int64_t ne0) {
  const TypeTraits& t = traits(type);
  if (ne0 % t.blck_size != 0)
    throw Error(std::string("row of ") + std::to_string(ne0) + " elements is not a multiple of the " +
                t.name + " block size " + std::to_string(t.blck_size));
  return static_cast<size_t>(ne0 / t.blck_size) * t.type_size;
}

}  // namespace hearth::quant

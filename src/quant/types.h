// The ggml tensor types: ids, block sizes and the per-type traits table.
// Source: ../shared/docs/formats.md §1.6 (ids, block sizes) and §2.7 (dot-product partners).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hearth::quant {

/// ggml type ids as stored in GGUF tensor-info records (formats.md §1.6). Removed ids (4, 5,
/// 31-33, 36-38) have no enumerator: `traits()` rejects them.
enum class GgmlType : int32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};

/// Number of ggml type ids (ids >= this are invalid).
inline constexpr int32_t kGgmlTypeCount = 43;

/// Elements per super-block of the K-quants and the IQ formats.
inline constexpr int64_t QK_K = 256;

/// Converts `n` elements (a multiple of the block size) of this type to float.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
/// Quantizes `n` floats (a multiple of the block size) into this type, reference algorithm
/// of formats.md §3 without importance weights.
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);

/// What hearth knows about one ggml type.
struct TypeTraits {
  GgmlType type;
  const char* name;       ///< ggml's name, e.g. "Q4_K"
  int64_t blck_size;      ///< elements per block
  size_t type_size;       ///< bytes per block
  bool is_quantized;      ///< true for block formats (also the activation-only ones)
  ToFloatFn to_float;     ///< nullptr where hearth cannot yet dequantize this type
  FromFloatFn from_float; ///< nullptr where hearth cannot yet quantize to this type
  GgmlType vec_dot_type;  ///< activation format a weight of this type is multiplied with (§2.7)
};

/// Traits of a type id read from a file, or nullptr if the id is out of range or removed.
const TypeTraits* find_traits(int32_t type_id);

/// Traits of a valid type (never null).
const TypeTraits& traits(GgmlType type);

/// ggml's name of a type ("Q8_0"); "?" for an invalid id.
std::string_view type_name(GgmlType type);

/// Parses a ggml type name (case-insensitive: "q8_0", "F16").
std::optional<GgmlType> type_from_name(std::string_view name);

/// Bytes of one row of `ne0` elements (`ne0` must be a multiple of the block size).
size_t row_size(GgmlType type, int64_t ne0);

}  // namespace hearth::quant

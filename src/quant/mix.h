// Quantization mixes: llama-quantize's file types (Q4_K_M, Q5_K_S, IQ4_XS, ...) and the rule
// that picks each tensor's type inside a mix.
// Source: ../shared/docs/formats.md §4 (4.1 ftype ids, 4.2 which tensors are quantized,
// 4.3 classification and counters, 4.4 decision procedure, 4.5 resulting mixes).
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "quant/types.h"

namespace hearth::quant {

/// llama.cpp's `llama_ftype` ids as stored in `general.file_type` (formats.md §4.1).
enum class FileType : int32_t {
  ALL_F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10,
  Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17,
  Q6_K = 18, IQ2_XXS = 19, IQ2_XS = 20, Q2_K_S = 21, IQ3_XS = 22, IQ3_XXS = 23, IQ1_S = 24,
  IQ4_NL = 25, IQ3_S = 26, IQ3_M = 27, IQ2_S = 28, IQ2_M = 29, IQ4_XS = 30, IQ1_M = 31,
  BF16 = 32, TQ1_0 = 36, TQ2_0 = 37, MXFP4_MOE = 38,
};

/// One file type: its llama-quantize name and the tensor type most tensors get.
struct FileTypeInfo {
  FileType ftype;
  const char* name;      ///< llama-quantize's name, e.g. "Q4_K_M"
  GgmlType default_type; ///< formats.md §4.1 "default"
};

/// Every file type of formats.md §4.1, in id order.
const std::vector<FileTypeInfo>& file_types();

/// The file type called `name` (case-insensitive; "Q3_K", "Q4_K", "Q5_K" alias the _M mixes),
/// or nullopt.
std::optional<FileType> file_type_from_name(std::string_view name);

/// The info of a file type (never null for an enumerator).
const FileTypeInfo& file_type_info(FileType ftype);

/// Whether llama-quantize converts this tensor at all (formats.md §4.2): ≥ 2 dimensions, name
/// ending in "weight", not a norm, not the MoE router, not `output.weight` when
/// `leave_output` is set, none of the excluded name fragments. 1-D tensors keep their type.
bool should_quantize(std::string_view name, uint32_t n_dims, bool leave_output = false);

/// Model facts the mix rules read (formats.md §4.3), taken from GGUF metadata.
struct MixModelInfo {
  std::string arch;        ///< general.architecture
  uint32_t n_layer = 0;    ///< {arch}.block_count
  uint32_t n_head = 0;     ///< {arch}.attention.head_count (layer 0)
  uint32_t n_head_kv = 0;  ///< {arch}.attention.head_count_kv (layer 0; = n_head if absent)
  uint32_t n_expert = 0;   ///< {arch}.expert_count (0 for dense models)
  bool has_output = false; ///< the file has `output.weight` (else embeddings are tied)
  int n_attention_wv = 0;  ///< tensors whose name contains attn_v/attn_qkv/attn_kv_b .weight

  /// n_head / n_head_kv (1 if unknown).
  uint32_t gqa() const { return n_head_kv == 0 ? 1 : n_head / n_head_kv; }
  /// llama.cpp's "70B" model type: 80 layers with grouped-query attention.
  bool is_70b() const { return (arch == "llama") && n_layer == 80 && gqa() > 1; }

  /// Reads the facts from a file's metadata and tensor table. Throws Error naming a key of
  /// the wrong type.
  static MixModelInfo from_file(const gguf::File& file);
};

/// A user override `--tensor-type PATTERN=TYPE`: tensors whose name matches the ECMAScript
/// regex PATTERN (searched, not anchored) get TYPE.
struct TensorTypeOverride {
  std::string pattern;
  std::regex regex;
  GgmlType type;

  /// Parses "PATTERN=TYPE". Throws Error naming the text for a missing '=', a bad regex or an
  /// unknown type name.
  static TensorTypeOverride parse(std::string_view text);
};

/// Options of one quantization run that change the chosen types.
struct MixOptions {
  FileType ftype = FileType::Q4_K_M;
  bool has_imatrix = false;  ///< an importance matrix is given (changes a few rules, §4.4)
  bool pure = false;         ///< every quantized tensor gets the default type (no mix rules)
  bool leave_output = false; ///< keep output.weight in its input type
  std::optional<GgmlType> token_embedding_type;  ///< --token-embedding-type
  std::optional<GgmlType> output_tensor_type;    ///< --output-tensor-type
  std::vector<TensorTypeOverride> overrides;     ///< --tensor-type, first match wins
};

/// Picks each tensor's type in a mix, in llama-quantize's order of decisions (formats.md §4.4)
/// with its running counters (§4.3). Call choose() once per tensor in loader_order().
class MixPlanner {
 public:
  MixPlanner(MixModelInfo model, MixOptions options);

  /// The type tensor `t` is written in. For tensors that should_quantize() rejects this is
  /// `t.type`. Throws Error if the layer of an MoE tensor cannot be parsed or is out of range.
  GgmlType choose(const gguf::TensorInfo& t);

  const MixModelInfo& model() const { return model_; }
  const MixOptions& options() const { return opt_; }

 private:
  GgmlType mix_rule(const std::string& name, const std::array<int64_t, 4>& ne, GgmlType type);
  std::pair<int, int> layer_info(int counter, const std::string& name) const;

  MixModelInfo model_;
  MixOptions opt_;
  int i_attention_wv_ = 0;
  int i_ffn_down_ = 0;
  int i_ffn_gate_ = 0;
  int i_ffn_up_ = 0;
};

/// llama.cpp's loader order (formats.md §4.3): tensors without a `blk.N.` prefix first, then
/// by layer number N, ties by name. Returns indices into `tensors`.
std::vector<size_t> loader_order(const std::vector<gguf::TensorInfo>& tensors);

/// Whether a tensor quantized to `type` needs an importance matrix in this file type
/// (formats.md §4.5, "imatrix requirement"): IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, or Q2_K
/// inside a Q2_K_S file — except token_embd (and output.weight for IQ1_M).
bool requires_imatrix(GgmlType type, FileType ftype, std::string_view tensor_name);

}  // namespace hearth::quant

// Binding of tensor names to weights, with shape and type checks.
// Tensor names and shapes: ../shared/docs/architectures.md §0.1 and the per-architecture tables.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"

namespace hearth::model {

/// Hands out views of a file's tensors to an architecture. Matrices stay in the mapping;
/// 1-D vectors (norm weights, rope factors) are F32 views, or F32 copies owned here when the
/// file stores them in another type. Matrices whose type is multiplied faster in a repacked
/// layout on the active CPU path (kernels/gemm.h: the x16 layout where
/// kernels::gemm::prefers_x16_layout, else the lane layout where prefers_lane_layout) are
/// rewritten into it in place, once per mapping (gguf::File::rewrite_tensor), unless
/// HEARTH_REPACK=0 (HEARTH_REPACK=lanes: the lane layout only) or the file is larger than 3/4
/// of the machine's RAM (repacked pages stay resident; the file's can be dropped and read
/// again).
class Weights {
 public:
  explicit Weights(const gguf::File& file) : file_(file) {}

  /// The 2-D weight `name` with ggml shape {n_in, n_out}. Throws Error if it is missing, has
  /// another shape, or has a type hearth cannot multiply with.
  kernels::MatrixView matrix(const std::string& name, int64_t n_in, int64_t n_out);
  /// As matrix(), but a missing tensor gives nullopt.
  std::optional<kernels::MatrixView> matrix_opt(const std::string& name, int64_t n_in, int64_t n_out);
  /// The 3-D expert stack `name` with ggml shape {n_in, n_out, n_expert} (ffn_*_exps), viewed as
  /// one matrix of n_out·n_expert rows; kernels::expert_matrix() cuts out one expert. Throws
  /// Error as matrix().
  kernels::MatrixView expert_stack(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_expert);
  /// The embedding table {n_embd, n_vocab}: as matrix() but only needs row conversion and is
  /// never repacked itself; it has a repacked layout if matrix() repacked the same tensor before
  /// (tied embeddings: ask for the output matrix first).
  kernels::MatrixView embedding(const std::string& name, int64_t n_embd, int64_t n_vocab);

  /// Bytes of the matrices this object rewrote into a repacked layout (in place: no extra memory).
  uint64_t repacked_bytes() const { return repacked_bytes_; }

  /// The 1-D tensor `name` of `n` elements as F32. Throws Error if missing or mis-shaped.
  const float* vector(const std::string& name, int64_t n);
  /// As vector(), nullptr if missing.
  const float* vector_opt(const std::string& name, int64_t n);

  const gguf::File& file() const { return file_; }

 private:
  const gguf::TensorInfo& find(const std::string& name) const;
  void check_shape(const gguf::TensorInfo& t, std::vector<int64_t> ne) const;
  kernels::MatrixView view(const gguf::TensorInfo& t) const;
  kernels::MatrixView repacked_view(const gguf::TensorInfo& t);

  const gguf::File& file_;
  std::deque<std::vector<float>> owned_;  // converted 1-D tensors (stable addresses)
  uint64_t repacked_bytes_ = 0;
};

}  // namespace hearth::model

// Dynamic quantization (`hearth quantize --dynamic BPW`): the type of each tensor is picked from
// its measured sensitivity under a bits-per-weight budget, instead of llama-quantize's fixed
// mix rules (quant/mix.h). The idea of "dynamic" GGUFs, with the method written down:
//
//  1. Candidates: every tensor that a llama-quantize mix would quantize (should_quantize(),
//     formats.md §4.2) may take any type of a ladder (dynamic_ladder()) that hearth can
//     quantize to and whose block size divides the tensor's row length. Tensors that stay
//     F32/F16 in the mixes keep their type; user overrides (--tensor-type, ...) are fixed.
//  2. Sensitivity: for each tensor and candidate, the imatrix-weighted squared error of
//     quantizing it, E = Σ_rows Σ_j imp_j·(w_ij − ŵ_ij)², ŵ = to_float(quantize(w)) with the
//     quantizer `hearth quantize` uses (the weighted one when the tensor has an imatrix entry),
//     relative to the weighted signal S = Σ_rows Σ_j imp_j·w_ij². Since imp_j = E[x_j²] over the
//     calibration activations (formats.md §3.7), E/S estimates ‖ΔW·x‖²/‖W·x‖²: the
//     noise-to-signal ratio the quantization adds to the tensor's output (columns taken as
//     uncorrelated). Tensors without an entry (token_embd) use imp_j = 1.
//  3. Weights: how much a tensor's relative error counts (dynamic_weights()): by default its
//     share of the model's parameters, twice for a token_embd that is also the output head.
//  4. Allocation: minimise Σ_t weight_t·(E/S)_t(type_t) subject to Σ_t bytes_t(type_t) ≤
//     budget (allocate_types()): a multiple-choice knapsack, solved exactly by dynamic
//     programming when it is small enough, else by Lagrangian relaxation (greedy on each
//     tensor's lower convex hull of (bytes, error)) followed by a greedy fill of what is left.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/mix.h"
#include "quant/quantize_file.h"
#include "quant/types.h"

namespace hearth::quant {

/// One rung of the candidate ladder.
struct DynamicLadderEntry {
  GgmlType type;
  bool needs_imatrix;      ///< only offered for tensors with an imatrix entry (the lattice i-quants)
  bool small_blocks_only;  ///< only offered when the rows are not whole 256-element super-blocks
};

/// The candidate ladder, in rising bits per weight: IQ2_XXS, IQ2_XS, IQ2_S, Q2_K, IQ3_XXS, Q3_K,
/// IQ3_S, IQ4_XS, Q4_K, Q5_K, Q6_K, Q8_0, and for rows that are not whole super-blocks IQ4_NL,
/// Q5_0, Q5_1. Types without a quantizer in hearth yet (traits().from_float == nullptr) are in
/// the table but skipped by dynamic_candidates(), so a new quantizer joins the ladder by itself.
const std::vector<DynamicLadderEntry>& dynamic_ladder();

/// The candidate types of a tensor whose rows have `ne0` elements (ladder order): ladder entries
/// with a quantizer whose block size divides `ne0`, minus the needs_imatrix ones when
/// `has_importance` is false and the small_blocks_only ones when `ne0` is a multiple of QK_K.
/// May be empty (then the tensor is written as F16, as llama-quantize's shape fallback does).
std::vector<GgmlType> dynamic_candidates(int64_t ne0, bool has_importance);

/// Importance-weighted squared error of quantizing rows, and the weighted signal it is measured
/// against (both Σ over rows and columns).
struct WeightedError {
  double error = 0;   ///< Σ imp_j·(w_ij − ŵ_ij)²
  double signal = 0;  ///< Σ imp_j·w_ij²
  /// error / signal (0 when the signal is 0).
  double relative() const { return signal > 0 ? error / signal : 0.0; }
};

/// Quantizes `n_rows` rows of `ne0` f32 values (`rows`, row-major) to `type` and back, and
/// returns the weighted error. `imp` holds [n_mat][ne0] per-column importance values (≥ 0) or is
/// null (all ones); row r uses matrix `row_matrix[r]` (null: matrix 0 for every row). With `imp`
/// and a weighted quantizer for `type` (quant/quantize_weighted.h) the rows are quantized with
/// it, else with the reference quantizer, as quantize_file() does. Rows are spread over
/// `n_threads` threads (0: all cores); the sum is taken in row order, so the result does not
/// depend on the thread count. Throws Error if `type` has no quantizer or dequantizer, or its
/// block size does not divide `ne0`.
WeightedError weighted_error(GgmlType type, const float* rows, int64_t n_rows, int64_t ne0, const float* imp,
                             const int32_t* row_matrix, int n_threads);

/// One choice for one item of the allocation problem.
struct AllocationOption {
  uint64_t bytes = 0;  ///< what the choice costs
  double error = 0;    ///< what it contributes to the objective (≥ 0)
};

/// How allocate_types() solves the problem.
enum class AllocationMethod {
  kAuto,        ///< kExact when its table has at most kExactCells cells, else kLagrangian
  kExact,       ///< dynamic programming over the budget in units of the gcd of the extra costs
  kLagrangian,  ///< greedy on the lower convex hulls, then a greedy fill of the leftover bytes
};

/// Cells (items × budget units) up to which kAuto uses the exact method: one byte of memory each.
inline constexpr uint64_t kExactCells = uint64_t{64} << 20;

/// Picks one option per item (`items[t]`: its options) minimising Σ error subject to Σ bytes ≤
/// `budget_bytes`; returns the index of the chosen option per item. Options that are no cheaper
/// and no better than another option of their item are never chosen. kExact is optimal;
/// kLagrangian is optimal for budgets that fall on the greedy's breakpoints and otherwise within
/// the largest error drop of one item. Throws Error if an item has no option or an error that is
/// not finite and ≥ 0, if even the cheapest options exceed the budget, or if kExact is asked for
/// a table larger than 16·kExactCells or an item with over 256 options.
std::vector<size_t> allocate_types(const std::vector<std::vector<AllocationOption>>& items, uint64_t budget_bytes,
                                   AllocationMethod method = AllocationMethod::kAuto);

/// How a tensor's relative error counts in the objective (dynamic_weights()).
enum class DynamicWeighting {
  kParameters,  ///< by the tensor's share of the quantized parameters, per role it plays
  kTensor,      ///< every tensor's relative output error counts the same (weight 1)
};

/// One tensor of a dynamic plan.
struct DynamicTensor {
  size_t index = 0;          ///< index in the input file's tensor table
  std::string name;
  GgmlType from = GgmlType::F32;
  int64_t n_elements = 0;
  int64_t n_rows = 0;        ///< rows of ne0 elements (over all experts)
  int64_t sampled_rows = 0;  ///< rows the sensitivity was measured on (0 before measuring)
  bool fixed = false;        ///< a user override or no candidate: `types` has one entry
  std::vector<GgmlType> types;    ///< candidates, ladder order
  std::vector<uint64_t> bytes;    ///< bytes of the tensor in each candidate type
  std::vector<double> rel_error;  ///< measured E/S per candidate (empty before measuring; 0 if fixed)
  size_t chosen = 0;              ///< index into `types` after allocation
};

/// The tensors a dynamic quantization chooses types for, their measured sensitivities and the
/// allocation.
struct DynamicPlan {
  std::vector<DynamicTensor> tensors;  ///< the quantized tensors (should_quantize()), loader order
  uint64_t n_elements = 0;             ///< Σ n_elements of `tensors`
  uint64_t budget_bytes = 0;           ///< the budget of the last allocation
  bool tied_output = false;            ///< the file has no output.weight: token_embd is the output too

  /// Bits per weight of `tensors` when each takes its cheapest / dearest candidate.
  double min_bits_per_weight() const;
  double max_bits_per_weight() const;
  /// Bytes and bits per weight of `tensors` in their chosen types.
  uint64_t bytes() const;
  double bits_per_weight() const { return n_elements ? 8.0 * static_cast<double>(bytes()) / n_elements : 0.0; }
  /// The chosen type of every tensor, for QuantizeParams::tensor_types.
  std::map<std::string, GgmlType> types() const;
  /// The file type written in general.file_type: the one named after the type that holds the
  /// most parameters (Q4_K -> Q4_K_M, Q3_K -> Q3_K_M, Q5_K -> Q5_K_M, Q8_0 -> Q8_0, ...).
  FileType file_type() const;
};

/// The tensors of `in` that `params` would quantize, each with its candidates and their sizes
/// (no measuring yet). Overrides in `params.mix` (--tensor-type, --token-embedding-type,
/// --output-tensor-type) fix a tensor's type; `leave_output` keeps output.weight out. Throws
/// Error for an input type hearth cannot read, a quantized input without
/// `params.allow_requantize`, an override whose block size does not divide ne0, a bad imatrix
/// entry (see tensor_importance()), or a file with nothing to quantize.
DynamicPlan dynamic_candidates(const gguf::File& in, const QuantizeParams& params);

/// Called after each tensor is measured: (tensors done, total, the tensor).
using DynamicProgress = std::function<void(size_t done, size_t total, const DynamicTensor& t)>;

/// Default number of elements a tensor's sensitivity is measured on: rows beyond it are sampled.
inline constexpr int64_t kDynamicSampleElements = int64_t{1} << 20;

/// Measures rel_error of every candidate of every non-fixed tensor of `plan` with
/// weighted_error() and the imatrix of `params` (tensor_importance()). A tensor with more than
/// `max_sample_elements` elements is measured on a deterministic sample: max(1,
/// max_sample_elements / ne0) rows, row k of n being ⌊k·n_rows / n⌋, evenly spread over the rows
/// and experts. Uses `params.n_threads` threads. Throws Error as weighted_error().
void measure_sensitivity(const gguf::File& in, const QuantizeParams& params, DynamicPlan& plan,
                         int64_t max_sample_elements = kDynamicSampleElements,
                         const DynamicProgress& progress = nullptr);

/// The weight of each tensor of a plan in the objective Σ_t weight_t·rel_error_t.
/// kParameters: n_t / N (N = plan.n_elements), the assumption being that every parameter matters
/// as much as any other relative to its own size, so that a relative error ε of a tensor costs
/// ε times its share of the model; token_embd counts twice when it is also the output head
/// (`tied_output`), once per role. kTensor: 1 for every tensor.
std::vector<double> dynamic_weights(const DynamicPlan& plan, DynamicWeighting weighting);

/// Sets `chosen` of every tensor of a measured plan: allocate_types() with options (bytes,
/// dynamic_weights()_t · rel_error) and budget ⌊bits_per_weight · n_elements / 8⌋ bytes. Throws
/// Error naming the reachable range when `bits_per_weight` is below min_bits_per_weight() or above
/// max_bits_per_weight(), or if the plan was not measured.
void allocate_dynamic(DynamicPlan& plan, double bits_per_weight,
                      DynamicWeighting weighting = DynamicWeighting::kParameters);

/// As allocate_dynamic() with a budget in bytes (e.g. what a fixed mix takes for the same
/// tensors). Throws Error if the budget is outside the reachable range.
void allocate_dynamic_bytes(DynamicPlan& plan, uint64_t budget_bytes,
                            DynamicWeighting weighting = DynamicWeighting::kParameters);

/// Bytes that the fixed mix `params` (no tensor_types) gives to the tensors of `plan`: the
/// budget of `--dynamic MIX`. Throws Error as plan_quantization().
uint64_t mix_bytes(const gguf::File& in, const QuantizeParams& params, const DynamicPlan& plan);

}  // namespace hearth::quant

// Importance matrices (llama-imatrix): per weight matrix the sum of squared activations per
// input column, collected while evaluating calibration text, and used as per-column error
// weights by the importance-weighted quantizers (quant/quantize_weighted.h).
// Source: ../shared/docs/formats.md §3.7 (meaning, collection, GGUF and legacy .dat files,
// use at quantization).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hearth::quant {

/// Accumulated statistics of one weight (formats.md §3.7).
struct ImatrixEntry {
  int64_t n_in = 0;              ///< input columns of the weight (its ne0)
  int64_t n_mat = 1;             ///< matrices: 1, or the number of experts of an MoE stack
  std::vector<float> in_sum2;    ///< [n_mat][n_in] raw Σx² per column (per expert)
  std::vector<float> counts;     ///< [n_mat] activation rows accumulated (per expert)
};

/// An importance matrix: entries by weight name plus the metadata of llama.cpp's files.
class Imatrix {
 public:
  /// Fewest activation rows a multiplication needs to be collected (formats.md §3.7).
  static constexpr int64_t kMinRows = 16;

  std::map<std::string, ImatrixEntry> entries;  ///< sorted by weight name
  std::vector<std::string> datasets;            ///< calibration file names
  uint32_t chunk_count = 0;                     ///< chunks (windows) evaluated
  uint32_t chunk_size = 0;                      ///< tokens per chunk

  /// Whether llama-imatrix collects a multiplication with weight `weight_name` and a batch of
  /// `n_rows` activation rows: names starting with "blk." and n_rows ≥ kMinRows.
  static bool wants(const std::string& weight_name, int64_t n_rows);

  /// Adds Σx² over the `n_rows` rows of x ([n_rows][n_in] f32, contiguous) to the entry of
  /// `weight_name` (created with n_mat = 1) and n_rows to its count. Throws Error if the entry
  /// exists with another n_in or more than one matrix.
  void accumulate(const std::string& weight_name, const float* x, int64_t n_rows, int64_t n_in);

  /// Adds Σx² over the `n_rows` rows of x ([n_rows][n_in] f32) routed to expert `expert` of the
  /// MoE stack `weight_name` (n_expert matrices) to that expert's part of the entry, created with
  /// n_mat = n_expert, and n_rows to its count (formats.md §3.7: MUL_MAT_ID is collected per
  /// selected expert; unused experts keep count 0). Throws Error if the entry exists with another
  /// shape or `expert` is out of range.
  void accumulate_expert(const std::string& weight_name, int64_t expert, int64_t n_expert, const float* x,
                         int64_t n_rows, int64_t n_in);

  /// The entry of `name`, or nullptr.
  const ImatrixEntry* find(const std::string& name) const;

  /// Per-column error weights of `name` (formats.md §3.7 "Loading"): [n_mat][n_in] values
  /// in_sum2/count per matrix; matrices with count 0 get all ones. Empty if there is no entry.
  std::vector<float> importance(const std::string& name) const;

  /// Writes llama.cpp's GGUF imatrix file (formats.md §3.7): `general.type` = "imatrix",
  /// `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`, and per entry (sorted by
  /// name) the F32 tensors `<name>.in_sum2` {n_in, n_mat} and `<name>.counts` {1, n_mat}.
  /// Throws Error on an I/O failure or an inconsistent entry.
  void write(const std::string& path) const;

  /// Reads a GGUF imatrix or, when the file does not start with the GGUF magic, a legacy
  /// `.dat` file (see read_legacy()). Throws Error naming the file and what is wrong.
  static Imatrix read(const std::string& path);

  /// Reads a GGUF imatrix file. Throws Error for a missing metadata key (the three imatrix.*
  /// keys are required, as llama-quantize does), a tensor without its pair, a tensor that is not
  /// F32 or has the wrong shape, a negative or non-finite value, or a tensor name without the
  /// `.in_sum2` / `.counts` suffix.
  static Imatrix read_gguf(const std::string& path);

  /// Reads llama.cpp's legacy `.dat` format (little-endian): i32 n_entries; per entry i32
  /// name_len, name, i32 ncall, i32 nval, f32 values[nval]; optionally i32 chunk_count, i32
  /// dataset_len, dataset bytes. Values are (Σx²/count)·ncall, so each entry becomes n_mat = 1,
  /// in_sum2 = values, counts = ncall (ncall 0: all-ones importance). Throws Error for a
  /// truncated file, negative or absurd lengths, or non-finite values.
  static Imatrix read_legacy(const std::string& path);
};

}  // namespace hearth::quant

// A loaded model: the mmap'd GGUF file, its hyper-parameters, tokenizer and bound
// architecture. Weights stay in the mapping (design.md "Rules of the house").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace hearth::model {

/// A model file ready to run. Immutable after load, so one Model may serve many contexts
/// and threads.
class Model {
 public:
  /// Opens and validates `path`, reads the hyper-parameters and the tokenizer, and binds the
  /// architecture's tensors. Throws Error: missing file, not GGUF, unsupported architecture
  /// or tensor type, missing or mis-shaped tensors, bad tokenizer metadata.
  static std::shared_ptr<const Model> load(const std::string& path);
  /// Loads an already opened file (see load()).
  static std::shared_ptr<const Model> from_file(gguf::File file);
  /// Loads hearth's embedded default model (hearth-kjv, Q8_0; models/README.md), which is
  /// compiled into the program.
  static std::shared_ptr<const Model> load_default();

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const gguf::File& file() const { return file_; }
  const HParams& hparams() const { return hp_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  const Architecture& arch() const { return *arch_; }

  /// Total number of weights (elements of every tensor in the file).
  uint64_t n_params() const;
  /// Total bytes of tensor data in the file.
  uint64_t n_weight_bytes() const;

 private:
  explicit Model(gguf::File file);

  gguf::File file_;
  HParams hp_;
  std::unique_ptr<Weights> weights_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<Architecture> arch_;
};

}  // namespace hearth::model

#include "model/model.h"

#include "model/embedded.h"

namespace hearth::model {

Model::Model(gguf::File file) : file_(std::move(file)) {
  hp_ = HParams::read(file_);
  tokenizer_ = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_gguf(file_));
  if (tokenizer_->n_vocab() != static_cast<int32_t>(hp_.n_vocab))
    throw Error(file_.path() + ": the tokenizer has " + std::to_string(tokenizer_->n_vocab()) +
                " tokens but the model's vocabulary size is " + std::to_string(hp_.n_vocab));
  weights_ = std::make_unique<Weights>(file_);
  arch_ = make_architecture(hp_, *weights_);
}

std::shared_ptr<const Model> Model::load(const std::string& path) { return from_file(gguf::File::open(path)); }

std::shared_ptr<const Model> Model::from_file(gguf::File file) {
  return std::shared_ptr<const Model>(new Model(std::move(file)));
}

std::shared_ptr<const Model> Model::load_default() {
  const std::span<const uint8_t> bytes = embedded_default_model();
  return from_file(gguf::File::from_static(bytes.data(), bytes.size(), std::string(embedded_default_model_name())));
}

uint64_t Model::n_params() const {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : file_.tensors()) n += static_cast<uint64_t>(t.n_elements());
  return n;
}

uint64_t Model::n_weight_bytes() const {
  uint64_t n = 0;
  for (const gguf::TensorInfo& t : file_.tensors()) n += t.nbytes;
  return n;
}

}  // namespace hearth::model

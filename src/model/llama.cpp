// Architecture `llama` (Llama 3.0-3.3): architectures.md §2. A dense decoder with
// adjacent-pair (NORM) RoPE whose angles are divided by `rope_freqs.weight` (llama3
// frequency scaling) when the file has it.
#include "model/arch.h"
#include "model/dense_decoder.h"

namespace hearth::model {

std::unique_ptr<Architecture> make_llama(const HParams& hp, Weights& w) {
  if (hp.n_expert > 0) throw Error(w.file().path() + ": llama mixture-of-experts models are not supported yet");
  if (hp.n_rot != hp.head_dim_k)
    throw Error(w.file().path() + ": llama.rope.dimension_count (" + std::to_string(hp.n_rot) +
                ") must equal the head dimension (" + std::to_string(hp.head_dim_k) + ")");
  DenseOptions opt;
  opt.rope_mode = kernels::RopeMode::kNorm;
  opt.rope_freqs = true;
  return std::make_unique<DenseDecoder>(hp, w, opt);
}

}  // namespace hearth::model

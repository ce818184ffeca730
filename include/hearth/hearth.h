// hearth's public C++ API: load a model, tokenize, create a context, decode, sample.
//
//     auto model = hearth::Model::load("model.gguf");             // throws hearth::Error
//     std::vector<int32_t> prompt = model->tokenizer().encode("Hello", true, false);
//     hearth::Context ctx(model, {.n_ctx = 4096});
//     hearth::Batch batch;
//     for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], i, 0, i + 1 == prompt.size());
//     ctx.decode(batch);
//     hearth::Sampler sampler({.temp = 0.8f, .seed = 42});
//     int32_t next = sampler.sample(ctx.logits(prompt.size() - 1));
//     hearth::StreamDecoder text(model->tokenizer());
//     std::cout << text.push(next);
//
// Every type here is documented where it is defined (src/<module>/...); this header names
// the ones meant for programs that embed hearth. Errors are hearth::Error with a one-line
// message naming what is wrong.
#pragma once

#include "hearth/error.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/eval.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace hearth {

using Model = model::Model;                    ///< a loaded GGUF model (immutable, shareable)
using HParams = model::HParams;                ///< its hyper-parameters
using Tokenizer = tokenizer::Tokenizer;        ///< text <-> token ids
using StreamDecoder = tokenizer::StreamDecoder;///< token ids -> UTF-8-safe text chunks
using Context = runtime::Context;              ///< KV cache + threads for one model
using ContextParams = runtime::ContextParams;  ///< n_ctx, n_ubatch, n_threads
using Batch = runtime::Batch;                  ///< tokens with position, sequence, logits flag
using Sampler = sample::Sampler;               ///< penalties, top-k/p, min-p, temperature, seed
using SamplerParams = sample::SamplerParams;

}  // namespace hearth

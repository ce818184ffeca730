// hearth-export: writes a GGUF file with hearth's own writer from
//   - a SentencePiece vocabulary (the `.vocab` text file spm_train writes: "piece<TAB>score"
//     per line, ids in line order), stored the way llama.cpp stores an SPM vocabulary
//     (formats.md §5.1-5.3: tokenizer.ggml.model "llama", tokens, scores, token types), and
//   - optionally a model: a JSON config (architecture hyper-parameters, general.* metadata,
//     the tensor list with ggml shapes and byte offsets) and one raw little-endian float32
//     file holding the tensors. 2-D tensors are stored as --type (F32, F16, Q8_0, ...),
//     1-D tensors (norms) as F32.
//
//   hearth-export --spm-vocab tokenizer.vocab -o vocab.gguf
//   hearth-export --spm-vocab tokenizer.vocab --config model.json --weights model.f32 --type Q8_0 -o model.gguf
//
// A developer tool for the demo model (tools/kjv/); not part of the hearth program.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "hearth/error.h"
#include "quant/types.h"

namespace {

using hearth::Error;
using hearth::gguf::Value;
using hearth::gguf::Writer;
namespace quant = hearth::quant;

// tokenizer.ggml.token_type values (formats.md §5.2).
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6;

void add_spm_vocab(Writer& w, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::string line;
  while (std::getline(in, line)) {
    const size_t tab = line.rfind('\t');
    if (tab == std::string::npos) throw Error(path + ": line " + std::to_string(tokens.size() + 1) + " has no tab");
    std::string piece = line.substr(0, tab);
    float score = 0;
    try {
      score = std::stof(line.substr(tab + 1));
    } catch (const std::exception&) {
      throw Error(path + ": line " + std::to_string(tokens.size() + 1) + " has no score");
    }
    int32_t type = kNormal;
    if (piece == "<unk>") type = kUnknown;
    else if (piece == "<s>" || piece == "</s>") type = kControl;
    else if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>') type = kByte;
    tokens.push_back(std::move(piece));
    scores.push_back(score);
    types.push_back(type);
  }
  if (tokens.size() < 259 || tokens[0] != "<unk>" || tokens[1] != "<s>" || tokens[2] != "</s>")
    throw Error(path + ": expected <unk>, <s>, </s> as ids 0-2 and the 256 byte tokens (spm_train --byte_fallback)");
  w.set("tokenizer.ggml.model", Value::of("llama"));
  w.set("tokenizer.ggml.pre", Value::of("default"));
  w.set("tokenizer.ggml.tokens", Value::array(tokens));
  w.set("tokenizer.ggml.scores", Value::array(scores));
  w.set("tokenizer.ggml.token_type", Value::array(types));
  w.set("tokenizer.ggml.bos_token_id", Value::of(uint32_t{1}));
  w.set("tokenizer.ggml.eos_token_id", Value::of(uint32_t{2}));
  w.set("tokenizer.ggml.unknown_token_id", Value::of(uint32_t{0}));
  w.set("tokenizer.ggml.add_bos_token", Value::of(true));
  w.set("tokenizer.ggml.add_eos_token", Value::of(false));
  w.set("tokenizer.ggml.add_space_prefix", Value::of(true));
}

// A JSON scalar as a GGUF value: strings, booleans, unsigned integers as UINT32, other
// numbers as FLOAT32 (the types llama.cpp's loader expects for hyper-parameters).
Value to_value(const std::string& key, const nlohmann::json& v) {
  if (v.is_string()) return Value::of(v.get<std::string>());
  if (v.is_boolean()) return Value::of(v.get<bool>());
  if (v.is_number_unsigned()) return Value::of(v.get<uint32_t>());
  if (v.is_number()) return Value::of(v.get<float>());
  if (v.is_array() && !v.empty() && v[0].is_string()) return Value::array(v.get<std::vector<std::string>>());
  throw Error("metadata key '" + key + "': unsupported JSON value " + v.dump());
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  uint64_t offset;  // bytes into the weights file
};

void add_model(Writer& w, const std::string& config_path, quant::GgmlType type, std::vector<TensorSpec>& tensors) {
  std::ifstream in(config_path);
  if (!in) throw Error(config_path + ": cannot open");
  const nlohmann::json cfg = nlohmann::json::parse(in);
  for (const auto& [k, v] : cfg.at("metadata").items()) w.set(k, to_value(k, v));
  w.set("general.file_type", Value::of(type == quant::GgmlType::F32    ? uint32_t{0}
                                       : type == quant::GgmlType::F16  ? uint32_t{1}
                                       : type == quant::GgmlType::Q8_0 ? uint32_t{7}
                                                                       : uint32_t{1024}));
  w.set("general.quantization_version", Value::of(uint32_t{2}));
  for (const auto& t : cfg.at("tensors")) {
    TensorSpec s{t.at("name"), t.at("shape").get<std::vector<int64_t>>(), t.at("offset")};
    const quant::GgmlType tt = s.ne.size() >= 2 ? type : quant::GgmlType::F32;
    w.add_tensor(s.name, tt, s.ne);
    tensors.push_back(std::move(s));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hearth-export: write a GGUF model or vocabulary with hearth's GGUF writer"};
  std::string vocab, config, weights, out, type_name = "F16";
  app.add_option("--spm-vocab", vocab, "SentencePiece .vocab file")->required();
  app.add_option("--config", config, "model config JSON (hyper-parameters, metadata, tensor list)");
  app.add_option("--weights", weights, "raw little-endian float32 tensors");
  app.add_option("--type", type_name, "type of the 2-D tensors (F32, F16, Q8_0, ...)");
  app.add_option("-o,--output", out, "GGUF file to write")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    Writer w;
    std::vector<TensorSpec> tensors;
    const auto type = quant::type_from_name(type_name);
    if (!type) throw Error("unknown type '" + type_name + "'");
    if (!config.empty()) {
      if (weights.empty()) throw Error("--config needs --weights");
      add_model(w, config, *type, tensors);
    }
    add_spm_vocab(w, vocab);
    w.begin(out);
    std::ifstream raw;
    if (!tensors.empty()) {
      raw.open(weights, std::ios::binary);
      if (!raw) throw Error(weights + ": cannot open");
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& info = w.tensors()[i];
      const quant::TypeTraits& tt = quant::traits(info.type);
      std::vector<float> f(static_cast<size_t>(info.n_elements()));
      raw.seekg(static_cast<std::streamoff>(tensors[i].offset));
      raw.read(reinterpret_cast<char*>(f.data()), static_cast<std::streamsize>(f.size() * sizeof(float)));
      if (!raw) throw Error(weights + ": too short for tensor '" + info.name + "'");
      std::vector<uint8_t> bytes(info.nbytes);
      const int64_t row = info.ne[0], rows = info.n_elements() / row;
      const size_t row_bytes = quant::row_size(info.type, row);
      for (int64_t r = 0; r < rows; ++r) tt.from_float(f.data() + r * row, bytes.data() + r * row_bytes, row);
      w.write_data(bytes);
    }
    w.finish();
    std::fprintf(stderr, "wrote %s: %zu tensors, %zu metadata keys\n", out.c_str(), tensors.size(), w.metadata().size());
  } catch (const Error& e) {
    std::fprintf(stderr, "hearth-export: error: %s\n", e.what());
    return 1;
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "hearth-export: error: %s: %s\n", config.c_str(), e.what());
    return 1;
  }
  return 0;
}

// hearth's default model, compiled into the library (models/hearth-kjv-Q8_0.gguf).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace hearth::model {

/// The bytes of the embedded GGUF file (64-byte aligned, read-only, valid for the program's life).
std::span<const uint8_t> embedded_default_model();

/// The name it goes by in messages: "<embedded hearth-kjv-Q8_0.gguf>".
std::string_view embedded_default_model_name();

}  // namespace hearth::model

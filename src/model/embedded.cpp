// Embeds the default model file (HEARTH_DEFAULT_MODEL_FILE, set by CMake) in read-only data
// with the assembler's .incbin: no copy at start-up, and the mapping stays valid forever.
#include "model/embedded.h"

#ifndef HEARTH_DEFAULT_MODEL_FILE
#error "HEARTH_DEFAULT_MODEL_FILE must name the GGUF file to embed"
#endif

__asm__(".section .rodata.hearth_default_model,\"a\",@progbits\n"
        ".balign 64\n"
        ".global hearth_default_model_begin\n"
        "hearth_default_model_begin:\n"
        ".incbin \"" HEARTH_DEFAULT_MODEL_FILE "\"\n"
        ".global hearth_default_model_end\n"
        "hearth_default_model_end:\n"
        ".byte 0\n"
        ".previous\n");

extern "C" const uint8_t hearth_default_model_begin[];
extern "C" const uint8_t hearth_default_model_end[];

namespace hearth::model {

std::span<const uint8_t> embedded_default_model() {
  return {hearth_default_model_begin, static_cast<size_t>(hearth_default_model_end - hearth_default_model_begin)};
}

std::string_view embedded_default_model_name() { return "<embedded hearth-kjv-Q8_0.gguf>"; }

}  // namespace hearth::model

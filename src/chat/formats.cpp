// Family detection and per-family markers (formats.h).
#include "chat/formats.h"

namespace hearth::chat {
namespace {

bool has(std::string_view source, std::string_view what) { return source.find(what) != std::string_view::npos; }

}  // namespace

const char* family_name(Family family) {
  switch (family) {
    case Family::Generic: return "generic";
    case Family::Qwen3: return "qwen3";
    case Family::Qwen35: return "qwen3.5";
    case Family::Llama3: return "llama3";
    case Family::Llama4: return "llama4";
    case Family::Gemma4: return "gemma4";
    case Family::DeepSeekR1: return "deepseek-r1";
    case Family::Mistral: return "mistral";
  }
  return "generic";
}

const std::vector<Family>& all_families() {
  static const std::vector<Family> families = {Family::Generic, Family::Qwen3,  Family::Qwen35,     Family::Llama3,
                                               Family::Llama4,  Family::Gemma4, Family::DeepSeekR1, Family::Mistral};
  return families;
}

std::optional<Family> family_from_name(std::string_view name) {
  for (Family f : all_families())
    if (name == family_name(f)) return f;
  return std::nullopt;
}

Family detect_family(std::string_view source) {
  if (has(source, "<｜tool▁calls▁begin｜>") || has(source, "<｜Assistant｜>")) return Family::DeepSeekR1;
  if (has(source, "<|tool_call>") || has(source, "<|turn>") || has(source, "<|channel>")) return Family::Gemma4;
  if (has(source, "<tool_call>")) return has(source, "<function=") ? Family::Qwen35 : Family::Qwen3;
  if (has(source, "<|header_start|>") || has(source, "<|python_start|>")) return Family::Llama4;
  if (has(source, "<|start_header_id|>")) return Family::Llama3;
  if (has(source, "[TOOL_CALLS]") || has(source, "[INST]")) return Family::Mistral;
  return Family::Generic;
}

ThinkingSwitch detect_thinking_switch(Family family, std::string_view source) {
  if (has(source, "enable_thinking")) return ThinkingSwitch::TemplateVariable;
  if (family == Family::Qwen3 && has(source, "<think>")) return ThinkingSwitch::SoftSwitch;
  return ThinkingSwitch::None;
}

ThinkingMarkers thinking_markers(Family family) {
  switch (family) {
    case Family::Generic:
    case Family::Qwen3:
    case Family::Qwen35:
    case Family::DeepSeekR1: return {"<think>", "</think>", "\n</think>\n\n"};
    case Family::Gemma4: return {"<|channel>thought", "<channel|>", "<channel|>"};
    case Family::Mistral: return {"[THINK]", "[/THINK]", "[/THINK]"};
    case Family::Llama3:
    case Family::Llama4: return {};
  }
  return {};
}

}  // namespace hearth::chat

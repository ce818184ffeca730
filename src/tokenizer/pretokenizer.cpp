// BPE pre-tokenizers: the table of formats.md §5.7 and its PCRE2 engine (§5.8).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <cstdio>
#include <optional>
#include <utility>

#include "hearth/error.h"
#include "tokenizer/unicode.h"

namespace hearth::tokenizer {

namespace {

// ---- the regex lists of formats.md §5.7, verbatim (llama.cpp spellings) ----
// The comment above each list names every pre-type that uses it.

// LLAMA3 ← `llama3`, `llama-v3`, `llama-bpe`, `falcon3`, `falcon-h1`, `pixtral`, `midm-2.0`, `lfm2`, `jina-v5-nano` [ignore_merges, add_bos]
constexpr std::string_view kLlama3[] = {
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// JAIS2 ← `jais-2`
constexpr std::string_view kJais2[] = {
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1})re",
};
// DEEPSEEK_LLM ← `deepseek-llm` [clean_spaces off]
constexpr std::string_view kDeepseekLlm[] = {
    R"re([\r\n])re",
    R"re(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)re",
    R"re(\s?[!-/:-~！-／：-～‘-‟　-。]+)re",
    R"re(\s+$)re",
    R"re([一-龥ࠀ-一가-퟿]+)re",
    R"re(\p{N}+)re",
};
// DEEPSEEK3_LLM ← `deepseek-v3` [clean_spaces off] · HUNYUAN_DENSE ← `hunyuan-dense` [clean_spaces off] · JOYAI_LLM ← `joyai-llm` [clean_spaces off]
constexpr std::string_view kDeepseek3Llm[] = {
    R"re(\p{N}{1,3})re",
    R"re([一-龥぀-ゟ゠-ヿ]+)re",
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// YOUTU ← `youtu` [clean_spaces off, ignore_merges]
constexpr std::string_view kYoutu[] = {
    R"re([가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+)re",
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// DEEPSEEK_CODER ← `deepseek-coder` [clean_spaces off]
constexpr std::string_view kDeepseekCoder[] = {
    R"re([\r\n])re",
    R"re(\s?\p{L}+)re",
    R"re(\s?\p{P}+)re",
    R"re([一-龥ࠀ-一가-퟿]+)re",
    R"re(\p{N})re",
};
// FALCON ← `falcon`
constexpr std::string_view kFalcon[] = {
    R"re([\p{P}\$\+<=>\^~\|`]+)re",
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re",
    R"re([0-9][0-9][0-9])re",
};
// STARCODER ← `starcoder` · REFACT ← `refact` · COMMAND_R ← `command-r` [clean_spaces off] · SMOLLM ← `smollm` [clean_spaces off] · CODESHELL ← `codeshell` · EXAONE ← `exaone` · MINERVA ← `minerva-7b` · MELLUM2 ← `mellum2`
constexpr std::string_view kStarcoder[] = {
    R"re(\p{N})re",
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re",
};
// GPT2 ← `gpt-2`, `phi-2`, `jina-es`, `jina-de`, `gigachat`, `jina-v2-es`, `jina-v2-de`, `a.x-4.0`, `mellum`, `modern-bert`; `jina-v1-en`, `jina-v2-code`, `roberta-bpe` [add_sep]; `exaone4` · MPT ← `mpt` · OLMO ← `olmo` · JAIS ← `jais` · TRILLION ← `trillion` [clean_spaces off] · GRANITE_DOCLING ← `granite-docling` [clean_spaces off]
constexpr std::string_view kGpt2[] = {
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re",
};
// STABLELM2 ← `stablelm2` · QWEN2 ← `qwen2`, `deepseek-r1-qwen`, `kormo`, `f2llmv2` [clean_spaces off]; `megrez` · HUNYUAN ← `hunyuan` [clean_spaces off] · SOLAR_OPEN ← `solar-open` [clean_spaces off]
constexpr std::string_view kQwen2[] = {
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// QWEN35 ← `qwen35` [clean_spaces off]
constexpr std::string_view kQwen35[] = {
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// PORO ← `poro-chat` [clean_spaces off] · BLOOM ← `bloom` · GPT3_FINNISH ← `gpt3-finnish`
constexpr std::string_view kPoro[] = {
    R"re( ?[^(\s|.,!?…。，、।۔،)]+)re",
};
// VIKING ← `viking` [clean_spaces off]
constexpr std::string_view kViking[] = {
    R"re( ?[^(\s|.,!?…。，、।۔،)]+)re",
    R"re(\p{N})re",
};
// TEKKEN ← `tekken` [clean_spaces off, ignore_merges, add_bos]
constexpr std::string_view kTekken[] = {
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// CHAMELEON ← `chameleon` [add_bos, clean_spaces off]
constexpr std::string_view kChameleon[] = {
    R"re(<sentinel:[0-9]+>)re",
    R"re((IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z)re",
    R"re(([\t\n]|    |  ))re",
    R"re(\p{N})re",
    R"re([\p{P}!-/:-@\[-`{-~])re",
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re",
};
// GPT4O ← `gpt-4o`, `llama4`, `kanana2`, `talkie` [clean_spaces off] · MINIMAX_M2 ← `minimax-m2` [clean_spaces off]
constexpr std::string_view kGpt4o[] = {
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// GRANITE_EMB_MULTI ← `granite-embed-multi-97m` [clean_spaces off, ignore_merges]
constexpr std::string_view kGraniteEmbMulti[] = {
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// TINY_AYA ← `tiny_aya`, `cohere2moe` [clean_spaces off]
constexpr std::string_view kTinyAya[] = {
    R"re(\d{1,3}(?=(?:\d{3})*\b))re",
    R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// KIMI_K2 ← `kimi-k2` [clean_spaces off]
constexpr std::string_view kKimiK2[] = {
    R"re(\p{Han}+)re",
};
// SUPERBPE ← `superbpe` [clean_spaces off]
constexpr std::string_view kSuperbpe[] = {
    R"re(\p{N}+)re",
    R"re((?=(\d{3})+(?!\d)))re",
};
// BAILINGMOE ← `bailingmoe`, `bailingmoe2`, `llada-moe` [clean_spaces off]
constexpr std::string_view kBailingmoe[] = {
    R"re('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re",
};
// SEED_CODER ← `seed-coder` [clean_spaces off]
constexpr std::string_view kSeedCoder[] = {
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// AFMOE ← `afmoe` [clean_spaces off]
constexpr std::string_view kAfmoe[] = {
    R"re(\p{AFMoE_digits})re",
    R"re([一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+)re",
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// LAGUNA ← `laguna` [clean_spaces off]
constexpr std::string_view kLaguna[] = {
    R"re([^\n]+|[\n]+)re",
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// EXAONE_MOE ← `exaone-moe`
constexpr std::string_view kExaoneMoe[] = {
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)re",
};
// GEMMA4 ← `gemma4`, `granite-embed-multi-311m` [escape_whitespaces]; and any vocab with `tokenizer.ggml.model`=`gemma4` · *raw UTF-8 (no byte-to-unicode mapping)*
constexpr std::string_view kGemma4[] = {
    R"re([^\n]+|[\n]+)re",
};
// MINICPM5 ← `minicpm5` [ignore_merges]
constexpr std::string_view kMinicpm5[] = {
    R"re(\p{N}{1,3})re",
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re",
};
// WHITESPACE ← `whitespace` · *raw UTF-8 (no byte-to-unicode mapping)*
constexpr std::string_view kWhitespace[] = {
    R"re(\S+)re",
};
// DEFAULT ← `default`, or key missing/empty (llama.cpp warns)
constexpr std::string_view kDefault[] = {
    R"re([\p{P}\$\+<=>\^~\|]+)re",
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re",
    R"re(\p{N}+)re",
    R"re([0-9][0-9][0-9])re",
};
// ---- `tokenizer.ggml.pre` names → pre-type and flags (formats.md §5.7) ----

using namespace pre_flag;
constexpr uint32_t CS_OFF = CLEAN_SPACES_OFF;

template <size_t N>
constexpr std::span<const std::string_view> names(const std::string_view (&list)[N]) {
  return list;
}

constexpr std::string_view nLlama3[] = {"llama3",    "llama-v3", "llama-bpe", "falcon3",     "falcon-h1",
                                        "pixtral",   "midm-2.0", "lfm2",      "jina-v5-nano"};
constexpr std::string_view nJais2[] = {"jais-2"};
constexpr std::string_view nDbrx[] = {"dbrx"};
constexpr std::string_view nSmaug[] = {"smaug-bpe"};
constexpr std::string_view nDeepseekLlm[] = {"deepseek-llm"};
constexpr std::string_view nDeepseek3Llm[] = {"deepseek-v3"};
constexpr std::string_view nHunyuanDense[] = {"hunyuan-dense"};
constexpr std::string_view nJoyai[] = {"joyai-llm"};
constexpr std::string_view nYoutu[] = {"youtu"};
constexpr std::string_view nDeepseekCoder[] = {"deepseek-coder"};
constexpr std::string_view nFalcon[] = {"falcon"};
constexpr std::string_view nStarcoder[] = {"starcoder", "refact", "codeshell", "exaone", "minerva-7b",
                                           "mellum2"};
constexpr std::string_view nStarcoderCsOff[] = {"command-r", "smollm"};
constexpr std::string_view nGpt2[] = {"gpt-2",      "phi-2",      "jina-es", "jina-de", "gigachat",
                                      "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",  "modern-bert",
                                      "exaone4",    "mpt",        "olmo",    "jais"};
constexpr std::string_view nGpt2Sep[] = {"jina-v1-en", "jina-v2-code", "roberta-bpe"};
constexpr std::string_view nGpt2CsOff[] = {"trillion", "granite-docling"};
constexpr std::string_view nQwen2[] = {"stablelm2", "megrez"};
constexpr std::string_view nQwen2CsOff[] = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan",
                                            "solar-open", "grok-2"};
constexpr std::string_view nQwen35[] = {"qwen35"};
constexpr std::string_view nPoro[] = {"poro-chat"};
constexpr std::string_view nBloom[] = {"bloom", "gpt3-finnish"};
constexpr std::string_view nChatglm4[] = {"glm4", "chatglm-bpe"};
constexpr std::string_view nViking[] = {"viking"};
constexpr std::string_view nTekken[] = {"tekken"};
constexpr std::string_view nChameleon[] = {"chameleon"};
constexpr std::string_view nGpt4o[] = {"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"};
constexpr std::string_view nGraniteEmbMulti[] = {"granite-embed-multi-97m"};
constexpr std::string_view nTinyAya[] = {"tiny_aya", "cohere2moe"};
constexpr std::string_view nKimiK2[] = {"kimi-k2"};
constexpr std::string_view nSuperbpe[] = {"superbpe"};
constexpr std::string_view nBailingmoe[] = {"bailingmoe", "bailingmoe2", "llada-moe"};
constexpr std::string_view nSeedCoder[] = {"seed-coder"};
constexpr std::string_view nAfmoe[] = {"afmoe"};
constexpr std::string_view nLaguna[] = {"laguna"};
constexpr std::string_view nExaoneMoe[] = {"exaone-moe"};
constexpr std::string_view nGemma4[] = {"gemma4", "granite-embed-multi-311m"};
constexpr std::string_view nSarvamMoe[] = {"sarvam-moe"};
constexpr std::string_view nMinicpm5[] = {"minicpm5"};
constexpr std::string_view nWhitespace[] = {"whitespace"};
constexpr std::string_view nDefault[] = {"default"};

// Several pre-types share a regex list; the type column keeps the name formats.md gives the
// first of them (e.g. STARCODER also stands for REFACT, COMMAND_R, SMOLLM, ...).
const PreTokenizerSpec kTable[] = {
    {"LLAMA3", names(nLlama3), IGNORE_MERGES | ADD_BOS, kLlama3},
    {"JAIS2", names(nJais2), 0, kJais2},
    {"DBRX", names(nDbrx), 0, kLlama3},
    {"SMAUG", names(nSmaug), 0, kLlama3},
    {"DEEPSEEK_LLM", names(nDeepseekLlm), CS_OFF, kDeepseekLlm},
    {"DEEPSEEK3_LLM", names(nDeepseek3Llm), CS_OFF, kDeepseek3Llm},
    {"HUNYUAN_DENSE", names(nHunyuanDense), CS_OFF, kDeepseek3Llm},
    {"JOYAI_LLM", names(nJoyai), CS_OFF, kDeepseek3Llm},
    {"YOUTU", names(nYoutu), CS_OFF | IGNORE_MERGES, kYoutu},
    {"DEEPSEEK_CODER", names(nDeepseekCoder), CS_OFF, kDeepseekCoder},
    {"FALCON", names(nFalcon), 0, kFalcon},
    {"STARCODER", names(nStarcoder), 0, kStarcoder},
    {"STARCODER", names(nStarcoderCsOff), CS_OFF, kStarcoder},
    {"GPT2", names(nGpt2), 0, kGpt2},
    {"GPT2", names(nGpt2Sep), ADD_SEP, kGpt2},
    {"GPT2", names(nGpt2CsOff), CS_OFF, kGpt2},
    {"QWEN2", names(nQwen2), 0, kQwen2},
    {"QWEN2", names(nQwen2CsOff), CS_OFF, kQwen2},
    {"QWEN35", names(nQwen35), CS_OFF, kQwen35},
    {"PORO", names(nPoro), CS_OFF, kPoro},
    {"BLOOM", names(nBloom), 0, kPoro},
    // llama.cpp also clears the default BOS id for these names.
    {"CHATGLM4", names(nChatglm4), NO_BOS, kLlama3},
    {"VIKING", names(nViking), CS_OFF, kViking},
    {"TEKKEN", names(nTekken), CS_OFF | IGNORE_MERGES | ADD_BOS, kTekken},
    {"CHAMELEON", names(nChameleon), CS_OFF | ADD_BOS, kChameleon},
    {"GPT4O", names(nGpt4o), CS_OFF, kGpt4o},
    {"GRANITE_EMB_MULTI", names(nGraniteEmbMulti), CS_OFF | IGNORE_MERGES, kGraniteEmbMulti},
    {"TINY_AYA", names(nTinyAya), CS_OFF, kTinyAya},
    {"KIMI_K2", names(nKimiK2), CS_OFF, kKimiK2},
    {"SUPERBPE", names(nSuperbpe), CS_OFF, kSuperbpe},
    {"BAILINGMOE", names(nBailingmoe), CS_OFF, kBailingmoe},
    {"SEED_CODER", names(nSeedCoder), CS_OFF, kSeedCoder},
    {"AFMOE", names(nAfmoe), CS_OFF, kAfmoe},
    {"LAGUNA", names(nLaguna), CS_OFF, kLaguna},
    {"EXAONE_MOE", names(nExaoneMoe), 0, kExaoneMoe},
    {"GEMMA4", names(nGemma4), ESCAPE_WHITESPACES | RAW_UTF8, kGemma4},
    {"SARVAM_MOE", names(nSarvamMoe), ESCAPE_WHITESPACES | RAW_UTF8 | CS_OFF, kGemma4},
    {"MINICPM5", names(nMinicpm5), IGNORE_MERGES, kMinicpm5},
    {"WHITESPACE", names(nWhitespace), RAW_UTF8, kWhitespace},
    {"DEFAULT", names(nDefault), 0, kDefault},
};

// ---- substitutes, selected by the exact text of a table regex ----
//
// Two kinds: (1) regexes that llama.cpp does not run as regexes but through hand-written
// splitters (`\p{Han}+`, `\p{AFMoE_digits}`), replaced by regexes giving the same words; and
// (2) table regexes whose look-aheads would rescan a digit run from every position (quadratic
// time on long runs) or whose nested repeats need a JIT stack frame per character, replaced by
// equivalent linear-time forms. The tests compare every kind-(2) substitute with its original.

// The "Han" blocks of llama.cpp's Kimi-K2 splitter (formats.md §5.8).
#define HEARTH_HAN R"(\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2EBEF})" \
                   R"(\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F})"
#define HEARTH_CONTRACTIONS R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))"

struct Substitute {
  std::string_view original;
  std::string_view replacement;
};

constexpr Substitute kSubstitutes[] = {
    // KIMI_K2: the whole Kimi-K2 splitter. Han runs; runs of non-Han letters (no case
    // distinction, marks not included) after an optional non-letter/non-digit, with an optional
    // contraction; then the LLAMA3-style digit, punctuation and whitespace rules.
    {R"(\p{Han}+)",
     "[" HEARTH_HAN "]+"
     R"(|[^\r\n\p{L}\p{N}]?[^\P{L})" HEARTH_HAN "]+" HEARTH_CONTRACTIONS "?"
     R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},

    // AFMOE: runs of \p{N} are cut into a leading group of (length % 3) digits, then groups of
    // three. As in llama.cpp's splitter, the text before a run rides in the chunk of the run's
    // first group; text after the last run is a chunk of its own. The first alternative starts
    // a run (one look-ahead per run), the second continues it.
    {R"(\p{AFMoE_digits})",
     R"(\G\P{N}*+(?<!\p{N})\p{N}{1,3}(?=(?:\p{N}{3})*+(?!\p{N}))|\G\p{N}{3})"},

    // TINY_AYA: a digit run followed by a word boundary is grouped by three from the right, a
    // run followed by a word character not at all. Same matches, one look-ahead per run.
    {R"(\d{1,3}(?=(?:\d{3})*\b))",
     R"((?<!\d)\d{1,3}(?=(?:\d{3})*+\b)|\G(?<=\d)\d{3})"},

    // SUPERBPE: split points where a multiple of three digits ends the run. Here each match is
    // the chunk from one split point to the next: an aligned group G (at the chunk start only
    // if the run there is aligned), then non-digits, runs shorter than three and the (length %
    // 3) head of the next long run.
    {R"((?=(\d{3})+(?!\d)))",
     R"(\G(?:(?:(?!\A)\d{3}|\A\d{3}(?=(?:\d{3})*+(?!\d)))(?=\d))"
     R"(|(?:(?!\A)\d{3}|\A\d{3}(?=(?:\d{3})*+(?!\d)))?+)"
     R"((?:\D++|(?<!\d)\d{1,2}+(?!\d))*+(?:(?<!\d)\d{1,2}(?=(?:\d{3})++(?!\d)))?))"},

    // EXAONE_MOE: (?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+ is \p{L}\p{M}*(?: ?\p{L}\p{M}*)*; nothing
    // follows it in its alternative, so the repeats may be possessive.
    {R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)",
     HEARTH_CONTRACTIONS
     R"(|[^\r\n\p{L}\p{N}]?\p{L}\p{M}*+(?: ?\p{L}\p{M}*+)*+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)"},
};
#undef HEARTH_HAN
#undef HEARTH_CONTRACTIONS

std::optional<std::string_view> substitute_for(std::string_view pattern) {
  for (const Substitute& s : kSubstitutes) {
    if (s.original == pattern) return s.replacement;
  }
  return std::nullopt;
}

// ---- regex translation (formats.md §5.8) ----

void append_hex_range(std::string& out, uint32_t lo, uint32_t hi) {
  char buf[48];
  if (lo == hi) {
    std::snprintf(buf, sizeof buf, "\\x{%X}", lo);
  } else {
    std::snprintf(buf, sizeof buf, "\\x{%X}-\\x{%X}", lo, hi);
  }
  out += buf;
}

// Emits the class members lo..hi without the non-ASCII White_Space code points.
void append_range_without_whitespace(std::string& out, uint32_t lo, uint32_t hi) {
  uint32_t start = lo;
  for (uint32_t cp = lo; cp <= hi; ++cp) {
    if (cp >= 0x80 && unicode::is_whitespace(cp)) {
      if (cp > start) append_hex_range(out, start, cp - 1);
      start = cp + 1;
    }
  }
  if (start <= hi) append_hex_range(out, start, hi);
}

// Length of the escape starting at pattern[i] (a backslash): `\p{..}`, `\P{..}`, `\x{..}` run to
// the closing brace, anything else is the backslash and one (UTF-8) character.
size_t escape_length(std::string_view pattern, size_t i) {
  if (i + 1 >= pattern.size()) throw Error("regex '" + std::string(pattern) + "' ends in a backslash");
  const char c = pattern[i + 1];
  if ((c == 'p' || c == 'P' || c == 'x') && i + 2 < pattern.size() && pattern[i + 2] == '{') {
    const size_t close = pattern.find('}', i + 3);
    if (close == std::string_view::npos) throw Error("regex '" + std::string(pattern) + "': unclosed brace");
    return close - i + 1;
  }
  return 1 + unicode::sequence_length(static_cast<uint8_t>(c));
}

}  // namespace

std::string translate_regex(std::string_view pattern) {
  if (auto substitute = substitute_for(pattern)) pattern = *substitute;
  const std::string_view ws = unicode::whitespace_class_body();
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '\\') {
      const size_t len = escape_length(pattern, i);
      const std::string_view esc = pattern.substr(i, len);
      i += len;
      if (esc == "\\s") {
        out += in_class ? std::string(ws) : "[" + std::string(ws) + "]";
      } else if (esc == "\\S") {
        if (in_class) throw Error("regex '" + std::string(pattern) + "': \\S inside a class is not supported");
        out += "[^" + std::string(ws) + "]";
      } else if (esc == "\\d") {
        out += in_class ? "0-9" : "[0-9]";
      } else if (esc == "\\D") {
        if (in_class) throw Error("regex '" + std::string(pattern) + "': \\D inside a class is not supported");
        out += "[^0-9]";
      } else if (esc == "\\p{Lu}" || esc == "\\p{Ll}" || esc == "\\p{Lt}" || esc == "\\p{Lm}" ||
                 esc == "\\p{Lo}") {
        out += "\\p{L}";
      } else {
        out += esc;
      }
      continue;
    }
    if (!in_class) {
      if (c == '[') {
        in_class = true;
        out += c;
        ++i;
        if (i < pattern.size() && pattern[i] == '^') out += pattern[i++];
        continue;
      }
      const size_t len = unicode::sequence_length(static_cast<uint8_t>(c));
      out += pattern.substr(i, len);
      i += len;
      continue;
    }
    // Inside a class: ']' closes it; literal members (and ranges of them) are copied, except
    // that non-ASCII White_Space code points are left out.
    if (c == ']') {
      in_class = false;
      out += c;
      ++i;
      continue;
    }
    uint32_t lo;
    size_t len = unicode::decode_utf8(pattern, i, lo);
    if (len == 0) throw Error("regex '" + std::string(pattern) + "' is not valid UTF-8");
    uint32_t hi = lo;
    size_t next = i + len;
    if (next + 1 < pattern.size() && pattern[next] == '-' && pattern[next + 1] != ']' &&
        pattern[next + 1] != '\\') {
      const size_t len_hi = unicode::decode_utf8(pattern, next + 1, hi);
      if (len_hi == 0) throw Error("regex '" + std::string(pattern) + "' is not valid UTF-8");
      next += 1 + len_hi;
    }
    if (lo < 0x80 && hi < 0x80) {
      out += pattern.substr(i, next - i);
    } else {
      append_range_without_whitespace(out, lo, hi);
    }
    i = next;
  }
  return out;
}

std::span<const PreTokenizerSpec> pre_tokenizer_table() { return kTable; }

const PreTokenizerSpec* find_pre_tokenizer(std::string_view name) {
  for (const PreTokenizerSpec& spec : kTable) {
    for (std::string_view n : spec.names) {
      if (n == name) return &spec;
    }
  }
  return nullptr;
}

const PreTokenizerSpec& gemma4_pre_tokenizer() { return *find_pre_tokenizer("gemma4"); }

// ---- PCRE2 engine ----

struct PreTokenizer::Regex {
  std::string source;  // the table's text, for error messages
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

namespace {

// Match data, match context and JIT stack of the calling thread (PCRE2 objects that must not be
// shared between concurrent matches).
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (data == nullptr || context == nullptr) throw Error("PCRE2: out of memory");
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

struct Chunk {
  size_t offset;
  size_t length;
};

}  // namespace

PreTokenizer::PreTokenizer(std::span<const std::string_view> regexes) {
  for (std::string_view source : regexes) {
    const std::string translated = translate_regex(source);
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    // No PCRE2_UCP: \p{..} are Unicode properties anyway, and \b stays ASCII-based as in
    // llama.cpp's std::wregex (TINY_AYA). DOLLAR_ENDONLY: `$` means the end of the chunk only.
    const uint32_t options = PCRE2_UTF | PCRE2_NO_AUTO_CAPTURE | PCRE2_DOLLAR_ENDONLY;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                     options, &error, &error_offset, nullptr);
    if (code == nullptr) {
      throw Error("pre-tokenizer regex '" + std::string(source) + "' does not compile (" + pcre2_message(error) +
                  " at offset " + std::to_string(error_offset) + ")");
    }
    auto re = std::make_unique<Regex>();
    re->source = std::string(source);
    re->code = code;
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    regexes_.push_back(std::move(re));
  }
}

PreTokenizer::~PreTokenizer() = default;

namespace {

// Runs one compiled regex over one chunk of `text`, appending the matches and the gaps to `out`.
void split_chunk(const pcre2_code* code, const std::string& source, std::string_view text, Chunk chunk,
                 std::vector<Chunk>& out, MatchScratch& s) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + chunk.offset);
  const size_t length = chunk.length;
  size_t pos = 0;
  size_t gap_start = 0;
  uint32_t options = 0;
  while (pos <= length) {
    int rc = pcre2_match(code, subject, length, pos, options | PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // Very long words can outgrow the JIT stack; the interpreter keeps its frames on the heap.
      rc = pcre2_match(code, subject, length, pos, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, s.data, s.context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0) break;
      // The previous match was empty and no non-empty match starts there: move one character on.
      if (pos == length) break;
      pos += unicode::sequence_length(subject[pos]);
      options = 0;
      continue;
    }
    if (rc < 0) {
      throw Error("pre-tokenizer regex '" + source + "' failed on a " + std::to_string(length) +
                  "-byte chunk: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    const size_t begin = ov[0];
    const size_t end = ov[1];
    if (begin > gap_start) out.push_back({chunk.offset + gap_start, begin - gap_start});
    if (end > begin) out.push_back({chunk.offset + begin, end - begin});
    gap_start = end;
    pos = end;
    // After an empty match, look for a non-empty one at the same place before moving on.
    options = end == begin ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
  }
  if (gap_start < length) out.push_back({chunk.offset + gap_start, length - gap_start});
}

}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words) const {
  if (text.empty()) return;
  MatchScratch& s = scratch();
  std::vector<Chunk> chunks{{0, text.size()}};
  std::vector<Chunk> next;
  for (const auto& re : regexes_) {
    next.clear();
    for (const Chunk& chunk : chunks) split_chunk(re->code, re->source, text, chunk, next, s);
    chunks.swap(next);
  }
  for (const Chunk& chunk : chunks) words.push_back(text.substr(chunk.offset, chunk.length));
}

}  // namespace hearth::tokenizer

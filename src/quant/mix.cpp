#include "quant/mix.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <numeric>

#include "hearth/error.h"

namespace hearth::quant {
namespace {

using F = FileType;
using T = GgmlType;

const std::vector<FileTypeInfo> kFileTypes = {
    {F::ALL_F32, "F32", T::F32},       {F::F16, "F16", T::F16},           {F::Q4_0, "Q4_0", T::Q4_0},
    {F::Q4_1, "Q4_1", T::Q4_1},        {F::Q8_0, "Q8_0", T::Q8_0},        {F::Q5_0, "Q5_0", T::Q5_0},
    {F::Q5_1, "Q5_1", T::Q5_1},        {F::Q2_K, "Q2_K", T::Q2_K},        {F::Q3_K_S, "Q3_K_S", T::Q3_K},
    {F::Q3_K_M, "Q3_K_M", T::Q3_K},    {F::Q3_K_L, "Q3_K_L", T::Q3_K},    {F::Q4_K_S, "Q4_K_S", T::Q4_K},
    {F::Q4_K_M, "Q4_K_M", T::Q4_K},    {F::Q5_K_S, "Q5_K_S", T::Q5_K},    {F::Q5_K_M, "Q5_K_M", T::Q5_K},
    {F::Q6_K, "Q6_K", T::Q6_K},        {F::IQ2_XXS, "IQ2_XXS", T::IQ2_XXS}, {F::IQ2_XS, "IQ2_XS", T::IQ2_XS},
    {F::Q2_K_S, "Q2_K_S", T::Q2_K},    {F::IQ3_XS, "IQ3_XS", T::IQ3_S},   {F::IQ3_XXS, "IQ3_XXS", T::IQ3_XXS},
    {F::IQ1_S, "IQ1_S", T::IQ1_S},     {F::IQ4_NL, "IQ4_NL", T::IQ4_NL},  {F::IQ3_S, "IQ3_S", T::IQ3_S},
    {F::IQ3_M, "IQ3_M", T::IQ3_S},     {F::IQ2_S, "IQ2_S", T::IQ2_XS},    {F::IQ2_M, "IQ2_M", T::IQ2_S},
    {F::IQ4_XS, "IQ4_XS", T::IQ4_XS},  {F::IQ1_M, "IQ1_M", T::IQ1_M},     {F::BF16, "BF16", T::BF16},
    {F::TQ1_0, "TQ1_0", T::TQ1_0},     {F::TQ2_0, "TQ2_0", T::TQ2_0},     {F::MXFP4_MOE, "MXFP4_MOE", T::MXFP4},
};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

// `blk.N.` prefix -> N, or -1.
int block_number(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int n = -1;
  const char* begin = name.data() + 4;
  const char* end = name.data() + name.size();
  auto [p, ec] = std::from_chars(begin, end, n);
  if (ec != std::errc() || p == begin || p == end || *p != '.') return -1;
  return n;
}

// formats.md §4.3: the first and last eighth of layers plus every third layer in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool is_attn_v_like(std::string_view name) {
  return contains(name, "attn_v.weight") || contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight");
}

bool in(F f, std::initializer_list<F> set) { return std::find(set.begin(), set.end(), f) != set.end(); }

// §4.4 step 4: the type a tensor falls back to when its rows of `ne0` elements are not a whole
// number of `type` blocks.
GgmlType shape_fallback(GgmlType type, int64_t ne0) {
  const auto blck = [](GgmlType t) { return traits(t).blck_size; };
  if (ne0 % blck(type) != 0) {
    switch (type) {
      case T::IQ1_S: case T::IQ1_M: case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S: case T::IQ3_XXS:
      case T::IQ3_S: case T::IQ4_XS: type = T::IQ4_NL; break;
      case T::Q2_0: case T::Q2_K: case T::Q3_K: case T::TQ1_0: case T::TQ2_0: type = T::Q4_0; break;
      case T::Q4_K: type = T::Q5_0; break;
      case T::Q5_K: type = T::Q5_1; break;
      case T::Q6_K: type = T::Q8_0; break;
      default: break;
    }
    if (ne0 % blck(type) != 0) type = T::F16;
  }
  return type;
}

}  // namespace

const std::vector<FileTypeInfo>& file_types() { return kFileTypes; }

std::optional<FileType> file_type_from_name(std::string_view name) {
  std::string u = upper(name);
  if (u == "Q3_K") u = "Q3_K_M";
  if (u == "Q4_K") u = "Q4_K_M";
  if (u == "Q5_K") u = "Q5_K_M";
  for (const FileTypeInfo& f : kFileTypes)
    if (u == f.name) return f.ftype;
  return std::nullopt;
}

const FileTypeInfo& file_type_info(FileType ftype) {
  for (const FileTypeInfo& f : kFileTypes)
    if (f.ftype == ftype) return f;
  throw Error("unknown file type id " + std::to_string(static_cast<int32_t>(ftype)));
}

bool should_quantize(std::string_view name, uint32_t n_dims, bool leave_output) {
  if (n_dims < 2 || !ends_with(name, "weight")) return false;
  if (contains(name, "_norm.weight")) return false;
  if (leave_output && name == "output.weight") return false;
  if (contains(name, "ffn_gate_inp.weight") || contains(name, "ffn_gate_tid2eid.weight")) return false;
  if (name == "position_embd.weight" || name == "token_types.weight") return false;
  static constexpr std::string_view kExcluded[] = {
      "altup", "laurel", "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight",
      "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first", "time_mix_w0", "time_mix_w1",
      "time_mix_w2", "time_mix_v0", "time_mix_v1", "time_mix_v2", "time_mix_a0", "time_mix_a1", "time_mix_a2",
      "time_mix_g1", "time_mix_g2", "time_mix_decay_w1", "time_mix_decay_w2", "time_mix_lerp_fused",
      "attn_rel_b", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
      ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
  for (std::string_view part : kExcluded)
    if (contains(name, part)) return false;
  return true;
}

MixModelInfo MixModelInfo::from_file(const gguf::File& file) {
  MixModelInfo m;
  m.arch = file.get<std::string>("general.architecture").value_or("");
  const std::string a = m.arch + ".";
  m.n_layer = file.get<uint32_t>(a + "block_count").value_or(0);
  // head counts may be per-layer arrays (formats.md §1.9); layer 0 is what the rules read.
  auto layer0 = [&](const std::string& key) -> uint32_t {
    const gguf::Value* v = file.find(key);
    if (v == nullptr) return 0;
    if (v->is_array()) return v->count() > 0 ? v->at<uint32_t>(0) : 0;
    return v->get<uint32_t>();
  };
  m.n_head = layer0(a + "attention.head_count");
  m.n_head_kv = layer0(a + "attention.head_count_kv");
  if (m.n_head_kv == 0) m.n_head_kv = m.n_head;
  m.n_expert = file.get<uint32_t>(a + "expert_count").value_or(0);
  for (const gguf::TensorInfo& t : file.tensors()) {
    if (is_attn_v_like(t.name)) ++m.n_attention_wv;
    if (t.name == "output.weight") m.has_output = true;
  }
  return m;
}

TensorTypeOverride TensorTypeOverride::parse(std::string_view text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == text.size())
    throw Error("--tensor-type \"" + std::string(text) + "\": expected PATTERN=TYPE");
  TensorTypeOverride o;
  o.pattern = std::string(text.substr(0, eq));
  const std::string type_name(text.substr(eq + 1));
  const std::optional<GgmlType> type = type_from_name(type_name);
  if (!type || traits(*type).from_float == nullptr)
    throw Error("--tensor-type \"" + std::string(text) + "\": hearth cannot quantize to type \"" + type_name + "\"");
  o.type = *type;
  try {
    o.regex = std::regex(o.pattern);
  } catch (const std::regex_error& e) {
    throw Error("--tensor-type \"" + std::string(text) + "\": bad regular expression: " + e.what());
  }
  return o;
}

MixPlanner::MixPlanner(MixModelInfo model, MixOptions options) : model_(std::move(model)), opt_(std::move(options)) {}

std::pair<int, int> MixPlanner::layer_info(int counter, const std::string& name) const {
  const int n_layer = static_cast<int>(model_.n_layer);
  if (std::max<uint32_t>(1, model_.n_expert) <= 1) return {counter, n_layer};
  // MoE: expert tensors are not in layer order, so the layer comes from the name (§4.3).
  const int i = block_number(name);
  if (i < 0) throw Error("cannot determine the layer of tensor " + name);
  if (i >= n_layer)
    throw Error("tensor " + name + " is in layer " + std::to_string(i) + " but the model has " +
                std::to_string(n_layer) + " layers");
  return {i, n_layer};
}

GgmlType MixPlanner::choose(const gguf::TensorInfo& t) {
  if (!should_quantize(t.name, t.n_dims, opt_.leave_output)) return t.type;
  const GgmlType type = file_type_info(opt_.ftype).default_type;
  // §4.4 step 1: user overrides, used as given (a row that is not whole blocks is an error).
  auto given = [&](GgmlType chosen, const std::string& how) {
    if (t.ne[0] % traits(chosen).blck_size != 0)
      throw Error(how + " asks for " + traits(chosen).name + " for tensor " + t.name + ", whose rows of " +
                  std::to_string(t.ne[0]) + " elements are not a multiple of its block size " +
                  std::to_string(traits(chosen).blck_size));
    return chosen;
  };
  if (opt_.token_embedding_type && t.name == "token_embd.weight")
    return given(*opt_.token_embedding_type, "--token-embedding-type");
  if (opt_.output_tensor_type && t.name == "output.weight") return given(*opt_.output_tensor_type, "--output-tensor-type");
  for (const TensorTypeOverride& o : opt_.overrides)
    if (std::regex_search(t.name, o.regex)) return given(o.type, "--tensor-type " + o.pattern);
  if (!traits(type).is_quantized) return type;  // F32/F16/BF16 files: no mix rules (§4.4 step 2 note)
  return shape_fallback(opt_.pure ? type : mix_rule(t.name, t.ne, type), t.ne[0]);
}

GgmlType MixPlanner::mix_rule(const std::string& name, const std::array<int64_t, 4>& ne, GgmlType type) {
  const F ft = opt_.ftype;
  const uint32_t gqa = model_.gqa();
  const uint32_t n_expert = model_.n_expert;
  const bool falcon = model_.arch == "falcon";
  const bool imatrix = opt_.has_imatrix;
  const auto blck = [](GgmlType t) { return traits(t).blck_size; };  // for the output rule

  const bool is_output = name == "output.weight" || (!model_.has_output && name == "token_embd.weight");
  if (is_output) {  // §4.4 step 2
    if (ft == F::MXFP4_MOE || falcon || ne[0] % blck(type) != 0) {
      type = T::Q8_0;
    } else if (in(ft, {F::IQ2_XXS, F::IQ2_XS, F::IQ2_S, F::IQ2_M, F::IQ3_XXS, F::IQ1_S, F::IQ1_M})) {
      type = T::Q5_K;
    } else if (type != T::Q8_0) {
      type = T::Q6_K;
    }
  } else if (ft == F::MXFP4_MOE) {
    type = ne[2] > 1 ? T::MXFP4 : T::Q8_0;
  } else if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") {
    if (in(ft, {F::IQ2_XXS, F::IQ2_XS, F::IQ1_S, F::IQ1_M})) type = T::Q2_K;
    else if (in(ft, {F::IQ2_S, F::IQ2_M, F::IQ3_XXS})) type = T::IQ3_S;
    else if (in(ft, {F::TQ1_0, F::TQ2_0})) type = T::Q4_K;
  } else if (in(ft, {F::IQ2_XXS, F::IQ2_XS, F::IQ2_S, F::IQ2_M, F::IQ1_S, F::IQ1_M})) {
    const bool iq2s = ft == F::IQ2_S || ft == F::IQ2_M;
    if (is_attn_v_like(name)) {
      type = (gqa >= 4 || n_expert >= 4) ? T::Q4_K : iq2s ? T::IQ3_S : T::Q2_K;
      ++i_attention_wv_;
    } else if (n_expert == 8 && contains(name, "attn_k.weight")) {
      type = T::Q4_K;
    } else if (contains(name, "ffn_down")) {
      // The running counter even for MoE (§4.3).
      if (i_ffn_down_ < static_cast<int>(model_.n_layer) / 8) type = iq2s ? T::IQ3_S : T::Q2_K;
      ++i_ffn_down_;
    } else if (contains(name, "attn_output.weight")) {
      if (n_expert == 8) type = T::Q5_K;
      else if (ft == F::IQ1_S || ft == F::IQ1_M) type = T::IQ2_XXS;
      else if (iq2s) type = T::IQ3_S;
    }
  } else if (is_attn_v_like(name)) {
    if (ft == F::Q2_K) type = gqa >= 4 ? T::Q4_K : T::Q3_K;
    else if (ft == F::Q2_K_S && gqa >= 4) type = T::Q4_K;
    else if (ft == F::IQ3_XXS) type = gqa >= 4 ? T::Q4_K : !imatrix ? T::IQ3_S : T::IQ3_XXS;
    else if ((ft == F::IQ3_XS || ft == F::IQ3_S) && gqa >= 4) type = T::Q4_K;
    else if (ft == F::IQ3_M) type = T::Q4_K;
    else if (ft == F::Q3_K_M) type = i_attention_wv_ < 2 ? T::Q5_K : T::Q4_K;
    else if (ft == F::Q3_K_L) type = T::Q5_K;
    else if ((ft == F::IQ4_NL || ft == F::IQ4_XS) && gqa >= 4) type = T::Q5_K;
    else if ((ft == F::Q4_K_M || ft == F::Q5_K_M) && use_more_bits(i_attention_wv_, model_.n_attention_wv))
      type = T::Q6_K;
    else if (ft == F::Q4_K_S && i_attention_wv_ < 4) type = T::Q5_K;
    if (model_.is_70b() && (type == T::Q3_K || type == T::Q4_K)) type = T::Q5_K;
    if (n_expert == 8) type = T::Q8_0;
    ++i_attention_wv_;
  } else if (contains(name, "attn_k.weight")) {
    if (n_expert == 8) type = T::Q8_0;
    else if (ft == F::IQ3_XS) type = T::IQ3_XXS;
    else if (ft == F::IQ3_XXS) type = T::IQ2_S;
  } else if (contains(name, "attn_q.weight")) {
    if (ft == F::IQ3_XS) type = T::IQ3_XXS;
    else if (ft == F::IQ3_XXS) type = T::IQ2_S;
  } else if (contains(name, "ffn_down")) {
    const auto [i, n] = layer_info(i_ffn_down_, name);
    if (ft == F::Q2_K) type = T::Q3_K;
    else if (ft == F::Q2_K_S) { if (i < n / 8) type = T::Q4_K; }
    else if (ft == F::IQ3_XXS && !imatrix) type = i < n / 8 ? T::Q4_K : T::Q3_K;
    else if (ft == F::Q3_K_M)
      type = i < n / 16 ? T::Q5_K : (!falcon || use_more_bits(i, n)) ? T::Q4_K : T::Q3_K;
    else if (ft == F::IQ3_M && (i < n / 8 || (n_expert == 8 && use_more_bits(i, n)))) type = T::Q4_K;
    else if (ft == F::Q3_K_L) type = falcon ? T::Q4_K : T::Q5_K;
    else if (ft == F::Q4_K_M) {
      if (falcon) type = i < n / 16 ? T::Q6_K : use_more_bits(i, n) ? T::Q5_K : T::Q4_K;
      else if (use_more_bits(i, n)) type = T::Q6_K;
    } else if (i < n / 8 && (ft == F::IQ4_NL || ft == F::IQ4_XS) && !imatrix) type = T::Q5_K;
    else if (ft == F::Q5_K_M && use_more_bits(i, n)) type = T::Q6_K;
    else if (ft == F::Q4_K_S && !falcon && i < n / 8) type = T::Q5_K;
    else if ((ft == F::Q4_0 || ft == F::Q5_0) && imatrix && i < n / 8) type = ft == F::Q4_0 ? T::Q4_1 : T::Q5_1;
    ++i_ffn_down_;
  } else if (contains(name, "attn_output.weight")) {
    if (!falcon) {
      if (n_expert == 8) {
        if (in(ft, {F::Q2_K, F::IQ3_XS, F::IQ3_XXS, F::Q3_K_S, F::Q3_K_M, F::IQ4_NL, F::Q4_K_S, F::Q4_K_M, F::IQ3_S,
                    F::IQ3_M, F::IQ4_XS}))
          type = T::Q5_K;
      } else if (ft == F::Q2_K) type = T::Q3_K;
      else if (ft == F::IQ3_XXS) type = T::IQ3_S;
      else if (ft == F::Q3_K_M) type = T::Q4_K;
      else if (ft == F::Q3_K_L) type = T::Q5_K;
      else if (ft == F::IQ3_M) type = T::Q4_K;
    } else if (ft == F::Q3_K_L) {
      type = T::Q4_K;
    }
  } else if (contains(name, "ffn_gate")) {
    const auto [i, n] = layer_info(i_ffn_gate_, name);
    if (ft == F::IQ3_XS && i >= n / 8 && i < 7 * n / 8) type = T::IQ3_XXS;
    ++i_ffn_gate_;
  } else if (contains(name, "ffn_up")) {
    const auto [i, n] = layer_info(i_ffn_up_, name);
    if (ft == F::IQ3_XS && i >= n / 8 && i < 7 * n / 8) type = T::IQ3_XXS;
    ++i_ffn_up_;
  }

  return type;
}

std::vector<size_t> loader_order(const std::vector<gguf::TensorInfo>& tensors) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = block_number(tensors[a].name);
    const int lb = block_number(tensors[b].name);
    if (la != lb) return la < lb;  // -1 (no block) first
    return tensors[a].name < tensors[b].name;
  });
  return order;
}

bool requires_imatrix(GgmlType type, FileType ftype, std::string_view tensor_name) {
  if (tensor_name == "token_embd.weight" || tensor_name == "output.weight") return false;
  switch (type) {
    case T::IQ1_S: case T::IQ1_M: case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S: case T::IQ3_XXS: return true;
    case T::Q2_K: return ftype == F::Q2_K_S;
    default: return false;
  }
}

}  // namespace hearth::quant

#include "quant/dynamic.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <numeric>
#include <optional>
#include <regex>

#include "hearth/error.h"
#include "quant/quantize_weighted.h"

namespace hearth::quant {
namespace {

using T = GgmlType;

// Rising bits per weight (bytes per block × 8 / block size).
const std::vector<DynamicLadderEntry> kLadder = {
    {T::IQ1_S, true, false},    // 1.5625
    {T::IQ1_M, true, false},    // 1.75
    {T::IQ2_XXS, true, false},  // 2.0625
    {T::IQ2_XS, true, false},   // 2.3125
    {T::IQ2_S, true, false},    // 2.5625
    {T::Q2_K, false, false},    // 2.625
    {T::IQ3_XXS, true, false},  // 3.0625
    {T::Q3_K, false, false},    // 3.4375
    {T::IQ3_S, false, false},   // 3.4375
    {T::IQ4_XS, false, false},  // 4.25
    {T::IQ4_NL, false, true},   // 4.5, 32-element blocks
    {T::Q4_K, false, false},    // 4.5
    {T::Q5_0, false, true},     // 5.5, 32-element blocks
    {T::Q5_K, false, false},    // 5.5
    {T::Q5_1, false, true},     // 6.0, 32-element blocks
    {T::Q6_K, false, false},    // 6.5625
    {T::Q8_0, false, false},    // 8.5
};

std::string format_bpw(double bpw) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", bpw);
  return buf;
}

uint64_t tensor_bytes(GgmlType type, const gguf::TensorInfo& t) {
  return row_size(type, t.ne[0]) * static_cast<uint64_t>(t.n_elements() / t.ne[0]);
}

// The options of one item, cheapest first, with dominated ones (no cheaper and no better than
// another) removed; `index` maps back to the item's option list.
struct Option {
  uint64_t bytes;
  double error;
  size_t index;
};

std::vector<Option> pareto(const std::vector<AllocationOption>& options) {
  std::vector<Option> o;
  for (size_t k = 0; k < options.size(); ++k) o.push_back({options[k].bytes, options[k].error, k});
  std::stable_sort(o.begin(), o.end(), [](const Option& a, const Option& b) {
    return a.bytes != b.bytes ? a.bytes < b.bytes : a.error < b.error;
  });
  std::vector<Option> front;
  for (const Option& x : o)
    if (front.empty() || x.error < front.back().error) front.push_back(x);  // same cost: the better came first
  return front;
}

// Exact multiple-choice knapsack over the extra bytes above each item's cheapest option, in units
// of their gcd (every cost is a multiple, so the unit rounding is exact).
std::vector<size_t> allocate_exact(const std::vector<std::vector<Option>>& fronts, uint64_t headroom,
                                   uint64_t max_cells) {
  const size_t n = fronts.size();
  uint64_t g = 0;
  for (const auto& f : fronts)
    for (const Option& o : f) g = std::gcd(g, o.bytes - f[0].bytes);
  std::vector<size_t> pick(n, 0);
  if (g == 0) return pick;  // every item has one option
  for (const auto& f : fronts)
    if (f.size() > 256) throw Error("the exact allocation handles at most 256 options per item");
  // Beyond every item's dearest option the budget does not matter.
  uint64_t max_extra = 0;
  for (const auto& f : fronts) max_extra += f.back().bytes - f[0].bytes;
  const uint64_t units = std::min(headroom, max_extra) / g;
  if (static_cast<double>(n) * static_cast<double>(units + 1) > static_cast<double>(max_cells))
    throw Error("the exact allocation needs a table of " + std::to_string(n) + " x " + std::to_string(units + 1) +
                " cells, more than " + std::to_string(max_cells));
  const size_t width = static_cast<size_t>(units + 1);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[u]: least error of the items so far with extra cost ≤ u units; choice[t][u] its option.
  std::vector<double> best(width, 0.0), next(width);
  std::vector<uint8_t> choice(n * width);
  for (size_t t = 0; t < n; ++t) {
    const auto& f = fronts[t];
    for (size_t u = 0; u < width; ++u) {
      double b = kInf;
      uint8_t c = 0;
      for (size_t k = 0; k < f.size(); ++k) {
        const uint64_t cost = (f[k].bytes - f[0].bytes) / g;
        if (cost > u) break;  // options are in rising cost
        const double e = best[u - cost] + f[k].error;
        if (e < b) b = e, c = static_cast<uint8_t>(k);  // strict: ties keep the cheaper option
      }
      next[u] = b;
      choice[t * width + u] = c;
    }
    best.swap(next);
  }
  size_t u = width - 1;
  for (size_t t = n; t-- > 0;) {
    const uint8_t c = choice[t * width + u];
    pick[t] = c;
    u -= static_cast<size_t>((fronts[t][c].bytes - fronts[t][0].bytes) / g);
  }
  return pick;
}

// Lagrangian relaxation: on each item's lower convex hull of (bytes, error) the upgrades have
// falling error drop per byte, so taking upgrades in order of that ratio (over all items) walks
// the solutions of min Σ error + λ·bytes for falling λ. Take them while they fit; then spend the
// leftover bytes greedily on the move (any option of any item) that lowers the error most.
std::vector<size_t> allocate_lagrangian(const std::vector<std::vector<Option>>& fronts, uint64_t headroom) {
  const size_t n = fronts.size();
  struct Upgrade {
    size_t item, from, to;  // indices into the front
    double ratio;           // error drop per byte
  };
  std::vector<Upgrade> ups;
  for (size_t t = 0; t < n; ++t) {
    const auto& f = fronts[t];
    std::vector<size_t> hull{0};
    for (size_t k = 1; k < f.size(); ++k) {
      // Drop hull points that lie on or above the segment from their predecessor to k.
      while (hull.size() >= 2) {
        const Option& a = f[hull[hull.size() - 2]];
        const Option& b = f[hull.back()];
        const Option& c = f[k];
        const double s_ab = (a.error - b.error) / static_cast<double>(b.bytes - a.bytes);
        const double s_ac = (a.error - c.error) / static_cast<double>(c.bytes - a.bytes);
        if (s_ab > s_ac) break;
        hull.pop_back();
      }
      hull.push_back(k);
    }
    for (size_t i = 1; i < hull.size(); ++i) {
      const Option& a = f[hull[i - 1]];
      const Option& b = f[hull[i]];
      ups.push_back({t, hull[i - 1], hull[i], (a.error - b.error) / static_cast<double>(b.bytes - a.bytes)});
    }
  }
  // Within an item the ratios fall, and the stable sort keeps them in hull order on ties.
  std::stable_sort(ups.begin(), ups.end(), [](const Upgrade& a, const Upgrade& b) { return a.ratio > b.ratio; });
  std::vector<size_t> pick(n, 0);
  uint64_t left = headroom;
  for (const Upgrade& u : ups) {
    const uint64_t cost = fronts[u.item][u.to].bytes - fronts[u.item][u.from].bytes;
    if (pick[u.item] != u.from || cost > left) break;
    pick[u.item] = u.to;
    left -= cost;
  }
  for (;;) {  // the fill
    size_t best_t = n, best_k = 0;
    double best_drop = 0;
    for (size_t t = 0; t < n; ++t) {
      const Option& cur = fronts[t][pick[t]];
      for (size_t k = pick[t] + 1; k < fronts[t].size(); ++k) {
        const Option& o = fronts[t][k];
        if (o.bytes - cur.bytes > left) break;
        if (cur.error - o.error > best_drop) best_drop = cur.error - o.error, best_t = t, best_k = k;
      }
    }
    if (best_t == n) break;
    left -= fronts[best_t][best_k].bytes - fronts[best_t][pick[best_t]].bytes;
    pick[best_t] = best_k;
  }
  return pick;
}

}  // namespace

const std::vector<DynamicLadderEntry>& dynamic_ladder() { return kLadder; }

std::vector<GgmlType> dynamic_candidates(int64_t ne0, bool has_importance) {
  std::vector<GgmlType> out;
  for (const DynamicLadderEntry& e : kLadder) {
    const TypeTraits& tt = traits(e.type);
    if (tt.from_float == nullptr || tt.to_float == nullptr || ne0 % tt.blck_size != 0) continue;
    if (e.needs_imatrix && !has_importance) continue;
    if (e.small_blocks_only && ne0 % QK_K == 0) continue;
    out.push_back(e.type);
  }
  return out;
}

WeightedError weighted_error(GgmlType type, const float* rows, int64_t n_rows, int64_t ne0, const float* imp,
                             const int32_t* row_matrix, int n_threads) {
  const TypeTraits& tt = traits(type);
  if (tt.from_float == nullptr || tt.to_float == nullptr)
    throw Error(std::string("weighted_error: hearth cannot quantize to and back from ") + tt.name);
  if (ne0 <= 0 || ne0 % tt.blck_size != 0)
    throw Error(std::string("weighted_error: rows of ") + std::to_string(ne0) + " elements are not whole " +
                tt.name + " blocks of " + std::to_string(tt.blck_size));
  const FromFloatWeightedFn wq = imp != nullptr ? weighted_quantizer(type) : nullptr;
  const size_t rsize = row_size(type, ne0);
  std::vector<double> err(static_cast<size_t>(n_rows)), sig(static_cast<size_t>(n_rows));
  std::exception_ptr failure;  // an exception must not leave an OpenMP region
  const int threads = n_threads > 0 ? n_threads : omp_get_num_procs();
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint8_t> q(rsize);
    std::vector<float> y(static_cast<size_t>(ne0));
#pragma omp for schedule(dynamic, 4)
    for (int64_t r = 0; r < n_rows; ++r) {
      try {
        const float* x = rows + r * ne0;
        const float* w = imp == nullptr ? nullptr : imp + (row_matrix ? row_matrix[r] : 0) * ne0;
        if (wq != nullptr) wq(x, q.data(), ne0, w);
        else tt.from_float(x, q.data(), ne0);
        tt.to_float(q.data(), y.data(), ne0);
        double e = 0, s = 0;
        for (int64_t j = 0; j < ne0; ++j) {
          const double wj = w == nullptr ? 1.0 : w[j];
          const double d = static_cast<double>(x[j]) - y[j];
          e += wj * d * d;
          s += wj * static_cast<double>(x[j]) * x[j];
        }
        err[static_cast<size_t>(r)] = e;
        sig[static_cast<size_t>(r)] = s;
      } catch (...) {
#pragma omp critical(hearth_dynamic_failure)
        if (!failure) failure = std::current_exception();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
  WeightedError out;
  for (size_t r = 0; r < err.size(); ++r) out.error += err[r], out.signal += sig[r];
  return out;
}

std::vector<size_t> allocate_types(const std::vector<std::vector<AllocationOption>>& items, uint64_t budget_bytes,
                                   AllocationMethod method) {
  std::vector<std::vector<Option>> fronts;
  uint64_t min_bytes = 0;
  for (size_t t = 0; t < items.size(); ++t) {
    if (items[t].empty()) throw Error("allocate_types: item " + std::to_string(t) + " has no option");
    for (const AllocationOption& o : items[t])
      if (!(o.error >= 0) || !std::isfinite(o.error))
        throw Error("allocate_types: item " + std::to_string(t) + " has an error that is not a finite value >= 0");
    fronts.push_back(pareto(items[t]));
    min_bytes += fronts.back()[0].bytes;
  }
  if (min_bytes > budget_bytes)
    throw Error("allocate_types: the cheapest choices take " + std::to_string(min_bytes) +
                " bytes, more than the budget of " + std::to_string(budget_bytes));
  const uint64_t headroom = budget_bytes - min_bytes;
  std::vector<size_t> pick;
  if (method == AllocationMethod::kLagrangian) {
    pick = allocate_lagrangian(fronts, headroom);
  } else if (method == AllocationMethod::kExact) {
    pick = allocate_exact(fronts, headroom, 16 * kExactCells);
  } else {
    try {
      pick = allocate_exact(fronts, headroom, kExactCells);
    } catch (const Error&) {
      pick = allocate_lagrangian(fronts, headroom);
    }
  }
  std::vector<size_t> out(items.size());
  for (size_t t = 0; t < items.size(); ++t) out[t] = fronts[t][pick[t]].index;
  return out;
}

double DynamicPlan::min_bits_per_weight() const {
  uint64_t b = 0;
  for (const DynamicTensor& t : tensors) b += *std::min_element(t.bytes.begin(), t.bytes.end());
  return n_elements ? 8.0 * static_cast<double>(b) / n_elements : 0.0;
}

double DynamicPlan::max_bits_per_weight() const {
  uint64_t b = 0;
  for (const DynamicTensor& t : tensors) b += *std::max_element(t.bytes.begin(), t.bytes.end());
  return n_elements ? 8.0 * static_cast<double>(b) / n_elements : 0.0;
}

uint64_t DynamicPlan::bytes() const {
  uint64_t b = 0;
  for (const DynamicTensor& t : tensors) b += t.bytes[t.chosen];
  return b;
}

std::map<std::string, GgmlType> DynamicPlan::types() const {
  std::map<std::string, GgmlType> m;
  for (const DynamicTensor& t : tensors) m[t.name] = t.types[t.chosen];
  return m;
}

FileType DynamicPlan::file_type() const {
  std::map<GgmlType, int64_t> params;
  for (const DynamicTensor& t : tensors) params[t.types[t.chosen]] += t.n_elements;
  GgmlType most = GgmlType::F16;
  int64_t n = -1;
  for (const auto& [type, count] : params)
    if (count > n) most = type, n = count;
  // The file type named after the type ("Q4_K" is llama-quantize's alias of Q4_K_M), else the
  // first whose default type it is.
  if (const auto f = file_type_from_name(traits(most).name)) return *f;
  for (const FileTypeInfo& f : file_types())
    if (f.default_type == most) return f.ftype;
  return FileType::F16;
}

DynamicPlan dynamic_candidates(const gguf::File& in, const QuantizeParams& params) {
  const MixOptions& mix = params.mix;
  DynamicPlan plan;
  for (size_t i : loader_order(in.tensors())) {
    const gguf::TensorInfo& t = in.tensors()[i];
    if (!should_quantize(t.name, t.n_dims, mix.leave_output)) continue;
    const TypeTraits& from = traits(t.type);
    if (from.to_float == nullptr) throw Error("tensor " + t.name + ": hearth cannot read tensors of type " + from.name);
    if (from.is_quantized && !params.allow_requantize)
      throw Error("tensor " + t.name + " is already " + from.name +
                  "; requantizing loses quality, pass --allow-requantize to do it anyway");
    DynamicTensor d;
    d.index = i;
    d.name = t.name;
    d.from = t.type;
    d.n_elements = t.n_elements();
    d.n_rows = d.n_elements / t.ne[0];
    // The user's overrides, in MixPlanner::choose()'s order of precedence.
    std::optional<GgmlType> given;
    std::string how;
    if (mix.token_embedding_type && t.name == "token_embd.weight") {
      given = mix.token_embedding_type, how = "--token-embedding-type";
    } else if (mix.output_tensor_type && t.name == "output.weight") {
      given = mix.output_tensor_type, how = "--output-tensor-type";
    } else {
      for (const TensorTypeOverride& o : mix.overrides)
        if (std::regex_search(t.name, o.regex)) {
          given = o.type, how = "--tensor-type " + o.pattern;
          break;
        }
    }
    if (given) {
      if (t.ne[0] % traits(*given).blck_size != 0)
        throw Error(how + " asks for " + traits(*given).name + " for tensor " + t.name + ", whose rows of " +
                    std::to_string(t.ne[0]) + " elements are not a multiple of its block size " +
                    std::to_string(traits(*given).blck_size));
      d.types = {*given};
      d.fixed = true;
    } else {
      d.types = dynamic_candidates(t.ne[0], !tensor_importance(params.imatrix.get(), t).empty());
      if (d.types.empty()) d.types = {GgmlType::F16};  // as llama-quantize's last shape fallback
      d.fixed = d.types.size() == 1;
    }
    for (GgmlType type : d.types) d.bytes.push_back(tensor_bytes(type, t));
    plan.n_elements += static_cast<uint64_t>(d.n_elements);
    plan.tensors.push_back(std::move(d));
  }
  plan.tied_output = in.find_tensor("output.weight") == nullptr;
  if (plan.tensors.empty()) throw Error("the model " + in.path() + " has no tensor that is quantized");
  return plan;
}

void measure_sensitivity(const gguf::File& in, const QuantizeParams& params, DynamicPlan& plan,
                         int64_t max_sample_elements, const DynamicProgress& progress) {
  const int n_threads = params.n_threads > 0 ? params.n_threads : omp_get_num_procs();
  std::vector<float> rows;
  std::vector<int32_t> matrix;
  std::vector<int64_t> picked;
  for (size_t k = 0; k < plan.tensors.size(); ++k) {
    DynamicTensor& d = plan.tensors[k];
    const gguf::TensorInfo& t = in.tensors()[d.index];
    d.rel_error.assign(d.types.size(), 0.0);
    if (!d.fixed) {
      const int64_t ne0 = t.ne[0];
      const int64_t n = std::min(std::max<int64_t>(1, max_sample_elements / ne0), d.n_rows);
      picked.resize(static_cast<size_t>(n));
      for (int64_t s = 0; s < n; ++s) picked[static_cast<size_t>(s)] = s * d.n_rows / n;
      d.sampled_rows = n;
      rows.resize(static_cast<size_t>(n * ne0));
      matrix.resize(static_cast<size_t>(n));
      const TypeTraits& from = traits(d.from);
      const size_t in_row = row_size(d.from, ne0);
      const std::span<const uint8_t> src = in.tensor_data(t);
#pragma omp parallel for num_threads(n_threads) schedule(static)
      for (int64_t s = 0; s < n; ++s) {
        const int64_t r = picked[static_cast<size_t>(s)];
        from.to_float(src.data() + static_cast<size_t>(r) * in_row, rows.data() + s * ne0, ne0);
        matrix[static_cast<size_t>(s)] = static_cast<int32_t>((r / t.ne[1]) % t.ne[2]);  // rows run over ne1 within ne2
      }
      const std::vector<float> imp = tensor_importance(params.imatrix.get(), t);
      for (size_t c = 0; c < d.types.size(); ++c)
        d.rel_error[c] = weighted_error(d.types[c], rows.data(), n, ne0, imp.empty() ? nullptr : imp.data(),
                                        matrix.data(), n_threads)
                             .relative();
    }
    if (progress) progress(k + 1, plan.tensors.size(), d);
  }
}

std::vector<double> dynamic_weights(const DynamicPlan& plan, DynamicWeighting weighting) {
  std::vector<double> w(plan.tensors.size(), 1.0);
  if (weighting == DynamicWeighting::kTensor) return w;
  for (size_t t = 0; t < plan.tensors.size(); ++t) {
    const DynamicTensor& d = plan.tensors[t];
    w[t] = static_cast<double>(d.n_elements) / static_cast<double>(plan.n_elements);
    if (d.name == "token_embd.weight" && plan.tied_output) w[t] *= 2;  // input embedding and output head
  }
  return w;
}

void allocate_dynamic_bytes(DynamicPlan& plan, uint64_t budget_bytes, DynamicWeighting weighting) {
  std::vector<std::vector<AllocationOption>> items;
  uint64_t lo = 0, hi = 0;
  for (const DynamicTensor& d : plan.tensors)
    if (d.rel_error.size() != d.types.size())
      throw Error("allocate_dynamic: tensor " + d.name + " has not been measured (measure_sensitivity)");
  const std::vector<double> weights = dynamic_weights(plan, weighting);
  for (size_t t = 0; t < plan.tensors.size(); ++t) {
    const DynamicTensor& d = plan.tensors[t];
    const double w = weights[t];
    std::vector<AllocationOption> opts;
    for (size_t c = 0; c < d.types.size(); ++c) opts.push_back({d.bytes[c], w * d.rel_error[c]});
    items.push_back(std::move(opts));
    lo += *std::min_element(d.bytes.begin(), d.bytes.end());
    hi += *std::max_element(d.bytes.begin(), d.bytes.end());
  }
  if (budget_bytes < lo || budget_bytes > hi) {
    const double n = static_cast<double>(plan.n_elements);
    throw Error("a budget of " + format_bpw(8.0 * static_cast<double>(budget_bytes) / n) +
                " bits per weight is out of reach for this model: its quantized tensors take " +
                format_bpw(plan.min_bits_per_weight()) + " (cheapest candidates) to " +
                format_bpw(plan.max_bits_per_weight()) + " (dearest) bits per weight");
  }
  const std::vector<size_t> pick = allocate_types(items, budget_bytes);
  for (size_t t = 0; t < plan.tensors.size(); ++t) plan.tensors[t].chosen = pick[t];
  plan.budget_bytes = budget_bytes;
}

void allocate_dynamic(DynamicPlan& plan, double bits_per_weight, DynamicWeighting weighting) {
  if (!std::isfinite(bits_per_weight) || bits_per_weight <= 0)
    throw Error("bits per weight must be a positive number, not " + format_bpw(bits_per_weight));
  // The 1e-6 byte keeps a budget that is exactly an end of the range reachable despite rounding.
  const double budget = std::floor(bits_per_weight * static_cast<double>(plan.n_elements) / 8.0 + 1e-6);
  allocate_dynamic_bytes(plan, static_cast<uint64_t>(std::min(budget, 1.8e19)), weighting);
}

uint64_t mix_bytes(const gguf::File& in, const QuantizeParams& params, const DynamicPlan& plan) {
  QuantizeParams p = params;
  p.tensor_types.clear();
  std::map<std::string, uint64_t> by_name;
  for (const TensorPlan& t : plan_quantization(in, p)) by_name[t.name] = t.bytes_out;
  uint64_t b = 0;
  for (const DynamicTensor& d : plan.tensors) b += by_name.at(d.name);
  return b;
}

}  // namespace hearth::quant

#include "kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/dot.h"
#include "kernels/fp16_table.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace hearth::kernels {
namespace {

/// Query rows (tokens × heads of one GQA group) the SIMD kernels take per block: their Q tile
/// (rows × head_dim_k floats, 16 KiB at head_dim 128) stays in L1 while K streams past it.
constexpr int kBlockRows = 32;

[[noreturn]] void bad(const std::string& what) { throw Error("attention: " + what); }

/// Checks what attention_f16 and attention_flash share; returns whether any span is non-empty.
bool check_common(const float* q, int64_t n_tokens, const AttnShape& s, const AttnSpan* spans, const float* out) {
  if (n_tokens < 0) bad("negative token count " + std::to_string(n_tokens));
  if (s.n_head <= 0 || s.n_head_kv <= 0 || s.head_dim_k <= 0 || s.head_dim_v <= 0)
    bad("bad shape: n_head " + std::to_string(s.n_head) + ", n_head_kv " + std::to_string(s.n_head_kv) +
        ", head_dim_k " + std::to_string(s.head_dim_k) + ", head_dim_v " + std::to_string(s.head_dim_v) +
        " (all must be positive)");
  if (s.n_head % s.n_head_kv != 0)
    bad("n_head " + std::to_string(s.n_head) + " is not a multiple of n_head_kv " + std::to_string(s.n_head_kv));
  if (n_tokens == 0) return false;
  if (q == nullptr || out == nullptr || spans == nullptr) bad("null q, out or spans for " + std::to_string(n_tokens) + " tokens");
  bool any = false;
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (spans[t].n < 0) bad("span of token " + std::to_string(t) + " has negative length " + std::to_string(spans[t].n));
    if (spans[t].n > 0 && spans[t].cells == nullptr) bad("span of token " + std::to_string(t) + " has no cell list");
    any = any || spans[t].n > 0;
  }
  return any;
}

void check_args(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerF16& kv, const AttnSpan* spans,
                const float* out) {
  if (!check_common(q, n_tokens, s, spans, out)) return;
  if (kv.k == nullptr || kv.v == nullptr) bad("null K or V cache");
  if (kv.k_stride < static_cast<int64_t>(s.n_head_kv) * s.head_dim_k ||
      kv.v_stride < static_cast<int64_t>(s.n_head_kv) * s.head_dim_v)
    bad("cell strides " + std::to_string(kv.k_stride) + " (K) / " + std::to_string(kv.v_stride) +
        " (V) halves are smaller than a cell's n_head_kv × head_dim");
}

void reference(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerF16& kv, const AttnSpan* spans,
               float* out, const ThreadPool& pool) {
  const float* h2f = fp16_table();
  const int group = s.n_head / s.n_head_kv;
  const int64_t n_tasks = n_tokens * s.n_head;
  pool.parallel_for(n_tasks, [&](int64_t t0, int64_t t1) {
    std::vector<float> qh(static_cast<size_t>(s.head_dim_k));
    std::vector<float> p;
    std::vector<float> acc(static_cast<size_t>(s.head_dim_v));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t t = task / s.n_head;
      const int h = static_cast<int>(task % s.n_head);
      const int g = h / group;
      const AttnSpan& span = spans[t];
      float* o = out + (t * s.n_head + h) * s.head_dim_v;
      if (span.n == 0) {
        std::fill(o, o + s.head_dim_v, 0.0f);
        continue;
      }
      const float* qsrc = q + (t * s.n_head + h) * s.head_dim_k;
      for (int d = 0; d < s.head_dim_k; ++d) qh[d] = quant::round_to_fp16(qsrc[d]);
      // Scores.
      p.resize(static_cast<size_t>(span.n));
      float mx = -INFINITY;
      for (int32_t j = 0; j < span.n; ++j) {
        const uint16_t* kr = kv.k + static_cast<int64_t>(span.cells[j]) * kv.k_stride + g * s.head_dim_k;
        float dot = 0.0f;
        for (int d = 0; d < s.head_dim_k; ++d) dot += qh[d] * h2f[kr[d]];
        p[j] = dot * s.scale;
        mx = std::max(mx, p[j]);
      }
      // Softmax (sum in double), probabilities rounded to F16 as the P·V product sees them.
      double sum = 0.0;
      for (int32_t j = 0; j < span.n; ++j) {
        p[j] = std::exp(p[j] - mx);
        sum += p[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int32_t j = 0; j < span.n; ++j) {
        const float pj = quant::round_to_fp16(p[j] * inv);
        const uint16_t* vr = kv.v + static_cast<int64_t>(span.cells[j]) * kv.v_stride + g * s.head_dim_v;
        for (int d = 0; d < s.head_dim_v; ++d) acc[d] += pj * h2f[vr[d]];
      }
      std::copy(acc.begin(), acc.end(), o);
    }
  });
}

// ---- attention_flash: checks and the scalar reference ----

void check_flash_args(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerView& kv,
                      const AttnSpan* spans, const float* out) {
  for (const auto& [type, which] : {std::pair{kv.k_type, "K"}, std::pair{kv.v_type, "V"}}) {
    if (!attention_flash_supports(type))
      bad(std::string("flash attention cannot read a ") + which + " cache of type " +
          std::string(quant::type_name(type)) + " (it reads F16, BF16, Q8_0, Q4_0)");
  }
  if (!check_common(q, n_tokens, s, spans, out)) return;
  const int64_t bk = quant::traits(kv.k_type).blck_size, bv = quant::traits(kv.v_type).blck_size;
  if (s.head_dim_k % bk != 0)
    bad("head_dim_k " + std::to_string(s.head_dim_k) + " is not a multiple of the " +
        std::string(quant::type_name(kv.k_type)) + " block size " + std::to_string(bk));
  if (s.head_dim_v % bv != 0)
    bad("head_dim_v " + std::to_string(s.head_dim_v) + " is not a multiple of the " +
        std::string(quant::type_name(kv.v_type)) + " block size " + std::to_string(bv));
  if (kv.k == nullptr || kv.v == nullptr) bad("null K or V cache");
  const int64_t k_row = static_cast<int64_t>(quant::row_size(kv.k_type, int64_t{s.n_head_kv} * s.head_dim_k));
  const int64_t v_row = static_cast<int64_t>(quant::row_size(kv.v_type, int64_t{s.n_head_kv} * s.head_dim_v));
  if (kv.k_stride < k_row || kv.v_stride < v_row)
    bad("cell strides " + std::to_string(kv.k_stride) + " (K) / " + std::to_string(kv.v_stride) +
        " (V) bytes are smaller than a cell's rows of " + std::to_string(k_row) + " / " + std::to_string(v_row) +
        " bytes");
}

/// scale-free score dot(K row, q') of attention_flash (kernels/attention.h): `k` one KV head's K
/// row of type kt, `qc` the query head converted to kt's vec_dot_type, n = head_dim_k.
float flash_dot(quant::GgmlType kt, const uint8_t* k, const uint8_t* qc, int n) {
  float sum = 0.0f;
  switch (kt) {
    case quant::GgmlType::F16: {
      const float* h2f = fp16_table();
      const auto* kk = reinterpret_cast<const uint16_t*>(k);
      const auto* qq = reinterpret_cast<const uint16_t*>(qc);
      for (int d = 0; d < n; ++d) sum += h2f[kk[d]] * h2f[qq[d]];
      return sum;
    }
    case quant::GgmlType::BF16: {
      const auto* kk = reinterpret_cast<const uint16_t*>(k);
      const auto* qq = reinterpret_cast<const uint16_t*>(qc);
      for (int d = 0; d < n; ++d) sum += quant::bf16_to_fp32(kk[d]) * quant::bf16_to_fp32(qq[d]);
      return sum;
    }
    case quant::GgmlType::Q8_0: {
      const auto* kb = reinterpret_cast<const quant::block_q8_0*>(k);
      const auto* qb = reinterpret_cast<const quant::block_q8_0*>(qc);
      for (int b = 0; b < n / quant::QK8_0; ++b) {
        int32_t isum = 0;
        for (int e = 0; e < quant::QK8_0; ++e) isum += kb[b].qs[e] * qb[b].qs[e];
        sum += (quant::fp16_to_fp32(kb[b].d) * quant::fp16_to_fp32(qb[b].d)) * static_cast<float>(isum);
      }
      return sum;
    }
    default: {  // Q4_0
      const auto* kb = reinterpret_cast<const quant::block_q4_0*>(k);
      const auto* qb = reinterpret_cast<const quant::block_q8_0*>(qc);
      for (int b = 0; b < n / quant::QK4_0; ++b) {
        int32_t isum = 0;
        for (int e = 0; e < 16; ++e)
          isum += ((kb[b].qs[e] & 0x0F) - 8) * qb[b].qs[e] + ((kb[b].qs[e] >> 4) - 8) * qb[b].qs[e + 16];
        sum += (quant::fp16_to_fp32(kb[b].d) * quant::fp16_to_fp32(qb[b].d)) * static_cast<float>(isum);
      }
      return sum;
    }
  }
}

void flash_reference(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerView& kv,
                     const AttnSpan* spans, float* out, const ThreadPool& pool) {
  const quant::GgmlType qtype = quant::traits(kv.k_type).vec_dot_type;
  const ActQuantizeFn convert_q = act_quantize_fn(qtype, CpuPath::scalar);
  const quant::ToFloatFn v_to_float = quant::traits(kv.v_type).to_float;
  const int dk = s.head_dim_k, dv = s.head_dim_v;
  const int64_t k_head = static_cast<int64_t>(quant::row_size(kv.k_type, dk));
  const int64_t v_head = static_cast<int64_t>(quant::row_size(kv.v_type, dv));
  const size_t q_bytes = quant::row_size(qtype, dk);
  const int group = s.n_head / s.n_head_kv;
  pool.parallel_for(n_tokens * s.n_head, [&](int64_t t0, int64_t t1) {
    std::vector<uint8_t> qc(q_bytes);
    std::vector<float> acc(static_cast<size_t>(dv)), vrow(static_cast<size_t>(dv)), sc(kFlashTileKeys);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t t = task / s.n_head;
      const int h = static_cast<int>(task % s.n_head);
      const int g = h / group;
      const AttnSpan& span = spans[t];
      float* o = out + (t * s.n_head + h) * dv;
      if (span.n == 0) {
        std::fill(o, o + dv, 0.0f);
        continue;
      }
      convert_q(q + (t * s.n_head + h) * dk, qc.data(), dk);
      float m = -INFINITY, sum = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int32_t j0 = 0; j0 < span.n; j0 += kFlashTileKeys) {
        const int32_t n = std::min<int32_t>(kFlashTileKeys, span.n - j0);
        float m_tile = -INFINITY;
        for (int32_t j = 0; j < n; ++j) {
          const uint8_t* kr = kv.k + static_cast<int64_t>(span.cells[j0 + j]) * kv.k_stride + g * k_head;
          sc[j] = flash_dot(kv.k_type, kr, qc.data(), dk) * s.scale;
          m_tile = std::max(m_tile, sc[j]);
        }
        if (m_tile == -INFINITY) continue;  // only with infinite inputs: these keys get probability 0
        if (m_tile > m) {
          const float alpha = std::exp(m - m_tile);  // 0 for the first tile
          sum *= alpha;
          for (float& a : acc) a *= alpha;
          m = m_tile;
        }
        for (int32_t j = 0; j < n; ++j) {
          const float p = std::exp(sc[j] - m);
          sum += p;
          v_to_float(kv.v + static_cast<int64_t>(span.cells[j0 + j]) * kv.v_stride + g * v_head, vrow.data(), dv);
          for (int d = 0; d < dv; ++d) acc[d] += p * vrow[d];
        }
      }
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      for (int d = 0; d < dv; ++d) o[d] = acc[d] * inv;
    }
  });
}

/// Tokens of one block whose spans overlap in memory, so that they are sub-ranges of one key list.
struct Group {
  const int32_t* cells;
  int32_t n_cells;
  int begin;  ///< first member in the flat member arrays
  int count;
};

#if defined(__x86_64__)
/// The SIMD driver: groups query tokens into blocks that share a key list, makes one job per
/// (group, KV head[, part of its query heads]) and runs the jobs on the pool (see below).
/// `kv` is set for attention_f16 jobs, `view` for attention_flash jobs.
void run_simd(void (*job_fn)(const AttnJob&), const float* q, int64_t n_tokens, const AttnShape& s,
              const KvLayerF16* kv, const KvLayerView* view, const AttnSpan* spans, float* out,
              const ThreadPool& pool) {
  const int group_size = s.n_head / s.n_head_kv;
  const int64_t block = std::max(1, kBlockRows / group_size);

  std::vector<int64_t> tokens;
  std::vector<int32_t> lo, hi;
  std::vector<Group> groups;
  tokens.reserve(static_cast<size_t>(n_tokens));
  lo.reserve(static_cast<size_t>(n_tokens));
  hi.reserve(static_cast<size_t>(n_tokens));
  std::vector<int64_t> idx;
  for (int64_t b0 = 0; b0 < n_tokens; b0 += block) {
    const int64_t b1 = std::min(n_tokens, b0 + block);
    idx.clear();
    for (int64_t t = b0; t < b1; ++t) {
      if (spans[t].n > 0) {
        idx.push_back(t);
      } else {
        float* o = out + t * s.n_head * s.head_dim_v;
        std::fill(o, o + static_cast<int64_t>(s.n_head) * s.head_dim_v, 0.0f);
      }
    }
    // Spans whose cell ranges overlap lie in one array (distinct objects never overlap): merge
    // them into one key list. Addresses are compared as integers.
    auto start = [&](int64_t t) { return reinterpret_cast<uintptr_t>(spans[t].cells); };
    auto end = [&](int64_t t) { return start(t) + static_cast<uintptr_t>(spans[t].n) * sizeof(int32_t); };
    std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
      return start(a) != start(b) ? start(a) < start(b) : a < b;
    });
    for (size_t i = 0; i < idx.size();) {
      uintptr_t g_end = end(idx[i]);
      size_t k = i + 1;
      while (k < idx.size() && start(idx[k]) < g_end) g_end = std::max(g_end, end(idx[k++]));
      const uintptr_t lo_addr = start(idx[i]);  // the lowest start: idx is sorted by start
      // Members in token order (causal spans then grow row by row).
      std::sort(idx.begin() + static_cast<int64_t>(i), idx.begin() + static_cast<int64_t>(k));
      Group g{reinterpret_cast<const int32_t*>(lo_addr), static_cast<int32_t>((g_end - lo_addr) / sizeof(int32_t)),
              static_cast<int>(tokens.size()), static_cast<int>(k - i)};
      for (size_t m = i; m < k; ++m) {
        const int32_t l = static_cast<int32_t>((start(idx[m]) - lo_addr) / sizeof(int32_t));
        tokens.push_back(idx[m]);
        lo.push_back(l);
        hi.push_back(l + spans[idx[m]].n);
      }
      groups.push_back(g);
      i = k;
    }
  }
  if (groups.empty()) return;

  // Jobs: (group, KV head), the query heads split further when there are too few of them to
  // keep every thread busy (decode with few KV heads).
  const int64_t units = static_cast<int64_t>(groups.size()) * s.n_head_kv;
  const int64_t want = 2 * static_cast<int64_t>(pool.n_threads());
  const int parts = units >= want ? 1 : static_cast<int>(std::min<int64_t>(group_size, (want + units - 1) / units));
  std::vector<AttnJob> jobs;
  std::vector<double> cost;
  jobs.reserve(static_cast<size_t>(units * parts));
  for (const Group& g : groups) {
    double span_sum = 0;
    for (int m = g.begin; m < g.begin + g.count; ++m) span_sum += hi[m] - lo[m];
    for (int kvh = 0; kvh < s.n_head_kv; ++kvh) {
      for (int p = 0; p < parts; ++p) {
        const int h0 = group_size * p / parts, h1 = group_size * (p + 1) / parts;
        if (h1 == h0) continue;
        AttnJob j;
        j.q = q;
        j.out = out;
        j.shape = &s;
        j.kv = kv;
        j.view = view;
        j.kv_head = kvh;
        j.head0 = h0;
        j.n_heads = h1 - h0;
        j.cells = g.cells;
        j.n_cells = g.n_cells;
        j.tokens = tokens.data() + g.begin;
        j.lo = lo.data() + g.begin;
        j.hi = hi.data() + g.begin;
        j.n_tokens = g.count;
        jobs.push_back(j);
        cost.push_back(span_sum * (h1 - h0));
      }
    }
  }
  // Taken in order by whichever thread is free: KV head by KV head (the threads then share
  // one head's K and V, which stay in cache while they work), each head's jobs largest first
  // (the causal blocks at the end of a prompt cost the most), so that the last jobs are small.
  // Jobs write disjoint rows of `out` (n_heads·head_dim_v floats each, whole cache lines for
  // head dims that are multiples of 16).
  std::vector<int32_t> order(jobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return jobs[a].kv_head != jobs[b].kv_head ? jobs[a].kv_head < jobs[b].kv_head : cost[a] > cost[b];
  });
  std::atomic<int64_t> next{0};
  const int64_t n_jobs = static_cast<int64_t>(jobs.size());
  pool.run_on_all([&](int) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_jobs;
         i = next.fetch_add(1, std::memory_order_relaxed))
      job_fn(jobs[static_cast<size_t>(order[static_cast<size_t>(i)])]);
  });
}
#endif

}  // namespace

void attention_f16_scalar(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerF16& kv,
                          const AttnSpan* spans, float* out, const ThreadPool& pool) {
  check_args(q, n_tokens, s, kv, spans, out);
  if (n_tokens > 0) reference(q, n_tokens, s, kv, spans, out, pool);
}

void attention_f16_path(CpuPath path, const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerF16& kv,
                        const AttnSpan* spans, float* out, const ThreadPool& pool) {
  check_args(q, n_tokens, s, kv, spans, out);
  if (!cpu_supports(path))
    bad(std::string("this CPU cannot run the ") + cpu_path_name(path) + " kernels (it has: " +
        cpu_feature_names(cpu_features()) + ")");
  if (n_tokens == 0) return;
#if defined(__x86_64__)
  if (path != CpuPath::scalar && s.head_dim_k % 8 == 0 && s.head_dim_v % 8 == 0) {
    run_simd(path == CpuPath::avx512 ? avx512::attention_job : avx2::attention_job, q, n_tokens, s, &kv, nullptr,
             spans, out, pool);
    return;
  }
#endif
  reference(q, n_tokens, s, kv, spans, out, pool);
}

void attention_f16(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerF16& kv, const AttnSpan* spans,
                   float* out, const ThreadPool& pool) {
  attention_f16_path(active_cpu_path(), q, n_tokens, s, kv, spans, out, pool);
}

bool attention_flash_supports(quant::GgmlType type) {
  return type == quant::GgmlType::F16 || type == quant::GgmlType::BF16 || type == quant::GgmlType::Q8_0 ||
         type == quant::GgmlType::Q4_0;
}

void attention_flash_scalar(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerView& kv,
                            const AttnSpan* spans, float* out, const ThreadPool& pool) {
  check_flash_args(q, n_tokens, s, kv, spans, out);
  if (n_tokens > 0) flash_reference(q, n_tokens, s, kv, spans, out, pool);
}

void attention_flash_path(CpuPath path, const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerView& kv,
                          const AttnSpan* spans, float* out, const ThreadPool& pool) {
  check_flash_args(q, n_tokens, s, kv, spans, out);
  if (!cpu_supports(path))
    bad(std::string("this CPU cannot run the ") + cpu_path_name(path) + " kernels (it has: " +
        cpu_feature_names(cpu_features()) + ")");
  if (n_tokens == 0) return;
#if defined(__x86_64__)
  if (path != CpuPath::scalar && s.head_dim_k % 8 == 0 && s.head_dim_v % 8 == 0) {
    run_simd(avx2::flash_job, q, n_tokens, s, nullptr, &kv, spans, out, pool);
    return;
  }
#endif
  flash_reference(q, n_tokens, s, kv, spans, out, pool);
}

void attention_flash(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerView& kv,
                     const AttnSpan* spans, float* out, const ThreadPool& pool) {
  attention_flash_path(active_cpu_path(), q, n_tokens, s, kv, spans, out, pool);
}

void attention_exp_f32(CpuPath path, const float* x, float* y, int64_t n) {
  if (!cpu_supports(path))
    bad(std::string("this CPU cannot run the ") + cpu_path_name(path) + " kernels (it has: " +
        cpu_feature_names(cpu_features()) + ")");
#if defined(__x86_64__)
  if (path == CpuPath::avx512) return avx512::exp_f32(x, y, n);
  if (path == CpuPath::avx2) return avx2::exp_f32(x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

}  // namespace hearth::kernels

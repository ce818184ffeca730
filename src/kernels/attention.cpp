#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/fp16_table.h"
#include "quant/fp16.h"

namespace hearth::kernels {

void attention_f16(const float* q, int64_t n_tokens, const AttnShape& s, const KvLayerF16& kv, const AttnSpan* spans,
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

}  // namespace hearth::kernels

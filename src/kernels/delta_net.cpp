// Gated DeltaNet kernels: the scalar references, the chunked form's driver and the dispatch of
// its matrix products (kernels/delta_net.h; AVX2 micro-kernel in delta_net_avx2.cpp).
#include "kernels/delta_net.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hearth/error.h"

namespace hearth::kernels {

namespace {

void gemm_scalar(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* crow = c + i * ldc;
    for (int64_t p = 0; p < k; ++p) {
      const float aip = a[i * lda + p];
      const float* brow = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) crow[j] += aip * brow[j];
    }
  }
}

// Buffers of one chunk, reused by every call on this thread.
struct ChunkScratch {
  std::vector<float> q, k, kt, v, g, beta, kk, qk, t, bv, bk, u, w, o, p, kd, qg;
};

ChunkScratch& chunk_scratch() {
  thread_local ChunkScratch s;
  return s;
}

float* sized(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

void check_shape(const DeltaNetShape& s) {
  if (s.n_k_heads <= 0 || s.n_v_heads <= 0 || s.d_k <= 0 || s.d_v <= 0)
    throw Error("Gated DeltaNet: bad head shape (" + std::to_string(s.n_k_heads) + " k-heads, " +
                std::to_string(s.n_v_heads) + " v-heads, d_k " + std::to_string(s.d_k) + ", d_v " +
                std::to_string(s.d_v) + ")");
  if (s.n_v_heads % s.n_k_heads != 0)
    throw Error("Gated DeltaNet: " + std::to_string(s.n_v_heads) + " v-heads are not a multiple of " +
                std::to_string(s.n_k_heads) + " k-heads");
}

}  // namespace

void delta_net_gemm(CpuPath path, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float* c, int64_t ldc) {
#if defined(__x86_64__)
  if (path >= CpuPath::avx2) {
    avx2::delta_net_gemm(m, n, k, a, lda, b, ldb, c, ldc);
    return;
  }
#endif
  gemm_scalar(m, n, k, a, lda, b, ldb, c, ldc);
}

void delta_net_head_steps(const DeltaNetShape& shape, const DeltaNetSeq& seq, int head) {
  const int dk = shape.d_k, dv = shape.d_v, kh = shape.k_head(head);
  float* s = seq.state + int64_t{head} * dk * dv;
  thread_local std::vector<float> sk, delta;
  sk.resize(static_cast<size_t>(dv));
  delta.resize(static_cast<size_t>(dv));
  for (int64_t i = 0; i < seq.n_tokens; ++i) {
    const int64_t row = seq.rows[i];
    const float* q = seq.q + row * seq.ld_qk + int64_t{kh} * dk;
    const float* k = seq.k + row * seq.ld_qk + int64_t{kh} * dk;
    const float* v = seq.v + row * seq.ld_v + int64_t{head} * dv;
    const float decay = std::exp(seq.g[row * seq.ld_gb + head]);
    const float beta = seq.beta[row * seq.ld_gb + head];
    float* o = seq.out + row * seq.ld_out + int64_t{head} * dv;
    std::fill(sk.begin(), sk.end(), 0.0f);
    for (int ik = 0; ik < dk; ++ik) {  // S ← e^g·S;  sk = Sᵀk
      float* srow = s + int64_t{ik} * dv;
      for (int c = 0; c < dv; ++c) {
        srow[c] *= decay;
        sk[static_cast<size_t>(c)] += k[ik] * srow[c];
      }
    }
    for (int c = 0; c < dv; ++c) delta[static_cast<size_t>(c)] = beta * (v[c] - sk[static_cast<size_t>(c)]);
    std::fill(o, o + dv, 0.0f);
    for (int ik = 0; ik < dk; ++ik) {  // S ← S + k·δᵀ;  o = Sᵀq
      float* srow = s + int64_t{ik} * dv;
      for (int c = 0; c < dv; ++c) {
        srow[c] += k[ik] * delta[static_cast<size_t>(c)];
        o[c] += q[ik] * srow[c];
      }
    }
  }
}

void delta_net_head_chunked(const DeltaNetShape& shape, const DeltaNetSeq& seq, int head, CpuPath path, int chunk) {
  if (chunk < 1) throw Error("Gated DeltaNet: chunk length " + std::to_string(chunk) + " must be at least 1");
  if (!cpu_supports(path)) throw Error(std::string("this CPU cannot run the ") + cpu_path_name(path) + " kernels");
  const int64_t dk = shape.d_k, dv = shape.d_v, kh = shape.k_head(head);
  const int64_t L = chunk;
  float* s = seq.state + int64_t{head} * dk * dv;
  ChunkScratch& sc = chunk_scratch();
  float* qc = sized(sc.q, L * dk);
  float* kc = sized(sc.k, L * dk);
  float* kt = sized(sc.kt, dk * L);
  float* vc = sized(sc.v, L * dv);
  float* gc = sized(sc.g, L);
  float* bc = sized(sc.beta, L);
  float* kk = sized(sc.kk, L * L);
  float* qk = sized(sc.qk, L * L);
  float* tm = sized(sc.t, L * L);
  float* bv = sized(sc.bv, L * dv);
  float* bk = sized(sc.bk, L * dk);
  float* u = sized(sc.u, L * dv);
  float* w = sized(sc.w, L * dk);
  float* o = sized(sc.o, L * dv);
  float* p = sized(sc.p, L * L);
  float* kd = sized(sc.kd, dk * L);
  float* qg = sized(sc.qg, L * dk);
  auto gemm = [&](int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc) { delta_net_gemm(path, m, n, k, a, lda, b, ldb, c, ldc); };

  for (int64_t c0 = 0; c0 < seq.n_tokens; c0 += L) {
    const int64_t n = std::min(L, seq.n_tokens - c0);
    // Gather the chunk; G = within-chunk cumulative log decay (summed in token order).
    float acc = 0.0f;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t row = seq.rows[c0 + t];
      std::copy_n(seq.q + row * seq.ld_qk + kh * dk, dk, qc + t * dk);
      std::copy_n(seq.k + row * seq.ld_qk + kh * dk, dk, kc + t * dk);
      std::copy_n(seq.v + row * seq.ld_v + int64_t{head} * dv, dv, vc + t * dv);
      acc += seq.g[row * seq.ld_gb + head];
      gc[t] = acc;
      bc[t] = seq.beta[row * seq.ld_gb + head];
    }
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < dk; ++i) kt[i * n + t] = kc[t * dk + i];
    // Gram matrices ⟨k_t, k_s⟩ and ⟨q_t, k_s⟩.
    std::fill_n(kk, n * n, 0.0f);
    std::fill_n(qk, n * n, 0.0f);
    gemm(n, n, dk, kc, dk, kt, n, kk, n);
    gemm(n, n, dk, qc, dk, kt, n, qk, n);
    // T = (I + A)^{-1} by forward substitution, row t: T[t] = e_t − Σ_{s<t} A[t][s]·T[s].
    std::fill_n(tm, n * n, 0.0f);
    for (int64_t t = 0; t < n; ++t) {
      float* trow = tm + t * n;
      trow[t] = 1.0f;
      for (int64_t s2 = 0; s2 < t; ++s2) {
        const float a = bc[t] * std::exp(gc[t] - gc[s2]) * kk[t * n + s2];
        const float* srow = tm + s2 * n;
        for (int64_t x = 0; x <= s2; ++x) trow[x] -= a * srow[x];
      }
    }
    // U = T·(β ⊙ V);  W = T·(β·e^G ⊙ K), negated.
    for (int64_t t = 0; t < n; ++t) {
      const float egb = bc[t] * std::exp(gc[t]);
      for (int64_t c = 0; c < dv; ++c) bv[t * dv + c] = bc[t] * vc[t * dv + c];
      for (int64_t i = 0; i < dk; ++i) bk[t * dk + i] = egb * kc[t * dk + i];
    }
    std::fill_n(u, n * dv, 0.0f);
    std::fill_n(w, n * dk, 0.0f);
    gemm(n, dv, n, tm, n, bv, dv, u, dv);
    gemm(n, dk, n, tm, n, bk, dk, w, dk);
    for (int64_t x = 0; x < n * dk; ++x) w[x] = -w[x];
    // V_new = U − W·S (in u).
    gemm(n, dv, dk, w, dk, s, dv, u, dv);
    // O = (e^G ⊙ Q)·S + P·V_new.
    for (int64_t t = 0; t < n; ++t) {
      const float eg = std::exp(gc[t]);
      for (int64_t i = 0; i < dk; ++i) qg[t * dk + i] = eg * qc[t * dk + i];
      for (int64_t s2 = 0; s2 < n; ++s2) p[t * n + s2] = s2 <= t ? std::exp(gc[t] - gc[s2]) * qk[t * n + s2] : 0.0f;
    }
    std::fill_n(o, n * dv, 0.0f);
    gemm(n, dv, dk, qg, dk, s, dv, o, dv);
    gemm(n, dv, n, p, n, u, dv, o, dv);
    for (int64_t t = 0; t < n; ++t)
      std::copy_n(o + t * dv, dv, seq.out + int64_t{seq.rows[c0 + t]} * seq.ld_out + int64_t{head} * dv);
    // S ← e^{G_L}·S + Σ_s e^{G_L−G_s}·k_s·V_new[s]ᵀ.
    const float gl = gc[n - 1];
    const float el = std::exp(gl);
    for (int64_t x = 0; x < dk * dv; ++x) s[x] *= el;
    for (int64_t s2 = 0; s2 < n; ++s2) {
      const float e = std::exp(gl - gc[s2]);
      for (int64_t i = 0; i < dk; ++i) kd[i * n + s2] = e * kt[i * n + s2];
    }
    gemm(dk, dv, n, kd, n, u, dv, s, dv);
  }
}

void delta_net(const DeltaNetShape& shape, std::span<const DeltaNetSeq> seqs, const ThreadPool& pool) {
  check_shape(shape);
  const CpuPath path = active_cpu_path();
  const int64_t n_units = static_cast<int64_t>(seqs.size()) * shape.n_v_heads;
  pool.parallel_for(n_units, [&](int64_t u0, int64_t u1) {
    for (int64_t unit = u0; unit < u1; ++unit) {
      const DeltaNetSeq& seq = seqs[static_cast<size_t>(unit / shape.n_v_heads)];
      const int head = static_cast<int>(unit % shape.n_v_heads);
      if (seq.n_tokens == 1) {
        delta_net_head_steps(shape, seq, head);
      } else if (seq.n_tokens > 1) {
        delta_net_head_chunked(shape, seq, head, path);
      }
    }
  });
}

void conv1d_silu(const float* w_t, int kernel, int64_t channels, float* state, const float* x, int64_t ldx,
                 const int32_t* rows, int64_t n_tokens, float* y, int64_t ldy, const ThreadPool& pool) {
  if (kernel < 1) throw Error("convolution kernel of " + std::to_string(kernel) + " taps");
  constexpr int64_t kBlock = 256;  // channels per work item
  const int64_t hist = kernel - 1;
  pool.parallel_for(
      channels,
      [&](int64_t c0, int64_t c1) {
        float acc[kBlock];
        for (int64_t cb = c0; cb < c1; cb += kBlock) {
          const int64_t ce = std::min(c1, cb + kBlock), nc = ce - cb;
          for (int64_t i = 0; i < n_tokens; ++i) {
            std::fill_n(acc, nc, 0.0f);
            for (int k = 0; k < kernel; ++k) {
              const int64_t m = i - hist + k;
              const float* src = m < 0 ? state + (m + hist) * channels : x + int64_t{rows[m]} * ldx;
              const float* wk = w_t + int64_t{k} * channels;
              for (int64_t c = 0; c < nc; ++c) acc[c] += wk[cb + c] * src[cb + c];
            }
            float* yr = y + int64_t{rows[i]} * ldy + cb;
            for (int64_t c = 0; c < nc; ++c) yr[c] = acc[c] / (1.0f + std::exp(-acc[c]));
          }
          // The new state: the last K-1 rows of [state | x] (rows shift up, so ascending order
          // reads every old row before it is overwritten).
          for (int64_t r = 0; r < hist; ++r) {
            const int64_t m = n_tokens - hist + r;
            const float* src = m < 0 ? state + (m + hist) * channels : x + int64_t{rows[m]} * ldx;
            std::copy_n(src + cb, nc, state + r * channels + cb);
          }
        }
      },
      kBlock);
}

void l2_norm_scaled(float* x, int64_t n, int dim, int64_t ld, float eps, float scale) {
  for (int64_t r = 0; r < n; ++r) {
    float* v = x + r * ld;
    double sum = 0.0;
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(v[i] * v[i]);
    const float inv = 1.0f / std::max(std::sqrt(static_cast<float>(sum)), eps);
    for (int i = 0; i < dim; ++i) v[i] *= inv;
    if (scale != 1.0f)
      for (int i = 0; i < dim; ++i) v[i] *= scale;
  }
}

}  // namespace hearth::kernels

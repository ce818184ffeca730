// Gated DeltaNet kernels (kernels/delta_net.h): the step form against the formula of
// architectures.md §7.3 evaluated in double; the chunked form (§7.5) against the step form on
// random inputs, for every CPU path this machine runs, several chunk lengths and sequence
// lengths around the chunk boundaries; the AVX2 matrix product against the scalar one; the
// driver with interleaved sequences; the causal convolution and the L2 norm against their
// formulas.
#include "kernels/delta_net.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/cpu.h"
#include "kernels/threadpool.h"

namespace hearth::kernels {
namespace {

std::vector<CpuPath> runnable_paths() {
  std::vector<CpuPath> out;
  for (CpuPath p : {CpuPath::scalar, CpuPath::avx2, CpuPath::avx512})
    if (cpu_supports(p)) out.push_back(p);
  return out;
}

// Random inputs of one sequence laid out as the model lays them out: per batch row, q and k
// of every k-head (L2-normalised, q scaled by 1/sqrt(d_k)), v of every v-head, g and β per
// v-head. The sequence's tokens are the batch rows `rows` (any order of the buffer's rows).
struct Inputs {
  DeltaNetShape shape;
  int64_t n_rows = 0;
  std::vector<float> q, k, v, g, beta, state;
  std::vector<int32_t> rows;

  Inputs(const DeltaNetShape& s, int64_t n_tokens, uint32_t seed, float g_min = -2.0f) : shape(s), n_rows(n_tokens) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ug(g_min, 0.0f), ub(0.0f, 1.0f);
    const int64_t wqk = int64_t{s.n_k_heads} * s.d_k, wv = int64_t{s.n_v_heads} * s.d_v;
    q.resize(static_cast<size_t>(n_rows * wqk));
    k.resize(q.size());
    v.resize(static_cast<size_t>(n_rows * wv));
    for (auto* buf : {&q, &k}) {
      for (auto& x : *buf) x = nd(rng);
      for (int64_t r = 0; r < n_rows * s.n_k_heads; ++r) {
        float* h = buf->data() + r * s.d_k;
        double n2 = 0;
        for (int i = 0; i < s.d_k; ++i) n2 += double{h[i]} * h[i];
        const float scale =
            static_cast<float>(1.0 / std::sqrt(n2)) * (buf == &q ? 1.0f / std::sqrt(float(s.d_k)) : 1.0f);
        for (int i = 0; i < s.d_k; ++i) h[i] *= scale;
      }
    }
    for (auto& x : v) x = nd(rng);
    g.resize(static_cast<size_t>(n_rows * s.n_v_heads));
    beta.resize(g.size());
    for (auto& x : g) x = ug(rng);
    for (auto& x : beta) x = ub(rng);
    state.resize(static_cast<size_t>(s.state_floats()));
    for (auto& x : state) x = 0.5f * nd(rng);
    // Tokens in a shuffled order of the rows: the kernels must follow `rows`.
    rows.resize(static_cast<size_t>(n_rows));
    for (int64_t i = 0; i < n_rows; ++i) rows[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    std::shuffle(rows.begin(), rows.end(), rng);
  }

  DeltaNetSeq seq(std::vector<float>& out, std::vector<float>& st) {
    out.assign(static_cast<size_t>(n_rows * shape.n_v_heads * shape.d_v), 0.0f);
    st = state;
    DeltaNetSeq s;
    s.q = q.data();
    s.k = k.data();
    s.ld_qk = int64_t{shape.n_k_heads} * shape.d_k;
    s.v = v.data();
    s.ld_v = int64_t{shape.n_v_heads} * shape.d_v;
    s.g = g.data();
    s.beta = beta.data();
    s.ld_gb = shape.n_v_heads;
    s.out = out.data();
    s.ld_out = int64_t{shape.n_v_heads} * shape.d_v;
    s.rows = rows.data();
    s.n_tokens = n_rows;
    s.state = st.data();
    return s;
  }
};

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float x : a) m = std::max(m, double{std::abs(x)});
  return m;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(double{a[i]} - b[i]));
  return m;
}

TEST(DeltaNet, StepsMatchTheFormulaInDouble) {
  for (bool tiled : {true, false}) {
    const DeltaNetShape shape{2, 6, 8, 8, tiled};
    Inputs in(shape, 9, 11);
    std::vector<float> out, st;
    const DeltaNetSeq seq = in.seq(out, st);
    for (int j = 0; j < shape.n_v_heads; ++j) delta_net_head_steps(shape, seq, j);
    // §7.3 literally, in double: S_j[i][c] (key index i, value index c); v-head j reads q/k head
    // κ(j) = j mod H_k (tiled) or j / (H_v/H_k) (grouped).
    const int dk = shape.d_k, dv = shape.d_v, r = shape.n_v_heads / shape.n_k_heads;
    for (int j = 0; j < shape.n_v_heads; ++j) {
      const int kappa = tiled ? j % shape.n_k_heads : j / r;
      std::vector<double> s(in.state.begin() + j * dk * dv, in.state.begin() + (j + 1) * dk * dv);
      for (int64_t t = 0; t < in.n_rows; ++t) {
        const int64_t row = in.rows[static_cast<size_t>(t)];
        const float* q = in.q.data() + row * seq.ld_qk + kappa * dk;
        const float* k = in.k.data() + row * seq.ld_qk + kappa * dk;
        const float* v = in.v.data() + row * seq.ld_v + j * dv;
        const double decay = std::exp(double{in.g[static_cast<size_t>(row * shape.n_v_heads + j)]});
        const double beta = in.beta[static_cast<size_t>(row * shape.n_v_heads + j)];
        for (double& x : s) x *= decay;
        std::vector<double> delta(static_cast<size_t>(dv));
        for (int c = 0; c < dv; ++c) {
          double stk = 0;
          for (int i = 0; i < dk; ++i) stk += s[static_cast<size_t>(i * dv + c)] * k[i];
          delta[static_cast<size_t>(c)] = beta * (v[c] - stk);
        }
        for (int i = 0; i < dk; ++i)
          for (int c = 0; c < dv; ++c) s[static_cast<size_t>(i * dv + c)] += k[i] * delta[static_cast<size_t>(c)];
        for (int c = 0; c < dv; ++c) {
          double o = 0;
          for (int i = 0; i < dk; ++i) o += s[static_cast<size_t>(i * dv + c)] * q[i];
          EXPECT_NEAR(out[static_cast<size_t>(row * seq.ld_out + j * dv + c)], o, 1e-5)
              << "tiled " << tiled << " head " << j << " token " << t;
        }
      }
      for (int x = 0; x < dk * dv; ++x)
        EXPECT_NEAR(st[static_cast<size_t>(j * dk * dv + x)], s[static_cast<size_t>(x)], 1e-5) << "state of head " << j;
    }
  }
}

class DeltaNetPath : public testing::TestWithParam<CpuPath> {};

// The chunked form is an exact reformulation of the steps: outputs and final states agree up to
// float rounding (measured below 1e-5 of values of order 1; a wrong term is off by ~0.1).
TEST_P(DeltaNetPath, ChunkedMatchesSteps) {
  const CpuPath path = GetParam();
  struct Case {
    DeltaNetShape shape;
    int64_t n_tokens;
    int chunk;
    float g_min;
  };
  const std::vector<Case> cases = {
      {{2, 4, 16, 16, true}, 2, 64, -2.0f},   {{2, 4, 16, 16, true}, 5, 64, -2.0f},
      {{2, 4, 16, 16, true}, 63, 64, -2.0f},  {{2, 4, 16, 16, true}, 64, 64, -2.0f},
      {{2, 4, 16, 16, true}, 65, 64, -2.0f},  {{1, 2, 64, 64, true}, 130, 64, -1.0f},
      {{2, 4, 16, 16, false}, 23, 7, -2.0f},  {{3, 3, 20, 20, true}, 41, 16, -0.1f},
      {{2, 2, 24, 24, true}, 70, 64, -30.0f},  // decays that underflow e^G within a chunk
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    Inputs in(c.shape, c.n_tokens, static_cast<uint32_t>(100 + ci), c.g_min);
    std::vector<float> out_steps, st_steps, out_chunk, st_chunk;
    const DeltaNetSeq a = in.seq(out_steps, st_steps);
    const DeltaNetSeq b = in.seq(out_chunk, st_chunk);
    for (int j = 0; j < c.shape.n_v_heads; ++j) {
      delta_net_head_steps(c.shape, a, j);
      delta_net_head_chunked(c.shape, b, j, path, c.chunk);
    }
    const double scale_o = 1.0 + max_abs(out_steps), scale_s = 1.0 + max_abs(st_steps);
    EXPECT_LE(max_diff(out_chunk, out_steps), 2e-5 * scale_o) << "case " << ci << " outputs";
    EXPECT_LE(max_diff(st_chunk, st_steps), 2e-5 * scale_s) << "case " << ci << " final state";
  }
}

TEST_P(DeltaNetPath, GemmMatchesScalar) {
  const CpuPath path = GetParam();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {4, 16, 8}, {5, 17, 3}, {64, 128, 64}, {13, 40, 129}, {3, 7, 0}}) {
    const int64_t lda = k + 3, ldb = n + 5, ldc = n + 2;
    std::vector<float> a(static_cast<size_t>(m * lda)), b(static_cast<size_t>(std::max<int64_t>(k, 1) * ldb)),
        c0(static_cast<size_t>(m * ldc));
    for (auto* v : {&a, &b, &c0})
      for (auto& x : *v) x = nd(rng);
    std::vector<float> want = c0, got = c0;
    delta_net_gemm(CpuPath::scalar, m, n, k, a.data(), lda, b.data(), ldb, want.data(), ldc);
    delta_net_gemm(path, m, n, k, a.data(), lda, b.data(), ldb, got.data(), ldc);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        const size_t x = static_cast<size_t>(i * ldc + j);
        if (j >= n) {
          EXPECT_EQ(got[x], c0[x]) << "wrote outside the n columns";
          continue;
        }
        double bound = std::abs(double{c0[x]});
        for (int64_t p = 0; p < k; ++p)
          bound += std::abs(double{a[static_cast<size_t>(i * lda + p)]} * b[static_cast<size_t>(p * ldb + j)]);
        EXPECT_NEAR(got[x], want[x], 2e-6 * bound + 1e-30) << m << "x" << n << "x" << k << " at " << i << "," << j;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(CpuPaths, DeltaNetPath, testing::ValuesIn(runnable_paths()),
                         [](const testing::TestParamInfo<CpuPath>& info) {
                           return std::string(cpu_path_name(info.param));
                         });

TEST(DeltaNet, DriverRunsEverySequenceOnItsOwnState) {
  // Two sequences of 9 and 1 tokens interleaved in one batch buffer, run together on 2 threads,
  // equal each sequence run alone; the one-token sequence takes the step form.
  const DeltaNetShape shape{2, 4, 16, 16, true};
  Inputs in(shape, 10, 5);
  std::vector<int32_t> rows_a, rows_b{4};
  for (int32_t r = 0; r < 10; ++r)
    if (r != 4) rows_a.push_back(r);
  std::vector<float> out, st_a, st_b;
  DeltaNetSeq a = in.seq(out, st_a);
  st_b = in.state;
  for (auto& x : st_b) x = -x;
  DeltaNetSeq b = a;
  a.rows = rows_a.data();
  a.n_tokens = 9;
  b.rows = rows_b.data();
  b.n_tokens = 1;
  b.state = st_b.data();
  const ThreadPool pool2(2), pool1(1);
  delta_net(shape, std::vector<DeltaNetSeq>{a, b}, pool2);

  std::vector<float> out_alone(out.size(), 0.0f), st_a2 = in.state, st_b2 = in.state;
  for (auto& x : st_b2) x = -x;
  DeltaNetSeq a2 = a, b2 = b;
  a2.out = b2.out = out_alone.data();
  a2.state = st_a2.data();
  b2.state = st_b2.data();
  delta_net(shape, std::vector<DeltaNetSeq>{a2}, pool1);
  for (int j = 0; j < shape.n_v_heads; ++j) delta_net_head_steps(shape, b2, j);
  EXPECT_EQ(out, out_alone);
  EXPECT_EQ(st_a, st_a2);
  EXPECT_EQ(st_b, st_b2);
}

TEST(DeltaNet, BadShapesAndChunksAreErrors) {
  const ThreadPool pool(1);
  std::vector<DeltaNetSeq> none;
  EXPECT_THROW(delta_net({2, 3, 8, 8, true}, none, pool), Error);  // 3 v-heads, 2 k-heads
  EXPECT_THROW(delta_net({0, 2, 8, 8, true}, none, pool), Error);
  const DeltaNetShape shape{1, 1, 4, 4, true};
  Inputs in(shape, 3, 1);
  std::vector<float> out, st;
  EXPECT_THROW(delta_net_head_chunked(shape, in.seq(out, st), 0, CpuPath::scalar, 0), Error);
}

TEST(DeltaNet, ConvolutionMatchesTheFormulaAndCarriesItsState) {
  const int K = 4;
  const int64_t C = 300, n = 7;  // more channels than one work block
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w_t(static_cast<size_t>(K * C)), x(static_cast<size_t>(n * C)),
      state0(static_cast<size_t>((K - 1) * C));
  for (auto* v : {&w_t, &x, &state0})
    for (auto& e : *v) e = nd(rng);
  const std::vector<int32_t> rows{3, 0, 6, 1, 5, 2, 4};  // token i is batch row rows[i]
  const ThreadPool pool(2);
  std::vector<float> y(x.size()), state = state0;
  conv1d_silu(w_t.data(), K, C, state.data(), x.data(), C, rows.data(), n, y.data(), C, pool);
  // Formula of §7.3 in double: the inputs of token i are [state rows..., x rows...].
  auto input = [&](int64_t m, int64_t c) -> double {
    return m < 0 ? state0[static_cast<size_t>((m + K - 1) * C + c)]
                 : x[static_cast<size_t>(rows[static_cast<size_t>(m)] * C + c)];
  };
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += w_t[static_cast<size_t>(k * C + c)] * input(i - (K - 1) + k, c);
      const double want = acc / (1.0 + std::exp(-acc));
      EXPECT_NEAR(y[static_cast<size_t>(rows[static_cast<size_t>(i)] * C + c)], want, 1e-5)
          << "token " << i << " channel " << c;
    }
  for (int r = 0; r < K - 1; ++r)
    for (int64_t c = 0; c < C; ++c)
      EXPECT_EQ(state[static_cast<size_t>(r * C + c)], input(n - (K - 1) + r, c)) << "state row " << r;
  // The same tokens in calls of 2, 1 and 4 tokens give the same outputs and state.
  std::vector<float> y2(x.size()), state2 = state0;
  for (auto [b, e] : std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 3}, {3, 7}})
    conv1d_silu(w_t.data(), K, C, state2.data(), x.data(), C, rows.data() + b, e - b, y2.data(), C, pool);
  EXPECT_EQ(y, y2);
  EXPECT_EQ(state, state2);
}

TEST(DeltaNet, L2NormMatchesTheFormula) {
  std::vector<float> x{3.0f, 4.0f, 99.0f, 0.0f, 0.0f, 99.0f, 1.0f, 2.0f, 2.0f};
  // Two vectors of 2 at stride 3, then a zero vector is left at zero (eps floor).
  l2_norm_scaled(x.data(), 2, 2, 3, 1e-6f, 1.0f);
  EXPECT_FLOAT_EQ(x[0], 0.6f);
  EXPECT_FLOAT_EQ(x[1], 0.8f);
  EXPECT_EQ(x[2], 99.0f);  // between the vectors: untouched
  EXPECT_EQ(x[3], 0.0f);
  EXPECT_EQ(x[4], 0.0f);
  l2_norm_scaled(x.data() + 6, 1, 3, 3, 1e-6f, 0.5f);
  EXPECT_FLOAT_EQ(x[6], 1.0f / 3.0f * 0.5f);
  EXPECT_FLOAT_EQ(x[7], 2.0f / 3.0f * 0.5f);
}

}  // namespace
}  // namespace hearth::kernels

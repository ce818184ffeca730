// The op set of kernels/ (ops.h, matmul.h, attention.h) against naive double-precision
// references written from architectures.md §1, on random inputs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "hearth/error.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/threadpool.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::kernels {
namespace {

std::vector<float> randn(size_t n, std::mt19937& rng, float sigma = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> d(mean, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

TEST(Ops, RmsNormMatchesDefinition) {
  std::mt19937 rng(1);
  for (int n : {1, 7, 256, 4096}) {
    const auto x = randn(static_cast<size_t>(n), rng, 3.0f);
    const auto w = randn(static_cast<size_t>(n), rng, 0.1f, 1.0f);
    std::vector<float> y(static_cast<size_t>(n)), y0(static_cast<size_t>(n));
    rms_norm(x.data(), w.data(), y.data(), n, 1e-5f);
    rms_norm(x.data(), nullptr, y0.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(y[i], x[i] * scale * w[i], 1e-5 * std::abs(x[i] * scale * w[i]) + 1e-7);
      EXPECT_NEAR(y0[i], x[i] * scale, 1e-5 * std::abs(x[i] * scale) + 1e-7);
    }
  }
  // In place works, and the epsilon matters for tiny inputs.
  std::vector<float> z(16, 1e-4f);
  rms_norm(z.data(), nullptr, z.data(), 16, 1e-6f);
  EXPECT_NEAR(z[0], 1e-4 / std::sqrt(1e-8 + 1e-6), 1e-6);
}

TEST(Ops, SoftmaxAndSwiglu) {
  std::mt19937 rng(2);
  auto x = randn(100, rng, 5.0f);
  auto p = x;
  softmax(p.data(), 100);
  double sum = std::accumulate(p.begin(), p.end(), 0.0);
  EXPECT_NEAR(sum, 1.0, 1e-6);
  const double mx = *std::max_element(x.begin(), x.end());
  double z = 0;
  for (float v : x) z += std::exp(v - mx);
  for (int i = 0; i < 100; ++i) EXPECT_NEAR(p[i], std::exp(x[i] - mx) / z, 1e-7);
  // Large logits do not overflow.
  std::vector<float> big{1000.0f, 999.0f};
  softmax(big.data(), 2);
  EXPECT_NEAR(big[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);

  const auto g = randn(64, rng, 4.0f), u = randn(64, rng);
  std::vector<float> out(64);
  swiglu(g.data(), u.data(), out.data(), 64);
  for (int i = 0; i < 64; ++i) {
    const double s = g[i] / (1.0 + std::exp(-static_cast<double>(g[i])));
    EXPECT_NEAR(out[i], s * u[i], 1e-5 * std::abs(s * u[i]) + 1e-7);
  }
}

// Every SIMD path's SwiGLU against the scalar reference: random gates over the whole range the
// exponential sees (e^-g overflows past g < -88.7), lengths that leave every tail size, the
// signed zeros and non-finite gates. Both take g / (1 + e^-g) · u; only e^-g differs (1 ulp), so
// the results are within 4 ulp, and exactly equal where e^-g is 0 or infinite.
TEST(Ops, SwigluPathsMatchTheScalarReference) {
  std::mt19937 rng(12);
  std::vector<float> g = randn(4099, rng, 30.0f), u = randn(4099, rng, 2.0f);
  const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 89.0f, -89.0f, 104.0f, -104.0f, 200.0f, -200.0f,
                            INFINITY, -INFINITY, NAN};
  for (size_t i = 0; i < std::size(specials); ++i) g[7 * i] = specials[i];
  std::vector<float> ref(g.size());
  swiglu_path(CpuPath::scalar, g.data(), u.data(), ref.data(), static_cast<int64_t>(g.size()));
  for (int p = 0; p < kCpuPathCount; ++p) {
    const auto path = static_cast<CpuPath>(p);
    if (path == CpuPath::scalar) continue;
    if (!cpu_supports(path)) {
      EXPECT_THROW(swiglu_path(path, g.data(), u.data(), ref.data(), 4), Error) << cpu_path_name(path);
      continue;
    }
    for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{15}, int64_t{17}, static_cast<int64_t>(g.size())}) {
      std::vector<float> out(static_cast<size_t>(n) + 1, -3.0f);
      swiglu_path(path, g.data(), u.data(), out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(ref[i])) {
          EXPECT_TRUE(std::isnan(out[i])) << cpu_path_name(path) << " g = " << g[i];
          continue;
        }
        if (std::isinf(ref[i])) {
          EXPECT_EQ(out[i], ref[i]) << cpu_path_name(path) << " g = " << g[i];
          continue;
        }
        const float tol = 4 * (std::nextafter(std::abs(ref[i]), INFINITY) - std::abs(ref[i]));
        EXPECT_NEAR(out[i], ref[i], tol) << cpu_path_name(path) << " g = " << g[i] << " u = " << u[i];
      }
      EXPECT_EQ(out[n], -3.0f) << "wrote past n = " << n;
    }
  }
}

double gelu_exact(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(Ops, GeluIsTheTanhFormulaAtF16Precision) {
  // ggml's CPU GELU (GGML_GELU_FP16): input and output pass through F16, so the result is the
  // §1.1 formula within F16 rounding of the input (|gelu'| <= 1.13) and of the output; it is
  // 0 at and below -10 and the identity at and above 10.
  std::mt19937 rng(11);
  auto x = randn(4096, rng, 3.0f);
  x.insert(x.end(), {-10.0f, -10.5f, -30.0f, 10.0f, 12.345678f, 1e6f, 0.0f, -9.99f, 9.99f, 1e-6f});
  std::vector<float> y(x.size());
  gelu(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] <= -10.0f) {
      EXPECT_EQ(y[i], 0.0f) << x[i];
    } else if (x[i] >= 10.0f) {
      EXPECT_EQ(y[i], x[i]);
    } else {
      const double want = gelu_exact(x[i]);
      EXPECT_NEAR(y[i], want, 1.2 * std::abs(x[i]) * 0x1p-11 + std::abs(want) * 0x1p-11 + 1e-7) << x[i];
      EXPECT_EQ(y[i], quant::round_to_fp16(y[i])) << "not an F16 value: " << x[i];
    }
  }
  // In place, and geglu multiplies by up (0 exactly below -10).
  auto z = x;
  gelu(z.data(), z.data(), static_cast<int64_t>(z.size()));
  EXPECT_EQ(z, y);
  const auto u = randn(x.size(), rng);
  std::vector<float> g(x.size());
  geglu(x.data(), u.data(), g.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(g[i], x[i] <= -10.0f ? 0.0f : y[i] * u[i]) << x[i];
}

TEST(Ops, SoftcapScaleAndMul) {
  std::vector<float> x{-1000.0f, -45.0f, -1.0f, 0.0f, 0.5f, 29.0f, 60.0f, 1e9f};
  auto y = x;
  softcap(y.data(), static_cast<int64_t>(y.size()), 30.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y[i], 30.0 * std::tanh(x[i] / 30.0), 1e-5) << x[i];
    EXPECT_LE(std::abs(y[i]), 30.0f);
  }
  EXPECT_FLOAT_EQ(y[4], 30.0 * std::tanh(0.5 / 30.0));  // ~identity for small logits
  std::vector<float> a{1.0f, -2.0f, 3.0f}, b{0.5f, 4.0f, -1.0f};
  scale(a.data(), 3, 2.0f);
  EXPECT_EQ(a, (std::vector<float>{2.0f, -4.0f, 6.0f}));
  mul_inplace(a.data(), b.data(), 3);
  EXPECT_EQ(a, (std::vector<float>{1.0f, -16.0f, -6.0f}));
}

// Naive RoPE straight from architectures.md §1.3 (double precision, θ_i = base^(-2i/n_rot)).
void rope_reference(std::vector<double>& v, int n_rot, double base, double pos, bool neox, const float* ff,
                    double freq_scale) {
  for (int i = 0; i < n_rot / 2; ++i) {
    const double theta = std::pow(base, -2.0 * i / n_rot);
    const double a = freq_scale * pos * theta / (ff ? ff[i] : 1.0);
    const int i0 = neox ? i : 2 * i, i1 = neox ? i + n_rot / 2 : 2 * i + 1;
    const double x0 = v[i0], x1 = v[i1];
    v[i0] = x0 * std::cos(a) - x1 * std::sin(a);
    v[i1] = x0 * std::sin(a) + x1 * std::cos(a);
  }
}

TEST(Ops, RopeMatchesReferenceForBothPairings) {
  std::mt19937 rng(3);
  const int head_dim = 64, n_heads = 3;
  std::vector<float> factors(16);
  for (int i = 0; i < 16; ++i) factors[i] = 1.0f + static_cast<float>(i);
  for (RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    for (int n_rot : {64, 32}) {
      for (const float* ff : {static_cast<const float*>(nullptr), static_cast<const float*>(factors.data())}) {
        if (ff && n_rot != 32) continue;
        RopeConfig cfg;
        cfg.n_rot = n_rot;
        cfg.freq_base = 10000.0f;
        cfg.freq_scale = 0.5f;
        cfg.freq_factors = ff;
        cfg.mode = mode;
        for (int64_t pos : {0, 1, 17, 1000}) {
          auto x = randn(static_cast<size_t>(head_dim * n_heads), rng);
          std::vector<float> cache(static_cast<size_t>(n_rot));
          rope_cache(cfg, pos, cache.data());
          auto y = x;
          rope_apply(y.data(), n_heads, head_dim, cfg, cache.data());
          for (int h = 0; h < n_heads; ++h) {
            std::vector<double> ref(x.begin() + h * head_dim, x.begin() + (h + 1) * head_dim);
            rope_reference(ref, n_rot, 10000.0, static_cast<double>(pos), mode == RopeMode::kNeox, ff, 0.5);
            for (int d = 0; d < head_dim; ++d)
              EXPECT_NEAR(y[h * head_dim + d], ref[d], 2e-4) << "pos " << pos << " dim " << d;
          }
        }
      }
    }
  }
}

TEST(Ops, RopeRotatesTheRightPairs) {
  // A unit vector in dim 0 at position 1 with base such that θ_0 = 1 rad: NORM moves it into
  // dim 1, NEOX into dim n_rot/2; dims past n_rot are untouched.
  RopeConfig cfg;
  cfg.n_rot = 4;
  cfg.freq_base = 10000.0f;
  std::vector<float> cache(4);
  for (RopeMode mode : {RopeMode::kNorm, RopeMode::kNeox}) {
    cfg.mode = mode;
    rope_cache(cfg, 1, cache.data());
    std::vector<float> v{1, 0, 0, 0, 5, 6};
    rope_apply(v.data(), 1, 6, cfg, cache.data());
    const int partner = mode == RopeMode::kNorm ? 1 : 2;
    EXPECT_NEAR(v[0], std::cos(1.0), 1e-6);
    EXPECT_NEAR(v[partner], std::sin(1.0), 1e-6);
    EXPECT_EQ(v[4], 5.0f);
    EXPECT_EQ(v[5], 6.0f);
  }
}

TEST(Ops, YarnCorrectionDims) {
  float dims[2];
  // Qwen3 with YaRN: n_rot 128, original context 32768, base 1e6.
  rope_yarn_corr_dims(128, 32768, 1e6f, 32.0f, 1.0f, dims);
  const auto corr = [](double beta) { return 128 * std::log(32768 / (beta * 2 * M_PI)) / (2 * std::log(1e6)); };
  EXPECT_EQ(dims[0], std::floor(static_cast<float>(corr(32))));
  EXPECT_EQ(dims[1], std::ceil(static_cast<float>(corr(1))));
}

TEST(Matmul, MatchesNaiveProductForEveryType) {
  std::mt19937 rng(4);
  ThreadPool pool(2);
  MatmulScratch scratch;
  const int64_t n_in = 512, n_out = 37, n_rows = 5;
  for (quant::GgmlType type : {quant::GgmlType::F32, quant::GgmlType::F16, quant::GgmlType::BF16,
                               quant::GgmlType::Q8_0, quant::GgmlType::Q4_0, quant::GgmlType::Q4_K,
                               quant::GgmlType::Q5_K, quant::GgmlType::Q6_K}) {
    const quant::TypeTraits& t = quant::traits(type);
    const auto wf = randn(static_cast<size_t>(n_in * n_out), rng);
    const size_t row_bytes = quant::row_size(type, n_in);
    std::vector<uint8_t> wq(row_bytes * n_out);
    std::vector<float> wd(wf.size());
    for (int64_t o = 0; o < n_out; ++o) {
      t.from_float(wf.data() + o * n_in, wq.data() + o * row_bytes, n_in);
      t.to_float(wq.data() + o * row_bytes, wd.data() + o * n_in, n_in);
    }
    const auto x = randn(static_cast<size_t>(n_in * n_rows), rng);
    MatrixView w{type, n_in, n_out, wq.data(), row_bytes};
    std::vector<float> y(static_cast<size_t>(n_rows * (n_out + 3)), -7.0f);
    matmul(w, x.data(), n_rows, y.data(), n_out + 3, pool, scratch);
    // Against the dequantized weights and float activations: the difference is the
    // activation rounding (F16/BF16/8-bit), so the bound is relative to Σ|w·x|.
    const double tol = type == quant::GgmlType::F32 ? 1e-6 : type == quant::GgmlType::F16 ? 1e-3 : 2e-2;
    for (int64_t r = 0; r < n_rows; ++r) {
      for (int64_t o = 0; o < n_out; ++o) {
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n_in; ++i) {
          ref += static_cast<double>(wd[o * n_in + i]) * x[r * n_in + i];
          mag += std::abs(static_cast<double>(wd[o * n_in + i]) * x[r * n_in + i]);
        }
        EXPECT_NEAR(y[r * (n_out + 3) + o], ref, tol * mag) << t.name << " row " << r << " out " << o;
      }
      for (int64_t o = n_out; o < n_out + 3; ++o) EXPECT_EQ(y[r * (n_out + 3) + o], -7.0f) << "wrote past n_out";
    }
    // One row at a time gives bit-identical results to the whole batch.
    std::vector<float> y1(static_cast<size_t>(n_out));
    matmul(w, x.data() + 2 * n_in, 1, y1.data(), n_out, pool, scratch);
    for (int64_t o = 0; o < n_out; ++o) EXPECT_EQ(y1[o], y[2 * (n_out + 3) + o]) << t.name;
  }
}

TEST(Matmul, GetRowDequantizes) {
  std::vector<float> table{1, 2, 3, 4, 5, 6};
  MatrixView w{quant::GgmlType::F32, 3, 2, reinterpret_cast<const uint8_t*>(table.data()), 12};
  std::vector<float> out(3);
  get_row(w, 1, out.data());
  EXPECT_EQ(out, (std::vector<float>{4, 5, 6}));
}

TEST(Attention, MatchesNaiveSoftmaxAttention) {
  std::mt19937 rng(6);
  ThreadPool pool(2);
  const int n_head = 4, n_head_kv = 2, hd = 16, hdv = 8, n_cells = 9, n_tokens = 3;
  std::vector<uint16_t> k(static_cast<size_t>(n_cells * n_head_kv * hd)), v(static_cast<size_t>(n_cells * n_head_kv * hdv));
  for (auto& h : k) h = quant::fp32_to_fp16(std::normal_distribution<float>(0, 1)(rng));
  for (auto& h : v) h = quant::fp32_to_fp16(std::normal_distribution<float>(0, 1)(rng));
  const auto q = randn(static_cast<size_t>(n_tokens * n_head * hd), rng);
  // Token 0 sees cells {4}, token 1 sees {4, 0, 7}, token 2 none.
  std::vector<int32_t> cells{4, 0, 7};
  std::vector<AttnSpan> spans{{cells.data(), 1}, {cells.data(), 3}, {cells.data(), 0}};
  const AttnShape shape{n_head, n_head_kv, hd, hdv, 0.25f};
  std::vector<float> out(static_cast<size_t>(n_tokens * n_head * hdv), 99.0f);
  attention_f16(q.data(), n_tokens, shape, KvLayerF16{k.data(), v.data(), n_head_kv * hd, n_head_kv * hdv},
                spans.data(), out.data(), pool);
  for (int t = 0; t < n_tokens; ++t) {
    for (int h = 0; h < n_head; ++h) {
      const int g = h / (n_head / n_head_kv);
      std::vector<double> s;
      for (int j = 0; j < spans[t].n; ++j) {
        double dot = 0;
        for (int d = 0; d < hd; ++d)
          dot += static_cast<double>(q[(t * n_head + h) * hd + d]) *
                 quant::fp16_to_fp32(k[(cells[j] * n_head_kv + g) * hd + d]);
        s.push_back(dot * 0.25);
      }
      for (int d = 0; d < hdv; ++d) {
        double ref = 0;
        if (!s.empty()) {
          const double mx = *std::max_element(s.begin(), s.end());
          double z = 0;
          for (double x : s) z += std::exp(x - mx);
          for (size_t j = 0; j < s.size(); ++j)
            ref += std::exp(s[j] - mx) / z * quant::fp16_to_fp32(v[(cells[j] * n_head_kv + g) * hdv + d]);
        }
        // Q and the probabilities are rounded to F16, as llama.cpp's path does: ~1e-3.
        EXPECT_NEAR(out[(t * n_head + h) * hdv + d], ref, 3e-3) << "token " << t << " head " << h;
      }
    }
  }
  // A single visible cell returns exactly its V row.
  for (int d = 0; d < hdv; ++d) EXPECT_EQ(out[d], quant::fp16_to_fp32(v[4 * n_head_kv * hdv + d]));
}

TEST(ThreadPool, CoversTheRangeOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<int> hits(1000, 0);
    pool.parallel_for(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[i];
    }, 16);
    for (int h : hits) EXPECT_EQ(h, 1);
  }
}

// The number of threads of this process (entries of /proc/self/task).
size_t process_threads() {
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                           std::filesystem::directory_iterator{}));
}

TEST(ThreadPool, FreshThreadTakesItsOpenMpTeamWithIt) {
  const size_t before = process_threads();
  std::thread::id ran_on;
  std::atomic<int> calls{0};
  run_on_fresh_thread([&] {
    ran_on = std::this_thread::get_id();
    ThreadPool(3).parallel_for(300, [&](int64_t, int64_t) { ++calls; });
  });
  EXPECT_EQ(calls.load(), 3);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  // The team's two workers leave with the thread; they exit asynchronously, so give them 5 s.
  for (int i = 0; i < 500 && process_threads() != before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(process_threads(), before);

  try {
    run_on_fresh_thread([] { throw Error("repacking failed"); });
    FAIL() << "the exception was lost";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "repacking failed");
  }
}

}  // namespace
}  // namespace hearth::kernels

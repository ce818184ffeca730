// `hearth bench` end to end on the demo model (llama-bench's tests, statistics, JSON fields and
// markdown table; its errors) and the memory-bandwidth probe (runtime/bandwidth.h). Speeds are
// only checked for being positive and self-consistent: the machine is shared and noisy.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "hearth/error.h"
#include "model/model.h"
#include "runtime/bandwidth.h"

extern char** environ;

namespace {

const std::string kDemoModel = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-Q8_0.gguf";

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("hearth-bench-test-" + std::to_string(getpid()) + "-" + name))
      .string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `hearth args...` to completion, capturing stdout and stderr.
Result hearth(const std::vector<std::string>& args) {
  const std::string out = temp_path("stdout"), err = temp_path("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> full{HEARTH_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, HEARTH_BINARY, &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// An error is one line on stderr naming `what`, exit code 1, nothing on stdout.
void expect_error(const Result& r, const std::string& what) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Checks one llama-bench JSON object: its test, sample count and the statistics derived from
// samples_ns exactly as llama-bench derives them.
void expect_consistent_test(const nlohmann::json& t, int n_prompt, int n_gen, int n_threads, int reps,
                            int n_parallel = 1) {
  SCOPED_TRACE(t.dump());
  EXPECT_EQ(t["n_prompt"].get<int>(), n_prompt);
  EXPECT_EQ(t["n_gen"].get<int>(), n_gen);
  EXPECT_EQ(t["n_parallel"].get<int>(), n_parallel);
  EXPECT_EQ(t["n_threads"].get<int>(), n_threads);
  const auto ns = t["samples_ns"].get<std::vector<uint64_t>>();
  const auto ts = t["samples_ts"].get<std::vector<double>>();
  ASSERT_EQ(ns.size(), static_cast<size_t>(reps));
  ASSERT_EQ(ts.size(), static_cast<size_t>(reps));
  const double n_tokens = n_prompt + n_gen * n_parallel;  // a tg test's t/s counts every sequence's tokens
  uint64_t sum_ns = 0;
  double sum_ts = 0;
  for (size_t i = 0; i < ns.size(); ++i) {
    EXPECT_GT(ns[i], 0u);
    EXPECT_NEAR(ts[i], n_tokens * 1e9 / static_cast<double>(ns[i]), 1e-9 * ts[i]);  // tokens per second
    sum_ns += ns[i];
    sum_ts += ts[i];
  }
  EXPECT_EQ(t["avg_ns"].get<uint64_t>(), sum_ns / ns.size());  // llama-bench's integer mean
  const double avg_ts = t["avg_ts"].get<double>(), stddev_ts = t["stddev_ts"].get<double>();
  EXPECT_GT(avg_ts, 0);
  EXPECT_TRUE(std::isfinite(avg_ts));
  EXPECT_NEAR(avg_ts, sum_ts / static_cast<double>(ts.size()), 1e-9 * avg_ts);  // mean of the samples' t/s
  double sq = 0;
  for (double x : ts) sq += (x - avg_ts) * (x - avg_ts);
  EXPECT_NEAR(stddev_ts, std::sqrt(sq / static_cast<double>(ts.size() - 1)), 1e-6 * avg_ts);  // n − 1
  // The mean of the rates is close to the rate of the mean time: within two standard deviations
  // (Jensen's gap is below 2σ for up to 5 samples however skewed they are).
  const double ts_of_avg_ns = n_tokens * 1e9 / static_cast<double>(t["avg_ns"].get<uint64_t>());
  EXPECT_LE(std::abs(avg_ts - ts_of_avg_ns), 2 * stddev_ts + 1e-6 * avg_ts);
  EXPECT_GE(t["stddev_ns"].get<uint64_t>(), 0u);
}

TEST(Bench, JsonHasOneLlamaBenchObjectPerTest) {
  const int reps = 3;
  const Result r = hearth({"bench", "-m", kDemoModel, "-p", "8,16", "-n", "4", "-t", "1,2", "-r", std::to_string(reps),
                           "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  // llama-bench's order: per thread count, the pp tests, then the tg tests.
  const std::vector<std::array<int, 3>> want = {{8, 0, 1}, {16, 0, 1}, {0, 4, 1}, {8, 0, 2}, {16, 0, 2}, {0, 4, 2}};
  ASSERT_EQ(j.size(), want.size()) << r.out;
  auto model = hearth::model::Model::load(kDemoModel);
  for (size_t i = 0; i < want.size(); ++i) {
    const nlohmann::json& t = j[i];
    expect_consistent_test(t, want[i][0], want[i][1], want[i][2], reps);
    EXPECT_EQ(t["model_filename"], kDemoModel);
    EXPECT_EQ(t["model_type"], "llama ?B Q8_0");  // 6 layers: a shape llama.cpp has no label for
    EXPECT_EQ(t["model_size"].get<uint64_t>(), model->n_weight_bytes());
    EXPECT_EQ(t["model_size"].get<uint64_t>(), 6140928u);
    EXPECT_EQ(t["model_n_params"].get<uint64_t>(), 5770496u);
    EXPECT_EQ(t["n_batch"].get<int>(), 2048);
    EXPECT_EQ(t["n_ubatch"].get<int>(), 512);
    EXPECT_EQ(t["backends"], "CPU");
    EXPECT_EQ(t["type_k"], "f16");
    EXPECT_TRUE(std::regex_match(t["test_time"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
        << t["test_time"];
    // Every weight was read, so the mapped file counts in the peak resident memory.
    EXPECT_GT(t["peak_rss_bytes"].get<uint64_t>(), model->n_weight_bytes());
    EXPECT_EQ(t["peak_rss_bytes"], j[0]["peak_rss_bytes"]);  // one value, taken after the tests
#if __has_include("kernels/cpu.h")
    ASSERT_TRUE(t.contains("cpu_path"));
    const std::string path = t["cpu_path"];
    EXPECT_TRUE(path == "scalar" || path == "avx2" || path == "avx512") << path;
#endif
  }
}

TEST(Bench, BatchSizesAreReportedAndUsed) {
  // 20 prompt tokens in batches of 8 (three decodes), micro-batches of 4.
  const Result r = hearth({"bench", "-m", kDemoModel, "-p", "20", "-n", "0", "-t", "1", "-r", "2", "-b", "8",
                           "-ub", "4", "-o", "json", "--no-warmup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  expect_consistent_test(j[0], 20, 0, 1, 2);
  EXPECT_EQ(j[0]["n_batch"].get<int>(), 8);
  EXPECT_EQ(j[0]["n_ubatch"].get<int>(), 4);
}

TEST(Bench, MarkdownIsLlamaBenchsTable) {
  const Result r = hearth({"bench", "-m", kDemoModel, "-p", "8", "-n", "4", "-t", "1", "-r", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0],
            "| model                          |       size |     params | backend    | threads |            test |"
            "                  t/s |");
  EXPECT_EQ(lines[1],
            "| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: |"
            " -------------------: |");
  const std::regex row(R"(\| llama \?B Q8_0 +\|   5\.86 MiB \|     5\.77 M \| CPU        \|       1 \| +(pp8|tg4) \| +([0-9]+\.[0-9]{2}) ± ([0-9]+\.[0-9]{2}) \|)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines[2], m, row)) << lines[2];
  EXPECT_EQ(m[1], "pp8");
  EXPECT_GT(std::stod(m[2]), 0.0);
  ASSERT_TRUE(std::regex_match(lines[3], m, row)) << lines[3];
  EXPECT_EQ(m[1], "tg4");
  EXPECT_GT(std::stod(m[2]), 0.0);
  // Rows are as wide as the header (the "±" is two bytes, one column).
  EXPECT_EQ(lines[2].size(), lines[0].size() + 1);

  // A non-default micro-batch size gets its own column, as in llama-bench.
  const Result u = hearth({"bench", "-m", kDemoModel, "-p", "8", "-n", "0", "-t", "1", "-r", "1", "-ub", "256"});
  ASSERT_EQ(u.exit_code, 0) << u.err;
  EXPECT_NE(u.out.find("| n_ubatch |"), std::string::npos) << u.out;
  EXPECT_NE(u.out.find("|      256 |"), std::string::npos) << u.out;
}

TEST(Bench, CacheTypesAreReportedAndUsed) {
  // llama-bench's -ctk / -ctv lists: one test per combination, in its order (cache types
  // before threads); types other than f16 run with flash attention.
  const Result r = hearth({"bench", "-m", kDemoModel, "-p", "8", "-n", "2", "-t", "1", "-r", "2", "-ctk", "q8_0,q4_0",
                           "--cache-type-v", "bf16", "-o", "json", "--no-warmup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 4u) << r.out;
  const char* want_k[] = {"q8_0", "q8_0", "q4_0", "q4_0"};
  for (size_t i = 0; i < 4; ++i) {
    expect_consistent_test(j[i], i % 2 == 0 ? 8 : 0, i % 2 == 0 ? 0 : 2, 1, 2);
    EXPECT_EQ(j[i]["type_k"], want_k[i]);
    EXPECT_EQ(j[i]["type_v"], "bf16");
    EXPECT_EQ(j[i]["flash_attn"], true);
  }
  // -fa 0,1: the flash switch is a column of its own, as are the cache types; q8_0, which always
  // uses flash attention, runs once.
  const Result m = hearth({"bench", "-m", kDemoModel, "-p", "8", "-n", "0", "-t", "1", "-r", "1", "-fa", "0,1",
                           "-ctk", "f16,q8_0", "--no-warmup"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const std::vector<std::string> lines = lines_of(m.out);
  ASSERT_EQ(lines.size(), 5u) << m.out;
  EXPECT_NE(lines[0].find("| type_k |"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("| type_v |"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("| fa |"), std::string::npos) << lines[0];
  EXPECT_NE(lines[2].find("| f16    |  0 |"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("| f16    |  1 |"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("| q8_0   |  1 |"), std::string::npos) << lines[4];
}

// --parallel N: the tg tests decode N sequences at once (the pp tests are unchanged), each its
// own row; t/s counts the tokens of all of them, and the markdown table gets an n_parallel column.
TEST(Bench, ParallelSequencesAreOneTestEachAndCountAllTokens) {
  const Result r = hearth({"bench", "-m", kDemoModel, "-p", "8", "-n", "6", "-t", "1", "-r", "2", "--parallel", "1,3",
                           "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 3u) << r.out;
  expect_consistent_test(j[0], 8, 0, 1, 2);
  expect_consistent_test(j[1], 0, 6, 1, 2);
  expect_consistent_test(j[2], 0, 6, 1, 2, 3);
  const Result m = hearth({"bench", "-m", kDemoModel, "-p", "0", "-n", "4", "-t", "1", "-r", "1", "--parallel", "2"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const std::vector<std::string> lines = lines_of(m.out);
  ASSERT_EQ(lines.size(), 3u) << m.out;
  EXPECT_NE(lines[0].find("| n_parallel |"), std::string::npos) << lines[0];
  EXPECT_NE(lines[2].find("|          2 |             tg4 |"), std::string::npos) << lines[2];
  expect_error(hearth({"bench", "-m", kDemoModel, "--parallel", "0"}), "--parallel: 0 is not a valid number of sequences");
  expect_error(hearth({"bench", "-m", kDemoModel, "--parallel", "65"}),
               "--parallel: 65 sequences are more than a context holds (64)");
}

TEST(Bench, BadValuesAreOneClearLine) {
  expect_error(hearth({"bench", "-m", kDemoModel, "-ctk", "q8_0,q5_k"}),
               "-ctk: unsupported KV cache type 'q5_k' (valid: f16, bf16, q8_0, q4_0)");
  expect_error(hearth({"bench", "-m", kDemoModel, "-ctv", "f32"}), "-ctv: unsupported KV cache type 'f32'");
  expect_error(hearth({"bench", "-m", kDemoModel, "-fa", "2"}), "-fa: '2' is not 0 or 1");
  expect_error(hearth({"bench", "-m", kDemoModel, "-p", "-1"}), "-p: -1 is not a valid prompt length");
  expect_error(hearth({"bench", "-m", kDemoModel, "-n", "4,-2"}), "-n: -2 is not a valid number of generated tokens");
  expect_error(hearth({"bench", "-m", kDemoModel, "-t", "0"}), "-t: 0 is not a valid thread count");
  expect_error(hearth({"bench", "-m", kDemoModel, "-t", "1,x"}), "-t: 'x' is not an integer");
  expect_error(hearth({"bench", "-m", kDemoModel, "-r", "0"}), "-r: 0 is not a valid repetition count");
  expect_error(hearth({"bench", "-m", kDemoModel, "-o", "csv"}), "-o: unknown output format 'csv'");
  expect_error(hearth({"bench", "-m", kDemoModel, "-p", "0", "-n", "0"}), "nothing to benchmark");
  expect_error(hearth({"bench", "-m", kDemoModel, "-ub", "0"}), "-ub: 0 is not a valid micro-batch size");
  expect_error(hearth({"bench", "-m", kDemoModel, "--frobnicate"}), "unknown argument '--frobnicate'");
  expect_error(hearth({"bench", "-p", "8"}), "no model given");
  const std::string missing = temp_path("no-such-model.gguf");
  expect_error(hearth({"bench", "-m", missing, "-p", "8"}), missing);
  expect_error(hearth({"bench", "--bandwidth", "--bytes", "100"}), "buffer size 100 bytes");
  expect_error(hearth({"bench", "--bandwidth", "--bytes", "1X"}), "--bytes: '1X' is not a size in bytes");
}

TEST(Bench, BandwidthCommandPrintsOneLinePerThreadCount) {
  Result r = hearth({"bench", "--bandwidth", "--bytes", "8M", "-t", "1,2", "-r", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  const std::regex line(R"(read bandwidth: ([0-9]+\.[0-9]{2}) GB/s \(([0-9]+) threads\))");
  for (size_t i = 0; i < 2; ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[i], m, line)) << lines[i];
    EXPECT_GT(std::stod(m[1]), 0.0);
    EXPECT_EQ(std::stoi(m[2]), static_cast<int>(i + 1));
  }
  r = hearth({"bench", "--bandwidth", "--bytes", "8M", "-t", "1", "-r", "2", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["n_threads"].get<int>(), 1);
  EXPECT_EQ(j[0]["buffer_bytes"].get<uint64_t>(), 8u << 20);
  EXPECT_EQ(j[0]["passes"].get<int>(), 2);
  EXPECT_GT(j[0]["gb_per_s"].get<double>(), 0.0);
  // gb_per_s is bytes / best time, in decimal GB/s.
  EXPECT_NEAR(j[0]["gb_per_s"].get<double>(), (8u << 20) / (j[0]["best_ns"].get<double>() * 1e-9) / 1e9,
              1e-3 * j[0]["gb_per_s"].get<double>());
}

TEST(Bandwidth, ReadsTheWholeBufferAtAPositiveFiniteRate) {
  const uint64_t bytes = 4u << 20;  // 4 MiB: a cache-sized buffer, quick
  const auto rs = hearth::runtime::measure_read_bandwidth(bytes, {1, 2}, 3);
  ASSERT_EQ(rs.size(), 2u);
  const uint64_t n = bytes / 8;
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(rs[i].n_threads, static_cast<int>(i + 1));
    EXPECT_EQ(rs[i].bytes, bytes);
    EXPECT_EQ(rs[i].passes, 3);
    EXPECT_EQ(rs[i].checksum, n * (n - 1) / 2);  // every word 0 .. n−1 read exactly once
    EXPECT_GT(rs[i].best_seconds, 0.0);
    EXPECT_TRUE(std::isfinite(rs[i].gb_per_s));
    EXPECT_GT(rs[i].gb_per_s, 0.0);
    EXPECT_NEAR(rs[i].gb_per_s, static_cast<double>(bytes) / rs[i].best_seconds / 1e9, 1e-9 * rs[i].gb_per_s);
  }
  // An odd thread count splits the cache lines unevenly; the checksum is still exact.
  const auto odd = hearth::runtime::measure_read_bandwidth(4096 * 3, {3}, 1);
  EXPECT_EQ(odd[0].checksum, uint64_t{1536} * 1535 / 2);
}

TEST(Bandwidth, RejectsBadArgumentsByName) {
  using hearth::runtime::measure_read_bandwidth;
  EXPECT_THROW(measure_read_bandwidth(100, {1}), hearth::Error);
  EXPECT_THROW(measure_read_bandwidth(4096 + 8, {1}), hearth::Error);
  EXPECT_THROW(measure_read_bandwidth(1 << 20, {}), hearth::Error);
  EXPECT_THROW(measure_read_bandwidth(1 << 20, {1, 0}), hearth::Error);
  EXPECT_THROW(measure_read_bandwidth(1 << 20, {1}, 0), hearth::Error);
  try {
    measure_read_bandwidth(1 << 20, {-2});
    FAIL();
  } catch (const hearth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("thread count -2"), std::string::npos) << e.what();
  }
}

TEST(Bandwidth, ParsesSizesWithBinarySuffixes) {
  using hearth::runtime::parse_size_bytes;
  EXPECT_EQ(parse_size_bytes("4096"), 4096u);
  EXPECT_EQ(parse_size_bytes("64K"), 65536u);
  EXPECT_EQ(parse_size_bytes("512M"), 512u << 20);
  EXPECT_EQ(parse_size_bytes("1G"), uint64_t{1} << 30);
  EXPECT_EQ(parse_size_bytes("2GiB"), uint64_t{2} << 30);
  for (const char* bad : {"", "G", "-1", "1.5G", "1T", "12 M", "99999999999999999999", "17179869184G"})
    EXPECT_THROW(parse_size_bytes(bad), hearth::Error) << bad;
}

}  // namespace

// `hearth fit` end to end: the --json fields, a file against the library's plan, a model that
// does not fit, the catalogue table, a URL served over loopback HTTP with range requests (fit
// reads under 10 MB of a multi-GB file), `hearth run` refusing a context that does not fit, and
// the peak resident memory of `hearth bench` against the predicted total.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <httplib.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "model/model.h"
#include "model/synth.h"
#include "plan/catalogue.h"
#include "plan/header.h"
#include "plan/plan.h"

extern char** environ;

namespace {

using json = nlohmann::json;
using namespace hearth;

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

struct Result {
  int exit_code = -1;
  std::string out, err;
  uint64_t max_rss_bytes = 0;  // peak resident memory of the child (ru_maxrss)
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-fit-test-" + std::to_string(getpid()) + "-" + name))
      .string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Result hearth_run(const std::vector<std::string>& args) {
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
  struct rusage ru = {};
  wait4(pid, &status, 0, &ru);
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  r.max_rss_bytes = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

TEST(FitCli, JsonHasTheBreakdownAndAgreesWithItself) {
  const Result r = hearth_run({"fit", "qwen3.5-9b", "--quant", "Q4_K_M", "--hw", "rtx4090", "-c", "32768", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  for (const char* key : {"weights_bytes", "kv_cache_bytes", "state_bytes", "compute_bytes", "total_bytes", "fits",
                          "max_context", "devices", "layers", "tg_tokens_per_s", "read_bytes_per_token"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["total_bytes"].get<uint64_t>(), j["weights_bytes"].get<uint64_t>() + j["kv_cache_bytes"].get<uint64_t>() +
                                                  j["state_bytes"].get<uint64_t>() + j["compute_bytes"].get<uint64_t>() +
                                                  j["runtime_bytes"].get<uint64_t>());
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_EQ(j["max_context"].get<uint32_t>(), 262144u);  // the trained context fits 24 GiB
  // Qwen3.5-9B: 8 attention layers of 4 KV heads x 256 (K and V) in F16 = 32 KiB per token.
  EXPECT_EQ(j["kv_cache_bytes"].get<uint64_t>(), 32768ull * 8 * 4 * 256 * 2 * 2);
  ASSERT_EQ(j["devices"].size(), 1u);
  EXPECT_EQ(j["devices"][0]["n_layers"].get<uint32_t>(), 32u);
  const double tg = j["tg_tokens_per_s"].get<double>();
  EXPECT_NEAR(tg, 1008e9 / j["read_bytes_per_token"].get<double>(), 1e-6 * tg);
}

TEST(FitCli, FileJsonEqualsTheLibraryPlan) {
  const std::string path = kModels + "qwen35-Q4_K_M.gguf";
  const Result r = hearth_run({"fit", path, "-c", "1000", "--parallel", "2", "-ctk", "q8_0", "--vram", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const auto model = model::Model::load(path);
  const runtime::MemoryPlan mp =
      runtime::plan_memory(*model, 1000, 512, 2, quant::GgmlType::Q8_0, quant::GgmlType::F16);
  EXPECT_EQ(j["weights_bytes"].get<uint64_t>(), model->n_weight_bytes());
  EXPECT_EQ(j["kv_cache_bytes"].get<uint64_t>(), mp.kv_bytes);
  EXPECT_EQ(j["state_bytes"].get<uint64_t>(), mp.state_bytes);
  EXPECT_EQ(j["cache_type_k"], "q8_0");
  EXPECT_TRUE(j["fits"].get<bool>());
}

TEST(FitCli, SaysWhenItDoesNotFitAndSplitsLayers) {
  Result r = hearth_run({"fit", "qwen3-8b", "--quant", "Q8_0", "--vram", "2", "--ram", "1", "--ram-bandwidth", "50",
                         "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_FALSE(j["fits"].get<bool>());
  EXPECT_EQ(j["max_context"].get<uint32_t>(), 0u);
  r = hearth_run({"fit", "qwen3-8b", "--quant", "Q8_0", "--vram", "4", "--ram", "16", "--vram-bandwidth", "500",
                  "--ram-bandwidth", "50", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_TRUE(j["fits"].get<bool>());
  ASSERT_EQ(j["devices"].size(), 2u);
  const uint32_t gpu = j["devices"][0]["n_layers"], cpu = j["devices"][1]["n_layers"];
  EXPECT_GT(gpu, 0u);
  EXPECT_GT(cpu, 0u);
  EXPECT_EQ(gpu + cpu, 36u);
  r = hearth_run({"fit", "qwen3-8b", "--quant", "Q9_Z"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Q9_Z"), std::string::npos) << r.err;
  r = hearth_run({"fit", "no-such-model"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("catalogue"), std::string::npos) << r.err;
}

TEST(FitCli, TableListsTheCatalogue) {
  const Result r = hearth_run({"fit", "--table", "--quant", "Q4_K_M", "--hw", "rtx4090,h200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const plan::CatalogueModel& m : plan::catalogue_models())
    EXPECT_NE(r.out.find("| " + m.name + " | Q4_K_M |"), std::string::npos) << m.name;
  EXPECT_NE(r.out.find("| rtx4090 | h200 |"), std::string::npos);
}

// A loopback HTTP server with range support (cpp-httplib) serving a sparse multi-GB GGUF: the
// header of Qwen3-4B Q8_0 (151936-token vocabulary) and a hole where the weights would be.
TEST(FitCli, UrlReadsOnlyTheHeader) {
  const gguf::File virt = plan::catalogue_header(*plan::find_catalogue_model("qwen3-4b"), quant::FileType::Q8_0);
  gguf::Writer w;
  for (const auto& [k, v] : virt.metadata()) w.set(k, v);
  for (const gguf::TensorInfo& t : virt.tensors())
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
  const std::string path = temp_path("remote.gguf");
  {
    std::ofstream out(path, std::ios::binary);
    w.begin(out);
  }
  std::filesystem::resize_file(path, w.file_size());
  ASSERT_GT(w.file_size(), uint64_t{3} << 30);

  std::atomic<uint64_t> served{0};
  httplib::Server server;
  server.Get("/model.gguf", [&](const httplib::Request&, httplib::Response& res) {
    const uint64_t size = std::filesystem::file_size(path);
    res.set_content_provider(size, "application/octet-stream",
                             [&, path](size_t offset, size_t length, httplib::DataSink& sink) {
                               std::ifstream in(path, std::ios::binary);
                               in.seekg(static_cast<std::streamoff>(offset));
                               std::vector<char> buf(std::min<size_t>(length, 1 << 20));
                               in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
                               served += buf.size();
                               return sink.write(buf.data(), buf.size());
                             });
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread thread([&] { server.listen_after_bind(); });
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/model.gguf";
  const Result r = hearth_run({"fit", url, "-c", "4096", "--vram", "8", "--vram-bandwidth", "100", "--json"});
  server.stop();
  thread.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  uint64_t weights = 0;
  for (const gguf::TensorInfo& t : virt.tensors()) weights += t.nbytes;
  EXPECT_EQ(j["weights_bytes"].get<uint64_t>(), weights);
  EXPECT_EQ(j["kv_cache_bytes"].get<uint64_t>(), 4096ull * 36 * 8 * 128 * 2 * 2);
  std::printf("served %llu bytes of a %llu-byte file\n", static_cast<unsigned long long>(served.load()),
              static_cast<unsigned long long>(w.file_size()));
  EXPECT_LT(served.load(), uint64_t{10} << 20);
  EXPECT_GE(served.load(), virt.data_offset());
  std::filesystem::remove(path);
}

TEST(RunCli, RefusesAContextThatDoesNotFitWithTheNumbers) {
  const Result r = hearth_run({"run", kModels + "qwen3-F16.gguf", "-p", "hi", "-n", "1", "-c", "1000000000"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("a context of 1000000000 tokens needs"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the largest context that fits is -c"), std::string::npos) << r.err;
}

TEST(ServeCli, RefusesAContextThatDoesNotFitWithTheNumbers) {
  const Result r = hearth_run({"serve", kModels + "qwen3-F16.gguf", "--port", "0", "--parallel", "2", "-c", "500000000"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("-c 500000000 with --parallel 2 (1000000000 KV cells) does not fit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("per request that is -c "), std::string::npos) << r.err;
}

// Peak resident memory of `hearth bench` (pp 64 + tg 8 on a synthesized Llama 3.2 1B cut to 4
// layers, ~0.55 GB Q8_0, weights mmap'd and all touched) against the planner's total.
TEST(PeakRss, BenchStaysWithinFivePercentOfThePrediction) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine are part of the resident memory";
#endif
  const std::string path = temp_path("rss.gguf");
  model::SynthOptions opt;
  opt.type = quant::GgmlType::Q8_0;
  model::synthesize(model::first_layers(model::find_synth_shape("llama3.2-1b"), 4), opt, path);
  const Result r = hearth_run({"bench", "-m", path, "-p", "64", "-n", "8", "-r", "1", "--no-warmup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const plan::ModelInfo m = plan::open_model(path);
  plan::PlanParams p;
  p.n_ctx = 64 + 8;
  p.n_ubatch = 512;
  const plan::Plan plan = plan::make_plan(m, p);
  const double ratio = static_cast<double>(r.max_rss_bytes) / static_cast<double>(plan.total_bytes());
  std::printf("peak RSS %llu bytes, predicted %llu (weights %llu, KV %llu, compute %llu): measured / predicted %.4f\n",
              static_cast<unsigned long long>(r.max_rss_bytes), static_cast<unsigned long long>(plan.total_bytes()),
              static_cast<unsigned long long>(plan.weights_bytes()), static_cast<unsigned long long>(plan.kv_bytes()),
              static_cast<unsigned long long>(plan.compute_bytes), ratio);
  EXPECT_NEAR(ratio, 1.0, 0.05);
  std::filesystem::remove(path);
}

}  // namespace

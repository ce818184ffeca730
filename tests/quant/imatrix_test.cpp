// quant/imatrix.h: the GGUF imatrix file (write/read round trip), the legacy .dat reader,
// importance() (count 0 gives ones) and clear errors for malformed files (formats.md §3.7).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "gguf/gguf.h"
#include "hearth/error.h"
#include "quant/imatrix.h"

namespace hearth::quant {
namespace {

std::string temp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-imatrix-test-" + name)).string();
}

Imatrix sample() {
  Imatrix m;
  m.datasets = {"calib.txt"};
  m.chunk_count = 3;
  m.chunk_size = 64;
  ImatrixEntry a;
  a.n_in = 4;
  a.in_sum2 = {1, 2, 3, 4};
  a.counts = {2};
  m.entries["blk.0.attn_q.weight"] = a;
  ImatrixEntry moe;  // two experts, the second never routed to
  moe.n_in = 2;
  moe.n_mat = 2;
  moe.in_sum2 = {6, 9, 0, 0};
  moe.counts = {3, 0};
  m.entries["blk.1.ffn_up_exps.weight"] = moe;
  return m;
}

// Writes a GGUF file with the given metadata switches and tensors (name, type, ne, values).
struct T {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<float> v;
};
std::string write_gguf(const std::string& path, const std::vector<T>& ts, bool meta = true) {
  gguf::Writer w;
  w.set("general.type", gguf::Value::of("imatrix"));
  if (meta) {
    w.set("imatrix.datasets", gguf::Value::array(std::vector<std::string>{"x"}));
    w.set("imatrix.chunk_count", gguf::Value::of(uint32_t{1}));
    w.set("imatrix.chunk_size", gguf::Value::of(uint32_t{16}));
  }
  for (const T& t : ts) w.add_tensor(t.name, t.type, t.ne);
  w.begin(path);
  for (size_t i = 0; i < ts.size(); ++i) {
    std::vector<uint8_t> bytes(w.tensors()[i].nbytes, 0);
    std::memcpy(bytes.data(), ts[i].v.data(), std::min(bytes.size(), ts[i].v.size() * sizeof(float)));
    w.write_data(bytes);
  }
  w.finish();
  return path;
}

void expect_error(const std::string& path, const std::string& what) {
  try {
    Imatrix::read(path);
    FAIL() << "no error for " << path << ", expected one naming " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(Imatrix, GgufRoundTripKeepsEntriesAndMetadata) {
  const Imatrix m = sample();
  const std::string path = temp("roundtrip.gguf");
  m.write(path);
  const Imatrix r = Imatrix::read(path);
  EXPECT_EQ(r.datasets, m.datasets);
  EXPECT_EQ(r.chunk_count, 3u);
  EXPECT_EQ(r.chunk_size, 64u);
  ASSERT_EQ(r.entries.size(), 2u);
  for (const auto& [name, e] : m.entries) {
    const ImatrixEntry* g = r.find(name);
    ASSERT_NE(g, nullptr) << name;
    EXPECT_EQ(g->n_in, e.n_in);
    EXPECT_EQ(g->n_mat, e.n_mat);
    EXPECT_EQ(g->in_sum2, e.in_sum2);
    EXPECT_EQ(g->counts, e.counts);
  }
  // llama.cpp's layout: general.type, F32 tensors {n_in, n_mat} and {1, n_mat}, sorted by name.
  const gguf::File f = gguf::File::open(path);
  EXPECT_EQ(f.require<std::string>("general.type"), "imatrix");
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.tensors()[0].name, "blk.0.attn_q.weight.in_sum2");
  EXPECT_EQ(f.tensors()[1].name, "blk.0.attn_q.weight.counts");
  EXPECT_EQ(f.tensors()[2].name, "blk.1.ffn_up_exps.weight.in_sum2");
  EXPECT_EQ(f.tensors()[2].ne[0], 2);
  EXPECT_EQ(f.tensors()[2].ne[1], 2);
  EXPECT_EQ(f.tensors()[3].ne[0], 1);
  EXPECT_EQ(f.tensors()[3].ne[1], 2);
}

TEST(Imatrix, ImportanceIsMeanSquarePerExpertAndOnesForUnusedExperts) {
  const Imatrix m = sample();
  EXPECT_EQ(m.importance("blk.0.attn_q.weight"), (std::vector<float>{0.5f, 1, 1.5f, 2}));
  EXPECT_EQ(m.importance("blk.1.ffn_up_exps.weight"), (std::vector<float>{2, 3, 1, 1}));
  EXPECT_TRUE(m.importance("blk.9.none").empty());
}

TEST(Imatrix, AccumulateSumsSquaresAndRows) {
  Imatrix m;
  const float x[6] = {1, 2, 3, -1, -2, -3};  // 3 rows of 2
  m.accumulate("blk.0.ffn_down.weight", x, 3, 2);
  m.accumulate("blk.0.ffn_down.weight", x, 1, 2);
  const ImatrixEntry* e = m.find("blk.0.ffn_down.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_FLOAT_EQ(e->in_sum2[0], 1 + 9 + 4 + 1);
  EXPECT_FLOAT_EQ(e->in_sum2[1], 4 + 1 + 9 + 4);
  EXPECT_FLOAT_EQ(e->counts[0], 4);
  EXPECT_THROW(m.accumulate("blk.0.ffn_down.weight", x, 2, 3), Error);
  EXPECT_TRUE(Imatrix::wants("blk.3.attn_k.weight", 16));
  EXPECT_FALSE(Imatrix::wants("blk.3.attn_k.weight", 15));
  EXPECT_FALSE(Imatrix::wants("output.weight", 512));
}

TEST(Imatrix, ReadsLegacyDatFiles) {
  const std::string path = temp("legacy.dat");
  {
    std::ofstream out(path, std::ios::binary);
    const auto i32 = [&](int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
    i32(2);
    const std::string a = "blk.0.attn_k.weight";
    i32(static_cast<int32_t>(a.size()));
    out.write(a.data(), static_cast<std::streamsize>(a.size()));
    i32(4);  // ncall
    i32(3);
    const float va[3] = {4, 8, 12};  // (Σx²/count)·ncall
    out.write(reinterpret_cast<const char*>(va), sizeof(va));
    const std::string b = "blk.0.ffn_up.weight";
    i32(static_cast<int32_t>(b.size()));
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
    i32(0);  // never called: reads back as ones
    i32(2);
    const float vb[2] = {0, 0};
    out.write(reinterpret_cast<const char*>(vb), sizeof(vb));
    i32(7);  // chunk count
    const std::string ds = "wiki.train.raw";
    i32(static_cast<int32_t>(ds.size()));
    out.write(ds.data(), static_cast<std::streamsize>(ds.size()));
  }
  const Imatrix m = Imatrix::read(path);
  EXPECT_EQ(m.chunk_count, 7u);
  EXPECT_EQ(m.datasets, std::vector<std::string>{"wiki.train.raw"});
  EXPECT_EQ(m.importance("blk.0.attn_k.weight"), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(m.importance("blk.0.ffn_up.weight"), (std::vector<float>{1, 1}));

  // Truncated: cut the file inside the second entry's values.
  const std::string cut = temp("legacy-cut.dat");
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, 60);
  }
  expect_error(cut, "exceeds the file");
}

TEST(Imatrix, MalformedGgufFilesGiveErrorsNamingTheProblem) {
  const T sum{"blk.0.attn_q.weight.in_sum2", GgmlType::F32, {4, 1}, {1, 2, 3, 4}};
  const T cnt{"blk.0.attn_q.weight.counts", GgmlType::F32, {1, 1}, {2}};
  EXPECT_NO_THROW(Imatrix::read(write_gguf(temp("ok.gguf"), {sum, cnt})));
  expect_error(write_gguf(temp("nopair.gguf"), {sum}), "no matching blk.0.attn_q.weight.counts");
  expect_error(write_gguf(temp("nosum.gguf"), {cnt}), "no matching blk.0.attn_q.weight.in_sum2");
  expect_error(write_gguf(temp("f16.gguf"), {{sum.name, GgmlType::F16, {4, 1}, {}}, cnt}), "must be F32");
  const float inf = std::numeric_limits<float>::infinity();
  expect_error(write_gguf(temp("inf.gguf"), {{sum.name, GgmlType::F32, {4, 1}, {1, inf, 3, 4}}, cnt}),
               "non-finite value at index 1");
  expect_error(write_gguf(temp("neg.gguf"), {sum, {cnt.name, GgmlType::F32, {1, 1}, {-1}}}), "negative");
  expect_error(write_gguf(temp("shape.gguf"), {sum, {cnt.name, GgmlType::F32, {1, 2}, {1, 1}}}),
               "blk.0.attn_q.weight.counts has shape");
  expect_error(write_gguf(temp("meta.gguf"), {sum, cnt}, /*meta=*/false), "imatrix.datasets");
  expect_error(write_gguf(temp("stray.gguf"), {sum, cnt, {"foo", GgmlType::F32, {1}, {0}}}), "tensor foo");
  expect_error(temp("does-not-exist.gguf"), "does-not-exist");
}

}  // namespace
}  // namespace hearth::quant

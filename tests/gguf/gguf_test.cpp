#include "gguf/gguf.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

using hearth::Error;
using hearth::gguf::File;
using hearth::gguf::FormatError;
using hearth::gguf::TensorInfo;
using hearth::gguf::Value;
using hearth::gguf::ValueType;
using hearth::gguf::Writer;
using hearth::quant::GgmlType;

namespace {

std::vector<uint8_t> write_to_bytes(Writer& w, const std::vector<std::vector<uint8_t>>& data) {
  std::ostringstream out;
  w.begin(out);
  for (const auto& d : data) w.write_data(d);
  w.finish();
  const std::string s = out.str();
  return {s.begin(), s.end()};
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// A small valid file: a few keys and three tensors.
std::vector<uint8_t> sample_file() {
  Writer w;
  w.set("general.architecture", Value::of("llama"));
  w.set("llama.block_count", Value::of(uint32_t{3}));
  w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{"<unk>", "a", "b"}));
  w.add_tensor("a", GgmlType::F32, {8});
  w.add_tensor("b", GgmlType::F16, {16, 2});
  w.add_tensor("c", GgmlType::Q8_0, {32, 1});
  return write_to_bytes(w, {pattern(32, 1), pattern(64, 2), pattern(34, 3)});
}

// Little-endian byte builder for hand-made (malformed) files.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T v) {
    uint8_t buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    b.insert(b.end(), buf, buf + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(int64_t n_tensors, int64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    put<uint32_t>(version);
    put<int64_t>(n_tensors);
    return put<int64_t>(n_kv);
  }
  Bytes& pad(size_t align) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

// Parses `bytes` expecting a FormatError whose field contains `field` and whose message
// contains `problem`.
void expect_format_error(const std::vector<uint8_t>& bytes, const std::string& field,
                         const std::string& problem, int64_t offset = -1) {
  try {
    File::from_bytes(bytes, "bad.gguf");
    FAIL() << "expected a FormatError about " << field;
  } catch (const FormatError& e) {
    EXPECT_NE(e.field().find(field), std::string::npos) << "field was: " << e.field() << "\n" << e.what();
    EXPECT_NE(std::string(e.what()).find(problem), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.gguf"), std::string::npos) << e.what();
    if (offset >= 0) {
      EXPECT_EQ(e.offset(), static_cast<uint64_t>(offset)) << e.what();
    }
  }
}

}  // namespace

TEST(GgufRoundTrip, EveryValueTypeAndTensorSurvives) {
  Writer w;
  w.set("u8", Value::of(uint8_t{200}));
  w.set("i8", Value::of(int8_t{-100}));
  w.set("u16", Value::of(uint16_t{60000}));
  w.set("i16", Value::of(int16_t{-30000}));
  w.set("u32", Value::of(uint32_t{4000000000u}));
  w.set("i32", Value::of(int32_t{-2000000000}));
  w.set("f32", Value::of(1.5f));
  w.set("bool", Value::of(true));
  w.set("str", Value::of("héllo\nworld"));
  w.set("u64", Value::of(uint64_t{1} << 63));
  w.set("i64", Value::of(int64_t{-(int64_t{1} << 62)}));
  w.set("f64", Value::of(-2.25));
  w.set("arr.f32", Value::array(std::vector<float>{1.f, -2.f, 3.5f}));
  w.set("arr.i32", Value::array(std::vector<int32_t>{1, 3, 6}));
  w.set("arr.u8", Value::array(std::vector<uint8_t>{}));
  w.set("arr.bool", Value::array(std::vector<bool>{true, false, true}));
  w.set("arr.str", Value::array(std::vector<std::string>{"a", "", "ccc"}));
  w.set("u8", Value::of(uint8_t{201}));  // replacing keeps the position
  w.add_tensor("t.f32", GgmlType::F32, {3, 2});
  w.add_tensor("t.f16", GgmlType::F16, {5});
  w.add_tensor("t.q8", GgmlType::Q8_0, {64, 2, 3});
  w.add_tensor("t.empty", GgmlType::F32, {0});
  w.add_tensor("t.q4k", GgmlType::Q4_K, {256, 1, 1, 2});
  const std::vector<uint8_t> d0 = pattern(24, 1), d1 = pattern(10, 2), d2 = pattern(34 * 2 * 2 * 3, 3),
                             d4 = pattern(144 * 2, 4);
  // Chunks that split and span tensors.
  std::vector<uint8_t> all;
  for (const auto* d : {&d0, &d1, &d2, &d4}) all.insert(all.end(), d->begin(), d->end());
  std::vector<std::vector<uint8_t>> chunks;
  for (size_t i = 0; i < all.size(); i += 37)
    chunks.emplace_back(all.begin() + i, all.begin() + std::min(all.size(), i + 37));
  const std::vector<uint8_t> bytes = write_to_bytes(w, chunks);
  EXPECT_EQ(bytes.size(), w.file_size());

  const File f = File::from_bytes(bytes);
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), 17u);
  EXPECT_EQ(f.metadata()[0].first, "u8");
  EXPECT_EQ(f.require<uint8_t>("u8"), 201);
  EXPECT_EQ(f.require<int8_t>("i8"), -100);
  EXPECT_EQ(f.require<uint16_t>("u16"), 60000);
  EXPECT_EQ(f.require<int16_t>("i16"), -30000);
  EXPECT_EQ(f.require<uint32_t>("u32"), 4000000000u);
  EXPECT_EQ(f.require<int32_t>("i32"), -2000000000);
  EXPECT_EQ(f.require<float>("f32"), 1.5f);
  EXPECT_EQ(f.require<bool>("bool"), true);
  EXPECT_EQ(f.require<std::string>("str"), "héllo\nworld");
  EXPECT_EQ(f.require<uint64_t>("u64"), uint64_t{1} << 63);
  EXPECT_EQ(f.require<int64_t>("i64"), -(int64_t{1} << 62));
  EXPECT_EQ(f.require<double>("f64"), -2.25);
  EXPECT_EQ(f.find("f32")->type(), ValueType::FLOAT32);
  EXPECT_EQ(f.find("arr.f32")->get_array<float>(), (std::vector<float>{1.f, -2.f, 3.5f}));
  EXPECT_EQ(f.find("arr.i32")->elem_type(), ValueType::INT32);
  EXPECT_EQ(f.find("arr.i32")->get_array<int64_t>(), (std::vector<int64_t>{1, 3, 6}));
  EXPECT_EQ(f.find("arr.u8")->count(), 0u);
  EXPECT_EQ(f.find("arr.bool")->get_array<bool>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(f.find("arr.str")->strings(), (std::vector<std::string>{"a", "", "ccc"}));

  ASSERT_EQ(f.tensors().size(), 5u);
  const TensorInfo* q8 = f.find_tensor("t.q8");
  ASSERT_NE(q8, nullptr);
  EXPECT_EQ(q8->type, GgmlType::Q8_0);
  EXPECT_EQ(q8->n_dims, 3u);
  EXPECT_EQ(q8->ne[0], 64);
  EXPECT_EQ(q8->ne[2], 3);
  EXPECT_EQ(q8->nbytes, 34u * 2 * 2 * 3);
  EXPECT_EQ(f.find_tensor("t.q4k")->n_dims, 4u);
  EXPECT_EQ(f.find_tensor("t.empty")->nbytes, 0u);
  for (const TensorInfo& t : f.tensors()) EXPECT_EQ((f.data_offset() + t.offset) % 32, 0u) << t.name;
  auto same = [&](const char* name, const std::vector<uint8_t>& want) {
    const auto got = f.tensor_data(*f.find_tensor(name));
    EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.end()), want) << name;
  };
  same("t.f32", d0);
  same("t.f16", d1);
  same("t.q8", d2);
  same("t.q4k", d4);
}

TEST(GgufRoundTrip, CustomAlignmentIsUsedForPadding) {
  Writer w;
  w.set("general.alignment", Value::of(uint32_t{64}));
  w.add_tensor("a", GgmlType::F32, {3});
  w.add_tensor("b", GgmlType::F32, {5});
  const File f = File::from_bytes(write_to_bytes(w, {pattern(12, 0), pattern(20, 1)}));
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.find_tensor("b")->offset, 64u);
}

TEST(GgufRoundTrip, WriterRejectsBadInput) {
  Writer w;
  EXPECT_THROW(w.set("", Value::of(1.0f)), Error);
  EXPECT_THROW(w.set("general.alignment", Value::of(uint32_t{48})), Error);
  EXPECT_THROW(w.add_tensor(std::string(64, 'x'), GgmlType::F32, {1}), Error);
  EXPECT_THROW(w.add_tensor("q", GgmlType::Q8_0, {33}), Error);
  EXPECT_THROW(w.add_tensor("d", GgmlType::F32, {1, 1, 1, 1, 1}), Error);
  w.add_tensor("ok", GgmlType::F32, {2});
  EXPECT_THROW(w.add_tensor("ok", GgmlType::F32, {2}), Error);
  std::ostringstream out;
  w.begin(out);
  EXPECT_THROW(w.write_data(pattern(9, 0)), Error);  // 8 bytes expected
}

TEST(GgufRoundTrip, FinishRequiresAllData) {
  Writer w;
  w.add_tensor("a", GgmlType::F32, {4});
  std::ostringstream out;
  w.begin(out);
  w.write_data(pattern(8, 0));
  EXPECT_THROW(w.finish(), Error);
}

/// A path in the temp directory unique to this process.
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-gguf-test-" + std::to_string(getpid()) + "-" + name)).string();
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A write goes to a file beside the path and replaces it only when finished: a File mapping
// the old file keeps reading the old bytes, and an unfinished write leaves nothing behind.
TEST(GgufWriter, FinishReplacesTheFileAndAnUnfinishedWriteLeavesNothing) {
  const std::string path = temp_path("replace.gguf");
  const std::vector<uint8_t> first = sample_file();
  {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(first.data()), static_cast<std::streamsize>(first.size()));
  }
  const File old = File::open(path);
  {
    Writer w;
    w.add_tensor("z", GgmlType::F32, {4});
    w.begin(path);
    w.write_data(pattern(16, 9));
    EXPECT_EQ(read_all(path), first) << "the file changed before finish()";
    w.finish();
  }
  const File now = File::open(path);
  ASSERT_NE(now.find_tensor("z"), nullptr);
  const auto a = old.tensor_data(*old.find_tensor("a"));
  EXPECT_EQ(std::vector<uint8_t>(a.begin(), a.end()), pattern(32, 1));
  {
    Writer w;
    w.add_tensor("z", GgmlType::F32, {4});
    w.begin(path);
    w.write_data(pattern(8, 1));
  }  // destroyed without finish()
  EXPECT_NE(File::open(path).find_tensor("z"), nullptr);
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    EXPECT_EQ(e.path().string().rfind(path + ".tmp", 0), std::string::npos) << e.path();
  std::filesystem::remove(path);
}

// rewrite_tensor changes a tensor's bytes for this mapping only (never the file), once per
// layout, and says no where it cannot write.
TEST(GgufRead, RewriteTensorChangesTheMappingOnceAndNeverTheFile) {
  const std::string path = temp_path("rewrite.gguf");
  const std::vector<uint8_t> bytes = sample_file();
  {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const File f = File::open(path);
  const File copy = f;  // copies share the mapping and its layouts
  const TensorInfo& c = *f.find_tensor("c");
  EXPECT_EQ(f.tensor_layout(c), 0);
  int calls = 0;
  auto invert = [&](std::span<uint8_t> b) {
    ++calls;
    ASSERT_EQ(b.size(), 34u);
    for (uint8_t& x : b) x = static_cast<uint8_t>(~x);
  };
  EXPECT_TRUE(f.rewrite_tensor(c, 1, invert));
  EXPECT_TRUE(copy.rewrite_tensor(c, 1, invert));  // already done: fn not called again
  EXPECT_FALSE(f.rewrite_tensor(c, 2, invert));    // another layout: refused
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(copy.tensor_layout(c), 1);
  const auto got = copy.tensor_data(c);
  const std::vector<uint8_t> want = pattern(34, 3);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], static_cast<uint8_t>(~want[i])) << i;
  const auto a = f.tensor_data(*f.find_tensor("a"));
  EXPECT_EQ(std::vector<uint8_t>(a.begin(), a.end()), pattern(32, 1)) << "a neighbour changed";
  EXPECT_EQ(read_all(path), bytes) << "the file on disk changed";
  EXPECT_EQ(File::open(path).tensor_layout(c), 0) << "a new mapping starts from the file";
  EXPECT_THROW(f.rewrite_tensor(*f.find_tensor("a"), 0, invert), Error);

  // In-memory images are hearth's own; static images and headers are not writable.
  const File mem = File::from_bytes(bytes);
  EXPECT_TRUE(mem.rewrite_tensor(*mem.find_tensor("c"), 1, invert));
  alignas(32) static uint8_t image[4096];
  std::memcpy(image, bytes.data(), bytes.size());
  const File st = File::from_static(image, bytes.size(), "<static>");
  EXPECT_FALSE(st.rewrite_tensor(*st.find_tensor("c"), 1, invert));
  EXPECT_EQ(st.tensor_layout(*st.find_tensor("c")), 0);
  EXPECT_EQ(calls, 2);
  std::filesystem::remove(path);
}

TEST(GgufRead, RealModelFile) {
  const File f = File::open(std::string(HEARTH_TESTDATA_DIR) + "/models/llama-F16.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.require<std::string>("general.architecture"), "llama");
  EXPECT_EQ(f.require<uint32_t>("llama.block_count"), 3u);
  EXPECT_EQ(f.require<uint32_t>("llama.embedding_length"), 256u);
  EXPECT_FLOAT_EQ(f.require<float>("llama.rope.freq_base"), 500000.0f);
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->strings().size(), 4096u);
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->strings()[1], "<s>");
  EXPECT_EQ(f.tensors().size(), 30u);
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::F16);
  EXPECT_EQ(emb->ne[0], 256);
  EXPECT_EQ(emb->ne[1], 4096);
  EXPECT_EQ(emb->nbytes, 256u * 4096 * 2);
  EXPECT_EQ(f.find_tensor("rope_freqs.weight")->type, GgmlType::F32);
}

TEST(GgufRead, TypedGettersNameTheKey) {
  const File f = File::from_bytes(sample_file(), "s.gguf");
  EXPECT_FALSE(f.get<uint32_t>("missing").has_value());
  try {
    f.require<uint32_t>("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
  }
  try {
    f.require<uint32_t>("llama.nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'llama.nope' is missing"), std::string::npos);
  }
  EXPECT_EQ(f.require<int64_t>("llama.block_count"), 3);  // integer widening
  EXPECT_THROW(f.require<int8_t>("general.architecture"), Error);
}

TEST(GgufRead, MissingFileIsAClearError) {
  try {
    File::open("/nonexistent/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

TEST(GgufMalformed, TruncatedHeader) {
  const std::vector<uint8_t> good = sample_file();
  expect_format_error({}, "magic", "truncated", 0);
  expect_format_error({'G', 'G'}, "magic", "truncated", 0);
  expect_format_error({good.begin(), good.begin() + 6}, "version", "truncated", 4);
  expect_format_error({good.begin(), good.begin() + 12}, "tensor count", "truncated", 8);
  expect_format_error({good.begin(), good.begin() + 20}, "metadata count", "truncated", 16);
}

TEST(GgufMalformed, EveryTruncationIsAnErrorNeverACrash) {
  const std::vector<uint8_t> good = sample_file();
  const File f = File::from_bytes(good);
  const TensorInfo& last = f.tensors().back();
  const size_t data_end = f.data_offset() + last.offset + last.nbytes;
  ASSERT_LT(data_end, good.size());  // the sample has trailing padding
  for (size_t n = 0; n < data_end; ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    EXPECT_THROW(File::from_bytes(cut), FormatError) << "truncated at " << n;
  }
  // Like llama.cpp, the padding after the last tensor is not required.
  for (size_t n = data_end; n <= good.size(); ++n)
    EXPECT_NO_THROW(File::from_bytes(std::vector<uint8_t>(good.begin(), good.begin() + n)));
}

TEST(GgufMalformed, BadMagicAndVersions) {
  Bytes b;
  b.header(0, 0);
  b.b[0] = 'X';
  expect_format_error(b.b, "magic", "not a GGUF file", 0);
  expect_format_error(Bytes().header(0, 0, 1).b, "version", "version 1", 4);
  expect_format_error(Bytes().header(0, 0, 4).b, "version", "unsupported GGUF version 4", 4);
  expect_format_error(Bytes().header(0, 0, 0x03000000).b, "version", "byte-swapped", 4);
  EXPECT_NO_THROW(File::from_bytes(Bytes().header(0, 0, 2).b));
}

TEST(GgufMalformed, CountsPastTheEnd) {
  expect_format_error(Bytes().header(0, 1000000).b, "metadata count", "cannot fit", 16);
  expect_format_error(Bytes().header(int64_t{1} << 40, 0).b, "tensor count", "cannot fit", 8);
  expect_format_error(Bytes().header(-1, 0).b, "tensor count", "negative", 8);
  // A string whose length runs past the end.
  Bytes s;
  s.header(0, 1).str("k").put<int32_t>(8).put<uint64_t>(1000).zeros(4);
  expect_format_error(s.b, "value of key 'k'", "truncated");
  // A huge string length is rejected before any allocation.
  Bytes h;
  h.header(0, 1).str("k").put<int32_t>(8).put<uint64_t>(uint64_t{1} << 62);
  expect_format_error(h.b, "value of key 'k'", "too large");
  // Array counts past the end, for numbers and for strings.
  Bytes a;
  a.header(0, 1).str("k").put<int32_t>(9).put<int32_t>(4).put<uint64_t>(100000).zeros(16);
  expect_format_error(a.b, "value of key 'k'", "does not fit", 8 + 16 + 8 + 1 + 4 + 4);
  Bytes sa;
  sa.header(0, 1).str("k").put<int32_t>(9).put<int32_t>(8).put<uint64_t>(1000000).zeros(64);
  expect_format_error(sa.b, "value of key 'k'", "does not fit");
}

TEST(GgufMalformed, BadTypeIds) {
  Bytes v;
  v.header(0, 1).str("k").put<int32_t>(13).zeros(8);
  expect_format_error(v.b, "type of key 'k'", "invalid value type 13", 24 + 9);
  Bytes nested;
  nested.header(0, 1).str("k").put<int32_t>(9).put<int32_t>(9).put<uint64_t>(0);
  expect_format_error(nested.b, "value of key 'k'", "arrays of arrays");
  // Tensor with a removed ggml type (4 = Q4_2) and one past the table.
  for (int32_t bad : {4, 31, 43, -1}) {
    Bytes t;
    t.header(1, 0).str("w").put<uint32_t>(1).put<int64_t>(32).put<int32_t>(bad).put<uint64_t>(0).pad(32).zeros(64);
    expect_format_error(t.b, "tensor 'w' type", "ggml type id " + std::to_string(bad));
  }
}

TEST(GgufMalformed, BadTensorInfos) {
  auto one_tensor = [](uint32_t n_dims, std::vector<int64_t> ne, int32_t type, uint64_t offset, size_t data) {
    Bytes t;
    t.header(1, 0).str("w").put<uint32_t>(n_dims);
    for (int64_t x : ne) t.put<int64_t>(x);
    t.put<int32_t>(type).put<uint64_t>(offset).pad(32).zeros(data);
    return t.b;
  };
  expect_format_error(one_tensor(5, {1, 1, 1, 1, 1}, 0, 0, 4), "tensor 'w' n_dims", "5 dimensions");
  expect_format_error(one_tensor(2, {4, -2}, 0, 0, 32), "tensor 'w' ne[1]", "negative dimension");
  expect_format_error(one_tensor(1, {33}, 8, 0, 64), "tensor 'w'", "not a multiple of the Q8_0 block size");
  expect_format_error(one_tensor(1, {8}, 0, 16, 64), "tensor 'w' offset", "not a multiple of the alignment");
  expect_format_error(one_tensor(1, {64}, 0, 0, 100), "tensor 'w' data", "runs past the end");
  expect_format_error(one_tensor(1, {8}, 0, uint64_t{1} << 60, 32), "tensor 'w' data", "runs past the end");
  expect_format_error(one_tensor(4, {int64_t{1} << 40, int64_t{1} << 40, 1, 1}, 0, 0, 32), "tensor 'w'",
                      "overflows");
  EXPECT_NO_THROW(File::from_bytes(one_tensor(1, {8}, 0, 0, 32)));
  // Long and duplicate names.
  Bytes longname;
  longname.header(1, 0).str(std::string(64, 'n')).put<uint32_t>(1).put<int64_t>(1).put<int32_t>(0).put<uint64_t>(0);
  longname.pad(32).zeros(32);
  expect_format_error(longname.b, "tensor '", "at most 63");
  Bytes dup;
  dup.header(2, 0);
  for (int i = 0; i < 2; ++i) dup.str("w").put<uint32_t>(1).put<int64_t>(8).put<int32_t>(0).put<uint64_t>(i * 32);
  dup.pad(32).zeros(64);
  expect_format_error(dup.b, "tensor 'w'", "duplicate tensor name");
  // Overlapping data.
  Bytes overlap;
  overlap.header(2, 0);
  overlap.str("a").put<uint32_t>(1).put<int64_t>(16).put<int32_t>(0).put<uint64_t>(0);
  overlap.str("b").put<uint32_t>(1).put<int64_t>(16).put<int32_t>(0).put<uint64_t>(32);
  overlap.pad(32).zeros(128);
  expect_format_error(overlap.b, "tensor 'b' data", "overlaps the data of tensor 'a'");
}

TEST(GgufMalformed, BadKeys) {
  Bytes dup;
  dup.header(0, 2).str("k").put<int32_t>(4).put<uint32_t>(1).str("k").put<int32_t>(4).put<uint32_t>(2);
  expect_format_error(dup.b, "metadata record 1", "duplicate key 'k'");
  Bytes empty;
  empty.header(0, 1).str("").put<int32_t>(4).put<uint32_t>(1);
  expect_format_error(empty.b, "metadata record 0", "empty key");
  Bytes align;
  align.header(0, 1).str("general.alignment").put<int32_t>(4).put<uint32_t>(48);
  expect_format_error(align.b, "general.alignment", "not a power of two");
  Bytes align_type;
  align_type.header(0, 1).str("general.alignment").put<int32_t>(5).put<int32_t>(32);
  expect_format_error(align_type.b, "general.alignment", "must be UINT32");
}

TEST(GgufMalformed, RandomCorruptionNeverCrashes) {
  // Mutate bytes of a valid file at random: each result must parse or raise FormatError,
  // never crash or read out of bounds (run under the sanitizer build to check the latter).
  const std::vector<uint8_t> good = sample_file();
  std::mt19937 rng(1234);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = good;
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < n_mut; ++m) {
      const size_t pos = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[pos] = static_cast<uint8_t>(rng()); break;
        case 1: b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        default: b[pos] = 0xFF; break;
      }
    }
    try {
      const File f = File::from_bytes(b);
      for (const TensorInfo& t : f.tensors()) {
        auto d = f.tensor_data(t);
        ASSERT_LE(f.data_offset() + t.offset + d.size(), b.size());
      }
      ++parsed;
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(parsed, 100);
}

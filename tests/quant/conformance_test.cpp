// Byte-exact conformance of the reference quantizers with llama-quantize: every tensor of the
// shared test models (`<model>-F16.gguf`) is quantized with hearth's from_float and compared
// with the same tensor in the files llama-quantize wrote from it without an imatrix
// (`<model>-Q8_0.gguf`, `-Q4_K_M`, `-Q5_K_M`, `-Q6_K`, `-IQ4_XS`; see testdata/models/README.md).
// The IQ4_XS mix also stores some tensors as Q5_K, Q6_K or Q8_0; every tensor of a type hearth
// can write is compared, whatever the file's nominal type.
// The GGUF container is read by a minimal, test-only parser (formats.md §1) so that this test
// depends on nothing but quant/.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/convert.h"
#include "quant/types.h"

namespace hearth::quant {
namespace {

struct TensorInfo {
  std::vector<uint64_t> ne;
  int32_t type = -1;
  uint64_t offset = 0;  // from the start of the data section
};

struct GgufFile {
  std::vector<uint8_t> bytes;
  size_t data_start = 0;
  std::map<std::string, TensorInfo> tensors;

  const uint8_t* data(const TensorInfo& t) const { return bytes.data() + data_start + t.offset; }
};

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : b_(b) {}
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    pos_ += n;
  }
  size_t pos() const { return pos_; }

 private:
  void need(uint64_t n) const {
    if (n > b_.size() - pos_) throw std::runtime_error("truncated GGUF");
  }
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

// Skips one metadata value of GGUF value type `vt` (formats.md §1.3); returns it if it is an
// integer (for general.alignment).
uint64_t skip_value(Reader& r, uint32_t vt) {
  switch (vt) {
    case 0: case 1: case 7: return r.get<uint8_t>();
    case 2: case 3: return r.get<uint16_t>();
    case 4: case 5: case 6: return r.get<uint32_t>();
    case 10: case 11: case 12: return r.get<uint64_t>();
    case 8: r.str(); return 0;
    case 9: {
      const uint32_t et = r.get<uint32_t>();
      const uint64_t n = r.get<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) skip_value(r, et);
      return 0;
    }
    default: throw std::runtime_error("bad GGUF value type");
  }
}

GgufFile read_gguf(const std::filesystem::path& path) {
  GgufFile f;
  std::ifstream in(path, std::ios::binary);
  f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  Reader r(f.bytes);
  if (r.get<uint32_t>() != 0x46554747u) throw std::runtime_error("not a GGUF file");
  r.get<uint32_t>();  // version
  const uint64_t n_tensors = r.get<uint64_t>();
  const uint64_t n_kv = r.get<uint64_t>();
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key = r.str();
    const uint64_t v = skip_value(r, r.get<uint32_t>());
    if (key == "general.alignment") alignment = v;
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const std::string name = r.str();
    TensorInfo t;
    t.ne.resize(r.get<uint32_t>());
    for (auto& d : t.ne) d = r.get<uint64_t>();
    t.type = r.get<int32_t>();
    t.offset = r.get<uint64_t>();
    f.tensors[name] = t;
  }
  f.data_start = (r.pos() + alignment - 1) / alignment * alignment;
  return f;
}

struct Totals {
  int tensors = 0;
  int64_t blocks = 0;
};

// Quantizes every F16 tensor of `f16` that `quantized` stores as a type hearth can write, and
// compares the bytes block by block.
void check_file_pair(const GgufFile& f16, const GgufFile& quantized, const std::string& label,
                     std::map<std::string, Totals>& totals) {
  for (const auto& [name, qt] : quantized.tensors) {
    const TypeTraits* tt = find_traits(qt.type);
    if (tt == nullptr || !tt->is_quantized || tt->from_float == nullptr) continue;
    const auto src = f16.tensors.find(name);
    ASSERT_NE(src, f16.tensors.end()) << label << ": " << name;
    ASSERT_EQ(src->second.ne, qt.ne) << label << ": " << name;
    if (src->second.type != static_cast<int32_t>(GgmlType::F16)) continue;

    const int64_t ne0 = static_cast<int64_t>(qt.ne[0]);
    int64_t nrows = 1;
    for (size_t i = 1; i < qt.ne.size(); ++i) nrows *= static_cast<int64_t>(qt.ne[i]);
    const size_t qrow = row_size(tt->type, ne0);
    const size_t blocks_per_row = static_cast<size_t>(ne0 / tt->blck_size);
    ASSERT_LE(quantized.data_start + qt.offset + qrow * nrows, quantized.bytes.size());
    ASSERT_LE(f16.data_start + src->second.offset + 2 * ne0 * nrows, f16.bytes.size());

    std::vector<float> row(ne0);
    std::vector<uint8_t> mine(qrow);
    int64_t bad_blocks = 0;
    for (int64_t r = 0; r < nrows; ++r) {
      traits(GgmlType::F16).to_float(f16.data(src->second) + 2 * ne0 * r, row.data(), ne0);
      tt->from_float(row.data(), mine.data(), ne0);
      const uint8_t* theirs = quantized.data(qt) + qrow * r;
      for (size_t b = 0; b < blocks_per_row; ++b) {
        if (std::memcmp(mine.data() + b * tt->type_size, theirs + b * tt->type_size, tt->type_size) == 0)
          continue;
        if (bad_blocks++ < 3) {
          std::string diff;
          for (size_t k = 0; k < tt->type_size; ++k)
            if (mine[b * tt->type_size + k] != theirs[b * tt->type_size + k])
              diff += " [" + std::to_string(k) + "] " + std::to_string(mine[b * tt->type_size + k]) +
                      "!=" + std::to_string(theirs[b * tt->type_size + k]);
          ADD_FAILURE() << label << " " << name << " (" << tt->name << ") row " << r << " block " << b
                        << " differs at bytes (ours!=llama-quantize):" << diff.substr(0, 400);
        }
      }
    }
    EXPECT_EQ(bad_blocks, 0) << label << " " << name << " (" << tt->name << ")";
    totals[tt->name].tensors += 1;
    totals[tt->name].blocks += nrows * static_cast<int64_t>(blocks_per_row);
  }
}

TEST(LlamaQuantizeConformance, ReferenceQuantizersAreByteExact) {
  const std::filesystem::path dir = std::filesystem::path(HEARTH_TESTDATA_DIR) / "models";
  if (!std::filesystem::exists(dir / "llama-F16.gguf")) GTEST_SKIP() << "no test models in " << dir;

  std::map<std::string, Totals> totals;
  for (const char* model : {"llama", "qwen3", "qwen35", "qwen3moe"}) {
    const auto f16_path = dir / (std::string(model) + "-F16.gguf");
    if (!std::filesystem::exists(f16_path)) continue;
    const GgufFile f16 = read_gguf(f16_path);
    for (const char* q : {"Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS"}) {
      const auto q_path = dir / (std::string(model) + "-" + q + ".gguf");
      if (!std::filesystem::exists(q_path)) continue;
      check_file_pair(f16, read_gguf(q_path), std::string(model) + "-" + q, totals);
    }
  }
  for (const auto& [type, t] : totals)
    std::printf("[ compared ] %-6s %3d tensors, %8lld blocks\n", type.c_str(), t.tensors,
                static_cast<long long>(t.blocks));
  // Every type of the mixes must have been exercised.
  for (const char* type : {"Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}) EXPECT_GT(totals[type].blocks, 0) << type;
}

}  // namespace
}  // namespace hearth::quant

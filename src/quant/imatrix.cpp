#include "quant/imatrix.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "gguf/gguf.h"
#include "hearth/error.h"
#include "quant/types.h"

namespace hearth::quant {
namespace {

constexpr const char* kSum2Suffix = ".in_sum2";
constexpr const char* kCountsSuffix = ".counts";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_finite(const std::string& path, const std::string& what, const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]) || v[i] < 0)
      throw Error(path + ": " + what + " has a " + (std::isfinite(v[i]) ? "negative" : "non-finite") +
                  " value at index " + std::to_string(i));
}

}  // namespace

bool Imatrix::wants(const std::string& weight_name, int64_t n_rows) {
  return n_rows >= kMinRows && weight_name.rfind("blk.", 0) == 0;
}

namespace {

/// dst[c] += Σ_r x[r][c]² over the n_rows rows of x ([n_rows][n_in]), summed in double.
void add_sum2(const float* x, int64_t n_rows, int64_t n_in, float* dst) {
  std::vector<double> sum(static_cast<size_t>(n_in), 0.0);
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* row = x + r * n_in;
    for (int64_t c = 0; c < n_in; ++c) sum[static_cast<size_t>(c)] += static_cast<double>(row[c]) * row[c];
  }
  for (int64_t c = 0; c < n_in; ++c) dst[c] += static_cast<float>(sum[static_cast<size_t>(c)]);
}

}  // namespace

void Imatrix::accumulate(const std::string& weight_name, const float* x, int64_t n_rows, int64_t n_in) {
  ImatrixEntry& e = entries[weight_name];
  if (e.in_sum2.empty()) {
    e.n_in = n_in;
    e.n_mat = 1;
    e.in_sum2.assign(static_cast<size_t>(n_in), 0.0f);
    e.counts.assign(1, 0.0f);
  } else if (e.n_in != n_in || e.n_mat != 1) {
    throw Error("imatrix entry " + weight_name + " has " + std::to_string(e.n_in) + " columns x " +
                std::to_string(e.n_mat) + " matrices; cannot add rows of " + std::to_string(n_in));
  }
  add_sum2(x, n_rows, n_in, e.in_sum2.data());
  e.counts[0] += static_cast<float>(n_rows);
}

void Imatrix::accumulate_expert(const std::string& weight_name, int64_t expert, int64_t n_expert, const float* x,
                                int64_t n_rows, int64_t n_in) {
  if (n_expert < 1 || expert < 0 || expert >= n_expert)
    throw Error("imatrix entry " + weight_name + ": expert " + std::to_string(expert) + " of " +
                std::to_string(n_expert) + " is out of range");
  ImatrixEntry& e = entries[weight_name];
  if (e.in_sum2.empty()) {
    e.n_in = n_in;
    e.n_mat = n_expert;
    e.in_sum2.assign(static_cast<size_t>(n_in * n_expert), 0.0f);
    e.counts.assign(static_cast<size_t>(n_expert), 0.0f);
  } else if (e.n_in != n_in || e.n_mat != n_expert) {
    throw Error("imatrix entry " + weight_name + " has " + std::to_string(e.n_in) + " columns x " +
                std::to_string(e.n_mat) + " matrices; cannot add rows of " + std::to_string(n_in) + " for " +
                std::to_string(n_expert) + " experts");
  }
  add_sum2(x, n_rows, n_in, e.in_sum2.data() + expert * n_in);
  e.counts[static_cast<size_t>(expert)] += static_cast<float>(n_rows);
}

const ImatrixEntry* Imatrix::find(const std::string& name) const {
  const auto it = entries.find(name);
  return it == entries.end() ? nullptr : &it->second;
}

std::vector<float> Imatrix::importance(const std::string& name) const {
  const ImatrixEntry* e = find(name);
  if (e == nullptr) return {};
  std::vector<float> out(static_cast<size_t>(e->n_in * e->n_mat));
  for (int64_t m = 0; m < e->n_mat; ++m) {
    const float count = e->counts[static_cast<size_t>(m)];
    for (int64_t c = 0; c < e->n_in; ++c) {
      const size_t i = static_cast<size_t>(m * e->n_in + c);
      out[i] = count > 0 ? e->in_sum2[i] / count : 1.0f;
    }
  }
  return out;
}

void Imatrix::write(const std::string& path) const {
  gguf::Writer w;
  w.set("general.type", gguf::Value::of("imatrix"));
  w.set("imatrix.datasets", gguf::Value::array(datasets));
  w.set("imatrix.chunk_count", gguf::Value::of(chunk_count));
  w.set("imatrix.chunk_size", gguf::Value::of(chunk_size));
  for (const auto& [name, e] : entries) {
    if (e.n_in <= 0 || e.n_mat <= 0 || e.in_sum2.size() != static_cast<size_t>(e.n_in * e.n_mat) ||
        e.counts.size() != static_cast<size_t>(e.n_mat))
      throw Error("imatrix entry " + name + " is inconsistent (n_in " + std::to_string(e.n_in) + ", n_mat " +
                  std::to_string(e.n_mat) + ", " + std::to_string(e.in_sum2.size()) + " sums, " +
                  std::to_string(e.counts.size()) + " counts)");
    w.add_tensor(name + kSum2Suffix, GgmlType::F32, {e.n_in, e.n_mat});
    w.add_tensor(name + kCountsSuffix, GgmlType::F32, {1, e.n_mat});
  }
  const auto bytes = [](const std::vector<float>& v) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float));
  };
  w.begin(path);
  for (const auto& [name, e] : entries) {
    w.write_data(bytes(e.in_sum2));
    w.write_data(bytes(e.counts));
  }
  w.finish();
}

Imatrix Imatrix::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open imatrix file " + path);
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return read_gguf(path);
  return read_legacy(path);
}

Imatrix Imatrix::read_gguf(const std::string& path) {
  const gguf::File f = gguf::File::open(path);
  Imatrix m;
  for (const char* key : {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"})
    if (f.find(key) == nullptr)
      throw Error(path + ": not an imatrix file: metadata key '" + std::string(key) + "' is missing");
  if (const gguf::Value* t = f.find("general.type");
      t != nullptr && (t->type() != gguf::ValueType::STRING || t->str() != "imatrix"))
    throw Error(path + ": general.type is " + t->to_string() + ", not \"imatrix\"");
  const gguf::Value* ds = f.find("imatrix.datasets");
  if (ds->is_array() && ds->elem_type() == gguf::ValueType::STRING) {
    m.datasets = ds->strings();
  } else if (ds->type() == gguf::ValueType::STRING) {
    m.datasets = {ds->str()};
  } else {
    throw Error(path + ": imatrix.datasets must be an array of strings, not " + ds->type_string());
  }
  m.chunk_count = f.require<uint32_t>("imatrix.chunk_count");
  m.chunk_size = f.require<uint32_t>("imatrix.chunk_size");

  std::map<std::string, const gguf::TensorInfo*> sums, counts;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (ends_with(t.name, kSum2Suffix)) {
      sums[t.name.substr(0, t.name.size() - std::strlen(kSum2Suffix))] = &t;
    } else if (ends_with(t.name, kCountsSuffix)) {
      counts[t.name.substr(0, t.name.size() - std::strlen(kCountsSuffix))] = &t;
    } else {
      throw Error(path + ": tensor " + t.name + " is neither <name>.in_sum2 nor <name>.counts");
    }
    if (t.type != GgmlType::F32)
      throw Error(path + ": tensor " + t.name + " is " + traits(t.type).name + "; imatrix tensors must be F32");
  }
  for (const auto& [name, c] : counts)
    if (!sums.count(name)) throw Error(path + ": tensor " + c->name + " has no matching " + name + kSum2Suffix);
  for (const auto& [name, s] : sums) {
    const auto it = counts.find(name);
    if (it == counts.end()) throw Error(path + ": tensor " + s->name + " has no matching " + name + kCountsSuffix);
    const gguf::TensorInfo& c = *it->second;
    if (s->ne[2] != 1 || s->ne[3] != 1 || s->ne[0] <= 0)
      throw Error(path + ": tensor " + s->name + " has shape " + s->shape_string() + "; expected {n_in, n_mat}");
    if (c.ne[0] != 1 || c.ne[1] != s->ne[1] || c.ne[2] != 1 || c.ne[3] != 1)
      throw Error(path + ": tensor " + c.name + " has shape " + c.shape_string() + "; expected {1, " +
                  std::to_string(s->ne[1]) + "} to match " + s->name);
    ImatrixEntry e;
    e.n_in = s->ne[0];
    e.n_mat = s->ne[1];
    const auto sd = f.tensor_data(*s);
    const auto cd = f.tensor_data(c);
    e.in_sum2.resize(static_cast<size_t>(e.n_in * e.n_mat));
    e.counts.resize(static_cast<size_t>(e.n_mat));
    if (sd.size() < e.in_sum2.size() * sizeof(float) || cd.size() < e.counts.size() * sizeof(float))
      throw Error(path + ": tensor data of " + name + " is too short");
    std::memcpy(e.in_sum2.data(), sd.data(), e.in_sum2.size() * sizeof(float));
    std::memcpy(e.counts.data(), cd.data(), e.counts.size() * sizeof(float));
    check_finite(path, "tensor " + s->name, e.in_sum2.data(), e.in_sum2.size());
    check_finite(path, "tensor " + c.name, e.counts.data(), e.counts.size());
    m.entries.emplace(name, std::move(e));
  }
  return m;
}

Imatrix Imatrix::read_legacy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open imatrix file " + path);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  const auto read_i32 = [&](const char* what) {
    if (bytes.size() - pos < 4)
      throw Error(path + ": legacy imatrix file is truncated reading " + what + " at byte " + std::to_string(pos));
    int32_t v;
    std::memcpy(&v, bytes.data() + pos, 4);
    pos += 4;
    return v;
  };
  const auto read_len = [&](const char* what, size_t elem_size) {
    const int32_t v = read_i32(what);
    if (v < 0 || static_cast<uint64_t>(v) * elem_size > bytes.size() - pos)
      throw Error(path + ": legacy imatrix file: " + what + " " + std::to_string(v) + " at byte " +
                  std::to_string(pos - 4) + " is negative or exceeds the file");
    return static_cast<size_t>(v);
  };
  Imatrix m;
  const int32_t n_entries = read_i32("the entry count");
  if (n_entries < 0 || static_cast<uint64_t>(n_entries) > bytes.size() / 12)
    throw Error(path + ": not an imatrix file (entry count " + std::to_string(n_entries) + ")");
  for (int32_t k = 0; k < n_entries; ++k) {
    const size_t name_len = read_len("name length", 1);
    if (name_len == 0) throw Error(path + ": legacy imatrix entry " + std::to_string(k) + " has an empty name");
    std::string name(bytes.data() + pos, name_len);
    pos += name_len;
    const int32_t ncall = read_i32("ncall");
    if (ncall < 0) throw Error(path + ": entry " + name + " has a negative call count " + std::to_string(ncall));
    const size_t nval = read_len("nval", sizeof(float));
    if (nval == 0) throw Error(path + ": entry " + name + " has no values");
    ImatrixEntry e;
    e.n_in = static_cast<int64_t>(nval);
    e.n_mat = 1;
    e.in_sum2.resize(nval);
    std::memcpy(e.in_sum2.data(), bytes.data() + pos, nval * sizeof(float));
    pos += nval * sizeof(float);
    check_finite(path, "entry " + name, e.in_sum2.data(), nval);
    if (ncall == 0) {
      e.counts = {0.0f};  // reads back as all ones
    } else {
      e.counts = {static_cast<float>(ncall)};
    }
    if (!m.entries.emplace(name, std::move(e)).second)
      throw Error(path + ": entry " + name + " appears twice");
  }
  if (pos < bytes.size()) {
    const int32_t chunks = read_i32("chunk count");
    if (chunks < 0) throw Error(path + ": negative chunk count " + std::to_string(chunks));
    m.chunk_count = static_cast<uint32_t>(chunks);
    const size_t len = read_len("dataset name length", 1);
    m.datasets.emplace_back(bytes.data() + pos, len);
    pos += len;
  }
  if (pos != bytes.size())
    throw Error(path + ": " + std::to_string(bytes.size() - pos) + " unexpected bytes after the legacy imatrix data");
  return m;
}

}  // namespace hearth::quant

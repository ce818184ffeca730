#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <unordered_set>

namespace hearth::gguf {

namespace {

constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;  // llama.cpp's cap, formats.md §1.8
constexpr uint64_t kMaxArrayElems = uint64_t{1} << 30;
constexpr size_t kMaxTensorName = 63;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1 + 1;       // empty-ish key, tag, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

uint64_t pad_to(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

void write_zeros(std::ostream& out, uint64_t n) {
  static const char zeros[4096] = {};
  while (n > 0) {
    const uint64_t k = std::min<uint64_t>(n, sizeof zeros);
    out.write(zeros, static_cast<std::streamsize>(k));
    n -= k;
  }
}

}  // namespace

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::UINT8: return "UINT8";
    case ValueType::INT8: return "INT8";
    case ValueType::UINT16: return "UINT16";
    case ValueType::INT16: return "INT16";
    case ValueType::UINT32: return "UINT32";
    case ValueType::INT32: return "INT32";
    case ValueType::FLOAT32: return "FLOAT32";
    case ValueType::BOOL: return "BOOL";
    case ValueType::STRING: return "STRING";
    case ValueType::ARRAY: return "ARRAY";
    case ValueType::UINT64: return "UINT64";
    case ValueType::INT64: return "INT64";
    case ValueType::FLOAT64: return "FLOAT64";
  }
  return "?";
}

size_t value_type_size(ValueType type) {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    default: return 0;
  }
}

FormatError::FormatError(const std::string& path, const std::string& field, uint64_t offset,
                         const std::string& problem)
    : Error(path + ": invalid GGUF: " + field + " at offset " + std::to_string(offset) + ": " +
            problem),
      field_(field),
      offset_(offset) {}

// ---------------------------------------------------------------------------------------------
// Value

Value Value::of(std::string s) {
  Value out;
  out.type_ = ValueType::STRING;
  out.string_ = std::move(s);
  return out;
}

Value Value::array(std::vector<bool> values) {
  Value out;
  out.type_ = ValueType::ARRAY;
  out.elem_type_ = ValueType::BOOL;
  out.count_ = values.size();
  out.bytes_.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) out.bytes_[i] = values[i] ? 1 : 0;
  return out;
}

Value Value::array(std::vector<std::string> values) {
  Value out;
  out.type_ = ValueType::ARRAY;
  out.elem_type_ = ValueType::STRING;
  out.count_ = values.size();
  out.strings_ = std::move(values);
  return out;
}

Value Value::raw_array(ValueType elem_type, uint64_t count, std::vector<uint8_t> bytes) {
  const size_t elem = value_type_size(elem_type);
  if (elem == 0 || bytes.size() != count * elem)
    throw Error("raw array of " + std::string(value_type_name(elem_type)) + " has the wrong size");
  Value out;
  out.type_ = ValueType::ARRAY;
  out.elem_type_ = elem_type;
  out.count_ = count;
  out.bytes_ = std::move(bytes);
  return out;
}

const std::string& Value::str() const {
  if (type_ != ValueType::STRING) throw Error("value of type " + type_string() + " is not a STRING");
  return string_;
}

const std::vector<std::string>& Value::strings() const {
  if (type_ != ValueType::ARRAY || elem_type_ != ValueType::STRING)
    throw Error("value of type " + type_string() + " is not an array of strings");
  return strings_;
}

std::string Value::type_string() const {
  if (type_ == ValueType::ARRAY) return "ARRAY[" + std::string(value_type_name(elem_type_)) + "]";
  return std::string(value_type_name(type_));
}

namespace {

std::string scalar_to_string(ValueType type, const uint8_t* p) {
  auto load = [p]<class U>(U) {
    U v;
    std::memcpy(&v, p, sizeof(U));
    return v;
  };
  switch (type) {
    case ValueType::UINT8: return std::to_string(load(uint8_t{}));
    case ValueType::INT8: return std::to_string(load(int8_t{}));
    case ValueType::UINT16: return std::to_string(load(uint16_t{}));
    case ValueType::INT16: return std::to_string(load(int16_t{}));
    case ValueType::UINT32: return std::to_string(load(uint32_t{}));
    case ValueType::INT32: return std::to_string(load(int32_t{}));
    case ValueType::UINT64: return std::to_string(load(uint64_t{}));
    case ValueType::INT64: return std::to_string(load(int64_t{}));
    case ValueType::BOOL: return *p ? "true" : "false";
    case ValueType::FLOAT32: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", static_cast<double>(load(float{})));
      return buf;
    }
    case ValueType::FLOAT64: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", load(double{}));
      return buf;
    }
    default: return "?";
  }
}

std::string quoted(const std::string& s, size_t max_chars = 60) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const char c = s[i];
    if (c == '\n') out += "\\n";
    else if (c == '"') out += "\\\"";
    else out += c;
  }
  if (s.size() > max_chars) out += "...";
  return out + "\"";
}

}  // namespace

std::string Value::to_string(size_t max_elems) const {
  if (type_ == ValueType::STRING) return quoted(string_);
  if (type_ != ValueType::ARRAY) return scalar_to_string(type_, bytes_.data());
  std::string out = "[";
  const uint64_t n = std::min<uint64_t>(count_, max_elems);
  for (uint64_t i = 0; i < n; ++i) {
    if (i) out += ", ";
    if (elem_type_ == ValueType::STRING) out += quoted(strings_[i], 24);
    else out += scalar_to_string(elem_type_, bytes_.data() + i * value_type_size(elem_type_));
  }
  if (count_ > n) out += ", ... (" + std::to_string(count_) + " in all)";
  return out + "]";
}

std::string TensorInfo::shape_string() const {
  std::string out = "[";
  for (uint32_t i = 0; i < n_dims; ++i) out += (i ? ", " : "") + std::to_string(ne[i]);
  return out + "]";
}

// ---------------------------------------------------------------------------------------------
// Reader

struct File::Mapping {
  std::string path;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  void* map = nullptr;             // mmap'd region (nullptr for in-memory images)
  std::vector<uint8_t> owned;      // in-memory image
  uint64_t full_size = 0;          // from_header: the whole file's size (0: size)
  bool writable = false;           // mmap'd (private) or owned: rewrite_tensor may change bytes
  mutable std::mutex mu;           // guards layouts and rewrites
  mutable std::map<uint64_t, uint8_t> layouts;  // tensor data offset -> layout (File::rewrite_tensor)

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (map != nullptr) munmap(map, size);
  }
};

namespace {

// Bounds-checked little-endian reader over the file image. Every read names its field so a
// failure can say what was being read and where.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, uint64_t size)
      : path_(path), data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& field, uint64_t at, const std::string& problem) const {
    throw FormatError(path_, field, at, problem);
  }

  void need(uint64_t n, const std::string& field) const {
    if (n > remaining())
      fail(field, pos_, "file is truncated (needs " + std::to_string(n) + " bytes, " +
                            std::to_string(remaining()) + " left)");
  }

  template <class T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& field) {
    const uint64_t at = pos_;
    const uint64_t len = read<uint64_t>(field + " length");
    if (len > kMaxStringBytes) fail(field, at, "string length " + std::to_string(len) + " is too large");
    need(len, field);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  std::vector<uint8_t> read_bytes(uint64_t n, const std::string& field) {
    need(n, field);
    std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return out;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

bool valid_value_type(int32_t t) { return t >= 0 && t <= 12; }

Value read_value(Cursor& c, ValueType type, const std::string& field) {
  switch (type) {
    case ValueType::STRING: return Value::of(c.read_string(field));
    case ValueType::ARRAY: {
      const uint64_t at = c.pos();
      const int32_t et = c.read<int32_t>(field + " element type");
      if (!valid_value_type(et)) c.fail(field, at, "invalid array element type " + std::to_string(et));
      const auto elem_type = static_cast<ValueType>(et);
      if (elem_type == ValueType::ARRAY) c.fail(field, at, "arrays of arrays are not allowed");
      const uint64_t count_at = c.pos();
      const uint64_t n = c.read<uint64_t>(field + " element count");
      if (n > kMaxArrayElems) c.fail(field, count_at, "array of " + std::to_string(n) + " elements is too large");
      if (elem_type == ValueType::STRING) {
        // Every string has an 8-byte length prefix: reject impossible counts before allocating.
        if (n > c.remaining() / 8)
          c.fail(field, count_at, "array of " + std::to_string(n) + " strings does not fit in the " +
                                      std::to_string(c.remaining()) + " bytes left");
        std::vector<std::string> strings(n);
        for (uint64_t i = 0; i < n; ++i) strings[i] = c.read_string(field + "[" + std::to_string(i) + "]");
        return Value::array(std::move(strings));
      }
      const uint64_t elem = value_type_size(elem_type);
      if (n > c.remaining() / elem)
        c.fail(field, count_at, "array of " + std::to_string(n) + " " + std::string(value_type_name(elem_type)) +
                                    " does not fit in the " + std::to_string(c.remaining()) + " bytes left");
      return Value::raw_array(elem_type, n, c.read_bytes(n * elem, field));
    }
    default: {
      const uint64_t size = value_type_size(type);
      std::vector<uint8_t> bytes = c.read_bytes(size, field);
      Value v;
      switch (type) {
        case ValueType::UINT8: v = Value::of(bytes[0]); break;
        case ValueType::INT8: v = Value::of(static_cast<int8_t>(bytes[0])); break;
        case ValueType::BOOL: v = Value::of(bytes[0] != 0); break;
        default: {
          // Reinterpret through the typed constructor so the stored bytes are canonical.
          auto load = [&]<class U>(U) {
            U x;
            std::memcpy(&x, bytes.data(), sizeof(U));
            return Value::of(x);
          };
          switch (type) {
            case ValueType::UINT16: v = load(uint16_t{}); break;
            case ValueType::INT16: v = load(int16_t{}); break;
            case ValueType::UINT32: v = load(uint32_t{}); break;
            case ValueType::INT32: v = load(int32_t{}); break;
            case ValueType::FLOAT32: v = load(float{}); break;
            case ValueType::UINT64: v = load(uint64_t{}); break;
            case ValueType::INT64: v = load(int64_t{}); break;
            case ValueType::FLOAT64: v = load(double{}); break;
            default: break;
          }
        }
      }
      return v;
    }
  }
}

}  // namespace

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  auto m = std::make_shared<Mapping>();
  m->path = path;
  m->size = static_cast<uint64_t>(st.st_size);
  if (m->size > 0) {
    void* p = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(path + ": cannot mmap: " + std::strerror(err));
    }
    m->map = p;
    m->data = static_cast<const uint8_t*>(p);
    m->writable = true;
  }
  ::close(fd);
  return parse(std::move(m));
}

File File::from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  auto m = std::make_shared<Mapping>();
  m->path = name;
  m->owned = std::move(bytes);
  m->data = m->owned.data();
  m->size = m->owned.size();
  m->writable = true;
  return parse(std::move(m));
}

File File::from_static(const uint8_t* data, size_t size, const std::string& name) {
  auto m = std::make_shared<Mapping>();
  m->path = name;
  m->data = data;
  m->size = size;
  return parse(std::move(m));
}

const std::string& File::path() const { return mapping_->path; }
File File::from_header(std::vector<uint8_t> bytes, uint64_t file_size, const std::string& name) {
  if (file_size < bytes.size())
    throw Error(name + ": the file size " + std::to_string(file_size) + " is smaller than the " +
                std::to_string(bytes.size()) + " header bytes given");
  auto m = std::make_shared<Mapping>();
  m->path = name;
  m->owned = std::move(bytes);
  m->data = m->owned.data();
  m->size = m->owned.size();
  m->full_size = file_size;
  return parse(std::move(m));
}

bool File::header_only() const { return mapping_->full_size != 0; }

uint64_t File::file_size() const { return header_only() ? mapping_->full_size : mapping_->size; }

File File::parse(std::shared_ptr<const Mapping> mapping) {
  File f;
  f.mapping_ = mapping;
  const std::string& path = mapping->path;
  Cursor c(path, mapping->data, mapping->size);

  // Header (formats.md §1.1).
  if (mapping->size < 4 || std::memcmp(mapping->data, "GGUF", 4) != 0) {
    if (mapping->size < 4) c.fail("magic", 0, "file is truncated (" + std::to_string(mapping->size) + " bytes)");
    c.fail("magic", 0, "not a GGUF file (magic is not \"GGUF\")");
  }
  c.read<uint32_t>("magic");
  const uint32_t version = c.read<uint32_t>("version");
  if ((version & 0xFFFFu) == 0 && version != 0)
    c.fail("version", 4, "version " + std::to_string(version) +
                             " looks byte-swapped: big-endian GGUF files are not supported");
  if (version == 1) c.fail("version", 4, "GGUF version 1 is not supported (only 2 and 3)");
  if (version != 2 && version != 3) c.fail("version", 4, "unsupported GGUF version " + std::to_string(version));
  f.version_ = version;
  const int64_t n_tensors = c.read<int64_t>("tensor count");
  const int64_t n_kv = c.read<int64_t>("metadata count");
  if (n_tensors < 0) c.fail("tensor count", 8, "negative count " + std::to_string(n_tensors));
  if (n_kv < 0) c.fail("metadata count", 16, "negative count " + std::to_string(n_kv));
  if (static_cast<uint64_t>(n_kv) > c.remaining() / kMinKvBytes)
    c.fail("metadata count", 16, std::to_string(n_kv) + " key/value records cannot fit in the " +
                                     std::to_string(c.remaining()) + " bytes left");
  if (static_cast<uint64_t>(n_tensors) > c.remaining() / kMinTensorInfoBytes)
    c.fail("tensor count", 8, std::to_string(n_tensors) + " tensor infos cannot fit in the " +
                                  std::to_string(c.remaining()) + " bytes left");

  // Key/value records (§1.3).
  std::unordered_set<std::string> keys;
  f.kv_.reserve(static_cast<size_t>(n_kv));
  for (int64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = c.pos();
    const std::string field = "metadata record " + std::to_string(i);
    std::string key = c.read_string(field + " key");
    if (key.empty()) c.fail(field, at, "empty key");
    if (!keys.insert(key).second) c.fail(field, at, "duplicate key '" + key + "'");
    const uint64_t tag_at = c.pos();
    const int32_t tag = c.read<int32_t>("type of key '" + key + "'");
    if (!valid_value_type(tag)) c.fail("type of key '" + key + "'", tag_at, "invalid value type " + std::to_string(tag));
    Value v = read_value(c, static_cast<ValueType>(tag), "value of key '" + key + "'");
    if (key == "general.alignment") {
      if (v.type() != ValueType::UINT32)
        c.fail("value of key 'general.alignment'", tag_at, "must be UINT32, is " + v.type_string());
      const uint32_t a = v.get<uint32_t>();
      if (!is_power_of_two(a))
        c.fail("value of key 'general.alignment'", tag_at, std::to_string(a) + " is not a power of two");
      f.alignment_ = a;
    }
    f.kv_.emplace_back(std::move(key), std::move(v));
  }

  // Tensor-info records (§1.4).
  std::unordered_set<std::string> names;
  f.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (int64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = c.pos();
    TensorInfo t;
    t.name = c.read_string("tensor info " + std::to_string(i) + " name");
    const std::string field = "tensor '" + t.name + "'";
    if (t.name.size() > kMaxTensorName)
      c.fail(field, at, "name is " + std::to_string(t.name.size()) + " bytes long (at most 63)");
    if (!names.insert(t.name).second) c.fail(field, at, "duplicate tensor name");
    const uint64_t dims_at = c.pos();
    t.n_dims = c.read<uint32_t>(field + " n_dims");
    if (t.n_dims == 0 || t.n_dims > 4) c.fail(field + " n_dims", dims_at, std::to_string(t.n_dims) + " dimensions (must be 1 to 4)");
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      const uint64_t ne_at = c.pos();
      const std::string nef = field + " ne[" + std::to_string(d) + "]";
      t.ne[d] = c.read<int64_t>(nef);
      if (t.ne[d] < 0) c.fail(nef, ne_at, "negative dimension " + std::to_string(t.ne[d]));
    }
    // Element-count overflow (§1.8 item 5).
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    int64_t count = t.ne[0];
    for (int d = 1; d < 4; ++d) {
      if (t.ne[d] != 0 && count > kMax / t.ne[d]) c.fail(field, dims_at, "element count overflows int64");
      count *= t.ne[d];
    }
    const uint64_t type_at = c.pos();
    const int32_t type_id = c.read<int32_t>(field + " type");
    const quant::TypeTraits* tt = quant::find_traits(type_id);
    if (tt == nullptr) c.fail(field + " type", type_at, "invalid or removed ggml type id " + std::to_string(type_id));
    t.type = tt->type;
    if (t.ne[0] % tt->blck_size != 0)
      c.fail(field, dims_at, "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + tt->name +
                                 " block size " + std::to_string(tt->blck_size));
    const uint64_t row = static_cast<uint64_t>(t.ne[0] / tt->blck_size) * tt->type_size;
    const uint64_t rows = static_cast<uint64_t>(t.ne[1]) * static_cast<uint64_t>(t.ne[2]) * static_cast<uint64_t>(t.ne[3]);
    if (rows != 0 && row > std::numeric_limits<uint64_t>::max() / rows)
      c.fail(field, dims_at, "byte size overflows");
    t.nbytes = row * rows;
    const uint64_t off_at = c.pos();
    t.offset = c.read<uint64_t>(field + " offset");
    if (t.offset % f.alignment_ != 0)
      c.fail(field + " offset", off_at, "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                          std::to_string(f.alignment_));
    f.tensors_.push_back(std::move(t));
  }

  // Data section (§1.5): offsets aligned, in bounds, not overlapping.
  f.data_offset_ = pad_to(c.pos(), f.alignment_);
  const uint64_t size = mapping->full_size != 0 ? mapping->full_size : mapping->size;  // header only: the file's
  if (n_tensors > 0 && f.data_offset_ > size)
    c.fail("data section", c.pos(), "file ends before the data section starts at " + std::to_string(f.data_offset_));
  const uint64_t data_size = size - std::min(size, f.data_offset_);
  std::vector<size_t> order(f.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
  uint64_t end_prev = 0;
  const TensorInfo* prev = nullptr;
  for (size_t idx : order) {
    const TensorInfo& t = f.tensors_[idx];
    const std::string field = "tensor '" + t.name + "' data";
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      c.fail(field, f.data_offset_ + std::min(t.offset, data_size),
             "data (" + std::to_string(t.nbytes) + " bytes at offset " + std::to_string(t.offset) +
                 ") runs past the end of the file (" + std::to_string(data_size) + " data bytes)");
    if (prev != nullptr && t.offset < end_prev)
      c.fail(field, f.data_offset_ + t.offset, "overlaps the data of tensor '" + prev->name + "'");
    end_prev = t.offset + t.nbytes;
    prev = &t;
  }
  return f;
}

const Value* File::find(std::string_view key) const {
  for (const auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::span<const uint8_t> File::tensor_data(const TensorInfo& info) const {
  if (header_only())
    throw Error(path() + ": tensor '" + info.name + "': only the header of this file was read (no tensor data)");
  return {mapping_->data + data_offset_ + info.offset, info.nbytes};
}

uint8_t File::tensor_layout(const TensorInfo& info) const {
  std::lock_guard<std::mutex> lock(mapping_->mu);
  const auto it = mapping_->layouts.find(info.offset);
  return it == mapping_->layouts.end() ? 0 : it->second;
}

bool File::rewrite_tensor(const TensorInfo& info, uint8_t layout,
                          const std::function<void(std::span<uint8_t>)>& fn) const {
  if (layout == 0) throw Error(path() + ": tensor '" + info.name + "': layout 0 is the file's own");
  const Mapping& m = *mapping_;
  std::lock_guard<std::mutex> lock(m.mu);
  const auto it = m.layouts.find(info.offset);
  if (it != m.layouts.end()) return it->second == layout;
  if (!m.writable || header_only()) return false;
  auto* bytes = const_cast<uint8_t*>(m.data) + data_offset_ + info.offset;
  if (m.map != nullptr) {
    // The whole pages under the tensor become writable private copies for the rewrite, and
    // read-only again after it (neighbouring tensors' bytes are not touched).
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = reinterpret_cast<uintptr_t>(bytes) & ~(page - 1);
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(bytes) + info.nbytes + page - 1) & ~(page - 1);
    auto* start = reinterpret_cast<void*>(lo);
    if (mprotect(start, hi - lo, PROT_READ | PROT_WRITE) != 0)
      throw Error(path() + ": tensor '" + info.name + "': cannot make its pages writable: " + std::strerror(errno));
    struct Restore {
      void* p;
      size_t n;
      ~Restore() { mprotect(p, n, PROT_READ); }
    } restore{start, hi - lo};
#ifdef MADV_POPULATE_WRITE
    // One call makes every private copy (Linux 5.14+; elsewhere each page faults on its first write).
    madvise(start, hi - lo, MADV_POPULATE_WRITE);
#endif
    fn({bytes, info.nbytes});
  } else {
    fn({bytes, info.nbytes});
  }
  m.layouts[info.offset] = layout;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Writer

void Writer::set(const std::string& key, Value value) {
  if (key.empty()) throw Error("gguf writer: empty metadata key");
  if (key == "general.alignment") {
    if (value.type() != ValueType::UINT32 || !is_power_of_two(value.get<uint32_t>()))
      throw Error("gguf writer: general.alignment must be a UINT32 power of two");
  }
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void Writer::remove(std::string_view key) {
  std::erase_if(kv_, [&](const auto& kv) { return kv.first == key; });
}

uint32_t Writer::alignment() const {
  for (const auto& [k, v] : kv_)
    if (k == "general.alignment") return v.get<uint32_t>();
  return kDefaultAlignment;
}

size_t Writer::add_tensor(const std::string& name, quant::GgmlType type, std::vector<int64_t> ne) {
  if (name.empty() || name.size() > kMaxTensorName)
    throw Error("gguf writer: tensor name '" + name + "' must be 1 to 63 bytes");
  for (const TensorInfo& t : tensors_)
    if (t.name == name) throw Error("gguf writer: duplicate tensor '" + name + "'");
  if (ne.empty() || ne.size() > 4) throw Error("gguf writer: tensor '" + name + "' needs 1 to 4 dimensions");
  TensorInfo t;
  t.name = name;
  t.type = type;
  const quant::TypeTraits& tt = quant::traits(type);
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 0) throw Error("gguf writer: tensor '" + name + "' has a negative dimension");
    t.ne[d] = ne[d];
  }
  if (t.ne[0] % tt.blck_size != 0)
    throw Error("gguf writer: tensor '" + name + "' ne[0] = " + std::to_string(t.ne[0]) +
                " is not a multiple of the " + tt.name + " block size");
  // n_dims: index of the last dimension > 1, plus one (formats.md §1.4).
  t.n_dims = 1;
  for (uint32_t d = 0; d < 4; ++d)
    if (t.ne[d] > 1) t.n_dims = d + 1;
  t.nbytes = quant::row_size(type, t.ne[0]) * static_cast<uint64_t>(t.ne[1] * t.ne[2] * t.ne[3]);
  const uint64_t align = alignment();
  t.offset = tensors_.empty() ? 0 : pad_to(tensors_.back().offset + tensors_.back().nbytes, align);
  tensors_.push_back(std::move(t));
  return tensors_.size() - 1;
}

namespace {

class ByteSink {
 public:
  explicit ByteSink(std::ostream& out) : out_(out) {}
  template <class T>
  void put(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    out_.write(buf, sizeof(T));
    pos_ += sizeof(T);
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.write(s.data(), static_cast<std::streamsize>(s.size()));
    pos_ += s.size();
  }
  void put_bytes(const std::vector<uint8_t>& b) {
    out_.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    pos_ += b.size();
  }
  void pad(uint64_t align) {
    const uint64_t n = pad_to(pos_, align) - pos_;
    write_zeros(out_, n);
    pos_ += n;
  }
  uint64_t pos() const { return pos_; }

 private:
  std::ostream& out_;
  uint64_t pos_ = 0;
};

uint64_t header_size(const std::vector<std::pair<std::string, Value>>& kv,
                     const std::vector<TensorInfo>& tensors) {
  uint64_t n = 4 + 4 + 8 + 8;
  for (const auto& [k, v] : kv) {
    n += 8 + k.size() + 4;
    if (v.type() == ValueType::STRING) {
      n += 8 + v.str().size();
    } else if (v.is_array()) {
      n += 4 + 8;
      if (v.elem_type() == ValueType::STRING) {
        for (const std::string& s : v.strings()) n += 8 + s.size();
      } else {
        n += v.raw().size();
      }
    } else {
      n += v.raw().size();
    }
  }
  for (const TensorInfo& t : tensors) n += 8 + t.name.size() + 4 + 8 * t.n_dims + 4 + 8;
  return n;
}

}  // namespace

uint64_t Writer::file_size() const {
  const uint64_t align = alignment();
  uint64_t n = pad_to(header_size(kv_, tensors_), align);
  if (!tensors_.empty()) n += pad_to(tensors_.back().offset + tensors_.back().nbytes, align);
  return n;
}

void Writer::begin(const std::string& path) {
  path_ = path;
  // Written beside `path` and renamed over it by finish(): a reader that has the old file
  // mapped keeps it intact (rewriting it in place would fault such a reader with SIGBUS), and
  // a failed write leaves no truncated file behind.
  tmp_path_ = path + ".tmp-" + std::to_string(getpid());
  file_.open(tmp_path_, std::ios::binary | std::ios::trunc);
  if (!file_) throw Error(path + ": cannot open " + tmp_path_ + " for writing: " + std::strerror(errno));
  out_ = &file_;
  write_header();
}

void Writer::begin(std::ostream& out) {
  out_ = &out;
  write_header();
}

void Writer::write_header() {
  ByteSink s(*out_);
  s.put<uint32_t>(0x46554747u);  // "GGUF"
  s.put<uint32_t>(3);
  s.put<int64_t>(static_cast<int64_t>(tensors_.size()));
  s.put<int64_t>(static_cast<int64_t>(kv_.size()));
  for (const auto& [k, v] : kv_) {
    s.put_string(k);
    s.put<int32_t>(static_cast<int32_t>(v.type()));
    if (v.type() == ValueType::STRING) {
      s.put_string(v.str());
    } else if (v.is_array()) {
      s.put<int32_t>(static_cast<int32_t>(v.elem_type()));
      s.put<uint64_t>(v.count());
      if (v.elem_type() == ValueType::STRING) {
        for (const std::string& str : v.strings()) s.put_string(str);
      } else {
        s.put_bytes(v.raw());
      }
    } else {
      s.put_bytes(v.raw());
    }
  }
  for (const TensorInfo& t : tensors_) {
    s.put_string(t.name);
    s.put<uint32_t>(t.n_dims);
    for (uint32_t d = 0; d < t.n_dims; ++d) s.put<int64_t>(t.ne[d]);
    s.put<int32_t>(static_cast<int32_t>(t.type));
    s.put<uint64_t>(t.offset);
  }
  s.pad(alignment());
  current_ = 0;
  data_pos_ = 0;
  if (!*out_) throw Error(path_ + ": write failed");
}

void Writer::write_data(std::span<const uint8_t> bytes) {
  if (out_ == nullptr) throw Error("gguf writer: write_data() before begin()");
  while (!bytes.empty()) {
    // Skip tensors that are complete (including empty ones).
    while (current_ < tensors_.size() && data_pos_ == tensors_[current_].offset + tensors_[current_].nbytes &&
           data_pos_ >= tensors_[current_].offset)
      ++current_;
    if (current_ >= tensors_.size()) throw Error(path_ + ": more tensor data written than the tensors hold");
    const TensorInfo& t = tensors_[current_];
    if (data_pos_ < t.offset) {  // padding after the previous tensor
      write_zeros(*out_, t.offset - data_pos_);
      data_pos_ = t.offset;
    }
    const uint64_t n = std::min<uint64_t>(bytes.size(), t.offset + t.nbytes - data_pos_);
    out_->write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(n));
    data_pos_ += n;
    bytes = bytes.subspan(n);
  }
  if (!*out_) throw Error(path_ + ": write failed");
}

void Writer::finish() {
  if (out_ == nullptr) throw Error("gguf writer: finish() before begin()");
  for (const TensorInfo& t : tensors_)
    if (data_pos_ < t.offset + t.nbytes)
      throw Error(path_ + ": data of tensor '" + t.name + "' was not fully written");
  write_zeros(*out_, pad_to(data_pos_, alignment()) - data_pos_);
  out_->flush();
  if (!*out_) throw Error(path_ + ": write failed");
  if (file_.is_open()) {
    file_.close();
    if (!file_) throw Error(path_ + ": close failed");
    if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
      throw Error(path_ + ": cannot rename " + tmp_path_ + " to it: " + std::strerror(errno));
    tmp_path_.clear();
  }
  out_ = nullptr;
}

Writer::Writer(Writer&& o) noexcept
    : kv_(std::move(o.kv_)),
      tensors_(std::move(o.tensors_)),
      file_(std::move(o.file_)),
      out_(o.out_ == &o.file_ ? &file_ : o.out_),
      path_(std::move(o.path_)),
      tmp_path_(std::move(o.tmp_path_)),
      current_(o.current_),
      data_pos_(o.data_pos_) {
  o.out_ = nullptr;
  o.tmp_path_.clear();
}

Writer::~Writer() {
  if (!tmp_path_.empty()) {
    file_.close();
    std::remove(tmp_path_.c_str());
  }
}

}  // namespace hearth::gguf

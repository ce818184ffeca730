// GGUF v2/v3: typed metadata values, the mmap'd reader and the streaming writer.
// Source: ../shared/docs/formats.md §1 (container layout, value types, reader checklist).
#pragma once

#include <array>
#include <cstring>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "hearth/error.h"
#include "quant/types.h"

namespace hearth::gguf {

/// Metadata value type tags (formats.md §1.3), stored as i32 in the file.
enum class ValueType : int32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

/// "UINT32", "STRING", ...; "?" for an invalid tag.
std::string_view value_type_name(ValueType type);

/// Bytes of one element of a fixed-size value type (0 for STRING and ARRAY).
size_t value_type_size(ValueType type);

/// A malformed GGUF file. `field` names what was being read, `offset` the byte position in
/// the file where it starts.
class FormatError : public Error {
 public:
  FormatError(const std::string& path, const std::string& field, uint64_t offset,
              const std::string& problem);
  const std::string& field() const { return field_; }
  uint64_t offset() const { return offset_; }

 private:
  std::string field_;
  uint64_t offset_;
};

/// Maps a C++ scalar type to its GGUF value type.
template <class T> struct ValueTypeOf;
template <> struct ValueTypeOf<uint8_t> { static constexpr ValueType value = ValueType::UINT8; };
template <> struct ValueTypeOf<int8_t> { static constexpr ValueType value = ValueType::INT8; };
template <> struct ValueTypeOf<uint16_t> { static constexpr ValueType value = ValueType::UINT16; };
template <> struct ValueTypeOf<int16_t> { static constexpr ValueType value = ValueType::INT16; };
template <> struct ValueTypeOf<uint32_t> { static constexpr ValueType value = ValueType::UINT32; };
template <> struct ValueTypeOf<int32_t> { static constexpr ValueType value = ValueType::INT32; };
template <> struct ValueTypeOf<float> { static constexpr ValueType value = ValueType::FLOAT32; };
template <> struct ValueTypeOf<bool> { static constexpr ValueType value = ValueType::BOOL; };
template <> struct ValueTypeOf<uint64_t> { static constexpr ValueType value = ValueType::UINT64; };
template <> struct ValueTypeOf<int64_t> { static constexpr ValueType value = ValueType::INT64; };
template <> struct ValueTypeOf<double> { static constexpr ValueType value = ValueType::FLOAT64; };

/// One metadata value: a scalar, a string, or an array of scalars or strings (arrays of
/// arrays are not allowed by GGUF). Fixed-size values are kept as their little-endian file
/// bytes, so reading and writing are copies.
class Value {
 public:
  Value() = default;

  /// A scalar of a fixed-size type (uint8_t … double, bool).
  template <class T>
  static Value of(T v) {
    Value out;
    out.type_ = ValueTypeOf<T>::value;
    out.bytes_.resize(sizeof(T));
    store(out.bytes_.data(), v);
    return out;
  }
  static Value of(std::string s);
  static Value of(const char* s) { return of(std::string(s)); }

  /// An array of fixed-size scalars.
  template <class T>
  static Value array(std::span<const T> values) {
    Value out;
    out.type_ = ValueType::ARRAY;
    out.elem_type_ = ValueTypeOf<T>::value;
    out.count_ = values.size();
    out.bytes_.resize(values.size() * sizeof(T));
    for (size_t i = 0; i < values.size(); ++i) store(out.bytes_.data() + i * sizeof(T), values[i]);
    return out;
  }
  template <class T>
  static Value array(const std::vector<T>& values) {
    return array(std::span<const T>(values.data(), values.size()));
  }
  static Value array(std::vector<bool> values);
  static Value array(std::vector<std::string> values);

  /// An array whose elements are given as raw little-endian bytes (used by the reader).
  static Value raw_array(ValueType elem_type, uint64_t count, std::vector<uint8_t> bytes);

  ValueType type() const { return type_; }
  /// Element type of an ARRAY value.
  ValueType elem_type() const { return elem_type_; }
  bool is_array() const { return type_ == ValueType::ARRAY; }
  /// Number of array elements (0 for scalars).
  uint64_t count() const { return count_; }

  /// The scalar converted to T: integers of any width and signedness convert when the value
  /// fits, floats from FLOAT32/FLOAT64, bool from BOOL only. Throws Error naming the types.
  template <class T> T get() const;
  /// The string of a STRING value; throws Error otherwise.
  const std::string& str() const;

  /// Array element i converted to T (as get<T>); throws Error if not an array or out of range.
  template <class T> T at(uint64_t i) const;
  /// The whole array converted to T (integer arrays accept any integer element type).
  template <class T> std::vector<T> get_array() const;
  /// The elements of a string array; throws Error otherwise.
  const std::vector<std::string>& strings() const;
  /// Raw little-endian bytes of a fixed-size scalar or array.
  const std::vector<uint8_t>& raw() const { return bytes_; }

  /// Human-readable rendering for `hearth show` (arrays cut after `max_elems` elements).
  std::string to_string(size_t max_elems = 8) const;

  /// Type as text: "UINT32", "ARRAY[STRING]".
  std::string type_string() const;

 private:
  template <class T>
  static void store(uint8_t* dst, T v) {
    if constexpr (std::is_same_v<T, bool>) {
      *dst = v ? 1 : 0;
    } else {
      std::memcpy(dst, &v, sizeof(T));
    }
  }
  // Converts one fixed-size element at `p` (of `type`) to T, or throws.
  template <class T> static T convert(ValueType type, const uint8_t* p);

  ValueType type_ = ValueType::UINT8;
  ValueType elem_type_ = ValueType::UINT8;
  uint64_t count_ = 0;
  std::vector<uint8_t> bytes_;         // fixed-size scalar or array elements
  std::string string_;                 // STRING
  std::vector<std::string> strings_;   // ARRAY of STRING
};

/// One tensor-info record (formats.md §1.4). Dimensions are in ggml order: `ne[0]` is the
/// contiguous row length; unused dimensions are 1.
struct TensorInfo {
  std::string name;
  quant::GgmlType type = quant::GgmlType::F32;
  uint32_t n_dims = 1;
  std::array<int64_t, 4> ne{1, 1, 1, 1};
  uint64_t offset = 0;  ///< bytes, relative to the start of the data section
  uint64_t nbytes = 0;  ///< bytes of tensor data (without padding)

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  /// Shape as text, ggml order: "[256, 4096]".
  std::string shape_string() const;
};

/// Default alignment of the data section when `general.alignment` is absent.
inline constexpr uint32_t kDefaultAlignment = 32;

/// A parsed GGUF file whose bytes stay mapped (mmap) for the lifetime of the File and of
/// every copy of it: tensor data are views into the mapping, never copies.
class File {
 public:
  /// Maps and validates `path` (formats.md §1.8). Throws Error if the file cannot be opened
  /// and FormatError naming the field and offset of the first problem.
  static File open(const std::string& path);
  /// Parses an in-memory image (tests, fuzzing); `name` stands in for the path in errors.
  static File from_bytes(std::vector<uint8_t> bytes, const std::string& name = "<memory>");
  /// Parses an image that lives for the whole program (a model embedded in the binary)
  /// without copying it. `data` must be 32-byte aligned.
  static File from_static(const uint8_t* data, size_t size, const std::string& name);
  /// Parses the first bytes of a file of `file_size` bytes: enough for the header, metadata and
  /// tensor infos (formats.md §1.1-§1.4); the tensors' data is checked against `file_size`
  /// but not present (tensor_data() throws). Used to plan a model fetched over HTTP without
  /// downloading it. Throws FormatError as parse does (a prefix that ends inside the tensor
  /// infos reports "file is truncated"), Error if file_size < bytes.size().
  static File from_header(std::vector<uint8_t> bytes, uint64_t file_size, const std::string& name);

  const std::string& path() const;
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  /// Offset of the data section from the start of the file, bytes.
  uint64_t data_offset() const { return data_offset_; }
  /// Bytes of the whole file (from_header: the size given, not the bytes held).
  uint64_t file_size() const;
  /// Whether only the header bytes are held (from_header).
  bool header_only() const;

  /// Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  /// The value of `key`, or nullptr.
  const Value* find(std::string_view key) const;
  /// The value of `key` converted to T, or nullopt if absent; throws Error naming the key
  /// if present with an incompatible type.
  template <class T> std::optional<T> get(std::string_view key) const;
  /// As get() but a missing key is an Error naming it.
  template <class T> T require(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr.
  const TensorInfo* find_tensor(std::string_view name) const;
  /// The bytes of a tensor (a view into the mapping).
  std::span<const uint8_t> tensor_data(const TensorInfo& info) const;

  /// Rewrites the bytes of tensor `info` in place into a faster layout that the caller names
  /// with `layout` (non-zero; 0 is the file's own layout): the first call for a tensor calls
  /// fn with a writable view of its bytes and records `layout` for every copy of this File.
  /// The file on disk never changes (a file's mapping is private, copy-on-write; an image from
  /// from_bytes is hearth's own memory). Returns whether the tensor now has `layout`: true at
  /// once if it already had it; false without calling fn for an image that cannot be written
  /// (from_static, from_header) or a tensor already rewritten to another layout. Thread-safe
  /// (fn runs under the mapping's lock). Throws Error if the mapping cannot be made writable,
  /// or what fn throws (the tensor then keeps layout 0 and must not be used).
  bool rewrite_tensor(const TensorInfo& info, uint8_t layout, const std::function<void(std::span<uint8_t>)>& fn) const;
  /// The layout rewrite_tensor gave `info`, or 0 (as in the file).
  uint8_t tensor_layout(const TensorInfo& info) const;

 private:
  struct Mapping;
  static File parse(std::shared_ptr<const Mapping> mapping);

  std::shared_ptr<const Mapping> mapping_;
  uint32_t version_ = 3;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<TensorInfo> tensors_;
};

/// Writes a GGUF v3 file: metadata and tensor infos first, then the tensor data streamed in
/// declaration order (so a file of any size is written with little memory). Alignment is
/// `general.alignment` if set (a power of two), else 32; offsets are contiguous as
/// formats.md §1.5 requires.
///
///     Writer w;  w.set("general.architecture", Value::of("llama"));
///     w.add_tensor("token_embd.weight", GgmlType::F16, {256, 4096});
///     w.begin(path);  w.write_data(bytes...);  w.finish();
class Writer {
 public:
  Writer() = default;
  Writer(Writer&& o) noexcept;
  Writer& operator=(Writer&&) = delete;
  /// Removes the temporary file of a write that did not finish.
  ~Writer();

  /// Sets (or replaces, keeping its position) a metadata key. Throws Error for an empty key.
  void set(const std::string& key, Value value);
  /// Removes a key if present.
  void remove(std::string_view key);
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }

  /// Declares a tensor (ggml order dims, 1 to 4 of them). Throws Error for a duplicate or too
  /// long name (> 63 bytes), a bad dimension count, or ne[0] not a multiple of the block size.
  /// Returns its index.
  size_t add_tensor(const std::string& name, quant::GgmlType type, std::vector<int64_t> ne);
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  /// Opens a temporary file beside `path` and writes the header; finish() renames it to
  /// `path`, replacing any file there. Throws Error on I/O failure.
  void begin(const std::string& path);
  /// Writes the header to a caller-owned stream instead (tests).
  void begin(std::ostream& out);
  /// Appends tensor data; chunks may split or span tensors. Padding between tensors is
  /// inserted automatically. Throws Error if more bytes are given than the tensors hold.
  void write_data(std::span<const uint8_t> bytes);
  /// Checks that every tensor's data was written, pads the last one and closes the file.
  void finish();

  /// Total size of the file that will be written, bytes.
  uint64_t file_size() const;

 private:
  void write_header();
  uint32_t alignment() const;

  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<TensorInfo> tensors_;
  std::ofstream file_;
  std::ostream* out_ = nullptr;
  std::string path_ = "<stream>";
  std::string tmp_path_;  // begin(path): the file being written, until finish() renames it
  size_t current_ = 0;    // tensor being written
  uint64_t data_pos_ = 0; // bytes written into the data section, padding included
};

// ---- template definitions ----

template <class T>
T Value::convert(ValueType type, const uint8_t* p) {
  auto load = [p]<class U>(U) {
    U v;
    std::memcpy(&v, p, sizeof(U));
    return v;
  };
  auto fail = [type]() -> T {
    throw Error(std::string("value of type ") + std::string(value_type_name(type)) +
                " cannot be read as " + std::string(value_type_name(ValueTypeOf<T>::value)));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (type == ValueType::BOOL) return *p != 0;
    return fail();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (type == ValueType::FLOAT32) return static_cast<T>(load(float{}));
    if (type == ValueType::FLOAT64) return static_cast<T>(load(double{}));
    return fail();
  } else {
    static_assert(std::is_integral_v<T>);
    // Integers of any width convert when the value fits in T.
    auto fit = [&](auto v) -> T {
      using V = decltype(v);
      if (!std::in_range<T>(v))
        throw Error("integer " + std::to_string(v) + " (" + std::string(value_type_name(type)) +
                    ") does not fit in " + std::string(value_type_name(ValueTypeOf<T>::value)));
      return static_cast<T>(static_cast<V>(v));
    };
    switch (type) {
      case ValueType::UINT8: return fit(load(uint8_t{}));
      case ValueType::INT8: return fit(load(int8_t{}));
      case ValueType::UINT16: return fit(load(uint16_t{}));
      case ValueType::INT16: return fit(load(int16_t{}));
      case ValueType::UINT32: return fit(load(uint32_t{}));
      case ValueType::INT32: return fit(load(int32_t{}));
      case ValueType::UINT64: return fit(load(uint64_t{}));
      case ValueType::INT64: return fit(load(int64_t{}));
      default: return fail();
    }
  }
}

template <class T>
T Value::get() const {
  if (type_ == ValueType::STRING || type_ == ValueType::ARRAY)
    throw Error("value of type " + type_string() + " is not a scalar");
  return convert<T>(type_, bytes_.data());
}

template <class T>
T Value::at(uint64_t i) const {
  if (type_ != ValueType::ARRAY || elem_type_ == ValueType::STRING)
    throw Error("value of type " + type_string() + " is not an array of numbers");
  if (i >= count_) throw Error("array index " + std::to_string(i) + " out of range");
  return convert<T>(elem_type_, bytes_.data() + i * value_type_size(elem_type_));
}

template <class T>
std::vector<T> Value::get_array() const {
  std::vector<T> out(count_);
  for (uint64_t i = 0; i < count_; ++i) out[i] = at<T>(i);
  return out;
}

template <class T>
std::optional<T> File::get(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      return v->str();
    } else {
      return v->get<T>();
    }
  } catch (const Error& e) {
    throw Error(path() + ": metadata key '" + std::string(key) + "': " + e.what());
  }
}

template <class T>
T File::require(std::string_view key) const {
  std::optional<T> v = get<T>(key);
  if (!v) throw Error(path() + ": required metadata key '" + std::string(key) + "' is missing");
  return *v;
}

}  // namespace hearth::gguf

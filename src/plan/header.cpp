#include "plan/header.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "hearth/error.h"
#include "plan/catalogue.h"

namespace hearth::plan {
namespace {

constexpr uint64_t kFirstRead = uint64_t{1} << 20;  // 1 MiB: most headers (vocabulary included) are smaller
constexpr uint64_t kMaxHeader = uint64_t{256} << 20;

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

struct Transfer {
  std::string body;
  uint64_t limit = 0;       // stop after this many bytes (a server that ignores Range)
  std::string content_range;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (t->body.size() + bytes > t->limit) return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  t->body.append(data, bytes);
  return bytes;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * n);
  constexpr const char* kKey = "content-range:";
  if (line.size() > std::strlen(kKey)) {
    std::string head = line.substr(0, std::strlen(kKey));
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head == kKey) t->content_range = line.substr(std::strlen(kKey));
  }
  return size * n;
}

/// Total size from a Content-Range value " bytes 0-1023/123456\r\n".
uint64_t total_of(const std::string& url, const std::string& content_range) {
  const size_t slash = content_range.find('/');
  if (slash == std::string::npos)
    throw Error(url + ": the server's Content-Range '" + content_range + "' has no total size");
  char* end = nullptr;
  const unsigned long long total = std::strtoull(content_range.c_str() + slash + 1, &end, 10);
  if (end == content_range.c_str() + slash + 1)
    throw Error(url + ": the server's Content-Range does not give the total size (" + content_range + ")");
  return total;
}

std::string curl_range(const std::string& url, uint64_t first, uint64_t length, uint64_t& total) {
  static CurlGlobal global;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw Error(url + ": cannot start an HTTP client (curl_easy_init)");
  Transfer t;
  t.limit = length;
  const std::string range = std::to_string(first) + "-" + std::to_string(first + length - 1);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, "hearth");
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  const CURLcode rc = curl_easy_perform(curl.get());
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status == 200)
    throw Error(url + ": the server does not support HTTP range requests (it answered 200 to Range: bytes=" + range +
                "); hearth reads only the header of a remote model");
  if (rc != CURLE_OK) throw Error(url + ": " + curl_easy_strerror(rc));
  if (status != 206) throw Error(url + ": HTTP status " + std::to_string(status));
  total = total_of(url, t.content_range);
  return t.body;
}

bool is_truncation(const gguf::FormatError& e) {
  const std::string what = e.what();
  return what.find("truncated") != std::string::npos || what.find("cannot fit") != std::string::npos ||
         what.find("does not fit") != std::string::npos;
}

}  // namespace

bool is_url(const std::string& spec) { return spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0; }

gguf::File fetch_header(const RangeReader& reader, const std::string& name, uint64_t* bytes_read) {
  uint64_t total = 0;
  std::string bytes = reader.read(0, kFirstRead, total);
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) != 0)
    throw Error(name + ": not a GGUF file (magic is not \"GGUF\")");
  for (;;) {
    if (bytes_read != nullptr) *bytes_read = bytes.size();
    try {
      return gguf::File::from_header(std::vector<uint8_t>(bytes.begin(), bytes.end()), total, name);
    } catch (const gguf::FormatError& e) {
      if (!is_truncation(e) || bytes.size() >= total) throw;
      if (bytes.size() >= kMaxHeader)
        throw Error(name + ": the GGUF header is larger than " + std::to_string(kMaxHeader >> 20) + " MiB");
    }
    const uint64_t want = std::min(total, std::min(kMaxHeader, 2 * std::max<uint64_t>(bytes.size(), 1))) - bytes.size();
    uint64_t total2 = 0;
    const std::string more = reader.read(bytes.size(), want, total2);
    if (more.empty()) throw Error(name + ": the server sent no bytes past " + std::to_string(bytes.size()));
    bytes += more;
  }
}

gguf::File fetch_header_http(const std::string& url, uint64_t* bytes_read) {
  RangeReader reader{[&url](uint64_t first, uint64_t length, uint64_t& total) {
    return curl_range(url, first, length, total);
  }};
  return fetch_header(reader, url, bytes_read);
}

ModelInfo open_model(const std::string& spec, std::optional<quant::FileType> ftype) {
  if (const CatalogueModel* m = find_catalogue_model(spec))
    return ModelInfo::from_header(catalogue_header(*m, ftype.value_or(quant::FileType::Q4_K_M)), m->name);
  if (ftype)
    throw Error("--quant is for catalogue models; " + spec + " has its own tensor types (quantize it with hearth quantize)");
  if (is_url(spec)) return ModelInfo::from_header(fetch_header_http(spec), spec);
  if (spec.size() < 5 || spec.substr(spec.size() - 5) != ".gguf") {
    // Not a path that looks like a model: say what is known.
    bool exists = false;
    if (FILE* f = std::fopen(spec.c_str(), "rb")) {
      exists = true;
      std::fclose(f);
    }
    if (!exists) {
      std::string names;
      for (const CatalogueModel& c : catalogue_models()) names += (names.empty() ? "" : ", ") + c.name;
      throw Error("'" + spec + "' is not a catalogue model, a URL or a file (catalogue: " + names + ")");
    }
  }
  return ModelInfo::from_header(gguf::File::open(spec), spec);
}

}  // namespace hearth::plan

// Where a model's header comes from: a local GGUF file, an http(s):// URL (HTTP range requests
// for the header bytes only) or a catalogue name with a file type.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "gguf/gguf.h"
#include "plan/plan.h"
#include "quant/mix.h"

namespace hearth::plan {

/// Whether `spec` is an http:// or https:// URL.
bool is_url(const std::string& spec);

/// Reads a byte range of a resource: (first byte, length) -> the bytes; also reports the total
/// size of the resource. Throws Error on failure. fetch_header_http's default uses libcurl.
struct RangeReader {
  std::function<std::string(uint64_t first, uint64_t length, uint64_t& total_size)> read;
};

/// The header of the GGUF at `url`, fetched with HTTP range requests (Range: bytes=0-N) of
/// growing size (1 MiB, then doubling, at most 256 MiB) until the metadata and tensor infos
/// parse (gguf::File::from_header), so the tensor data is never downloaded. The server must
/// answer 206 with a Content-Range giving the total size. `bytes_read` (if given) receives the
/// bytes received in all. Throws Error naming the URL for an HTTP error, a server without range
/// support, or a header that does not parse (FormatError from the parser when it is not GGUF).
gguf::File fetch_header_http(const std::string& url, uint64_t* bytes_read = nullptr);

/// The same over any range reader (tests).
gguf::File fetch_header(const RangeReader& reader, const std::string& name, uint64_t* bytes_read = nullptr);

/// The model `spec` names: a catalogue name (catalogue_header with `ftype`, default Q4_K_M), an
/// http(s) URL (fetch_header_http) or a local GGUF file (gguf::File::open: mmap'd, only the
/// header pages are touched). `ftype` is only for catalogue names: for a file or URL the file's
/// own tensor types count, and giving one is an Error. Throws Error naming the spec when it is
/// none of these.
ModelInfo open_model(const std::string& spec, std::optional<quant::FileType> ftype = std::nullopt);

}  // namespace hearth::plan

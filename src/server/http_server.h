// `hearth serve`'s HTTP server: one listener for the OpenAI-compatible API, the Ollama API and
// llama-server's extras (api.md 0.1), with API-key checks, CORS, an access log line per request,
// Prometheus metrics, and cancellation of a request whose client went away (api.md 0.7).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "server/models.h"

namespace hearth::server {

/// Settings of the HTTP server.
struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 11434;            ///< 0: any free port (bind() says which)
  std::string api_key;         ///< "" : no authentication
  std::string reasoning_field = "reasoning_content";  ///< of /v1 messages and deltas
  size_t max_body_bytes = 100u << 20;  ///< larger bodies get 413
  int http_threads = 0;        ///< connections served at once (0: n_parallel + max_queue + 8, at least 16)
  bool access_log = true;      ///< one line per request on stderr
  int retry_after_s = 2;       ///< Retry-After of 503 answers
};

/// The server. bind() then listen() (blocking) on one thread; stop() from any other.
class HttpServer {
 public:
  HttpServer(ModelRegistry& registry, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds the listening socket; returns the port (the chosen one for port 0). Throws Error
  /// naming the address when it cannot bind.
  int bind();
  /// Serves until stop(); returns after the requests in progress have ended.
  void listen();
  /// Stops listening (thread-safe; listen() returns once the handlers in progress finish).
  void stop();
  /// The port bound (after bind()).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::server

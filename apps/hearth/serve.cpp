// hearth serve [MODEL.gguf ...] [--host ADDR] [--port N] [--parallel N] [-c N_CTX] [--api-key KEY]
//              [--models-dir DIR] [-t THREADS] [-ctk T] [-ctv T] [-fa on|off|auto] [--keep-alive DURATION]
//              [--embedded-model] [--chat-template-file FILE]
//
// Serves the OpenAI-compatible API (/v1/...), the Ollama API (/api/...) and llama-server's extras
// (/health, /metrics, /tokenize, /detokenize, /props) on one HTTP listener (docs: api.md). Models:
// the GGUF files given and the *.gguf files of --models-dir, named as Ollama names them (file stem,
// lower-cased, ":latest"); the embedded demo model ("hearth-kjv:latest") when none is given. Each
// model is loaded on first use, with its own engine, and unloaded when idle for its keep_alive.
// Prints "listening on http://HOST:PORT" on stderr (--port 0 picks a free port), one access-log line
// per request, and stops on SIGINT/SIGTERM (no new connections, running requests cancelled, exit 0).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "commands.h"
#include "common.h"
#include "chat/prompt.h"
#include "gguf/gguf.h"
#include "model/embedded.h"
#include "server/backend.h"
#include "server/http_server.h"
#include "server/models.h"
#include "server/util.h"

namespace hearth::app {
namespace {

struct ServeOptions {
  std::vector<std::string> models;
  std::string host = "127.0.0.1";
  int port = 11434;
  uint32_t parallel = 4;
  uint32_t n_ctx = 4096;
  uint32_t max_queue = 64;
  std::string api_key;
  std::string models_dir;
  int threads = 0;
  std::string keep_alive = "5m";
  std::string reasoning_field = "reasoning_content";
  bool no_log = false;
  bool embedded = false;
  bool n_ctx_given = false;
  std::string chat_template_file;
  CacheOptions cache;
};

int serve(const ServeOptions& o) {
  server::RegistryOptions ro;
  ro.engine.n_ctx = o.n_ctx;
  ro.engine.n_parallel = o.parallel;
  ro.engine.max_queue = o.max_queue;
  ro.engine.n_threads = o.threads;
  runtime::ContextParams cp;
  o.cache.apply(cp);
  ro.engine.type_k = cp.type_k;
  ro.engine.type_v = cp.type_v;
  ro.engine.flash_attn = cp.flash_attn;
  try {
    ro.default_keep_alive_ms = server::parse_keep_alive(nlohmann::json(o.keep_alive));
  } catch (const Error& e) {
    throw Error(std::string("--keep-alive: ") + e.what());
  }
  if (o.parallel < 1 || o.parallel > 64) throw Error("--parallel must be between 1 and 64");
  if (o.n_ctx < 16) throw Error("-c/--ctx-size must be at least 16 tokens");
  if (o.reasoning_field != "reasoning_content" && o.reasoning_field != "reasoning")
    throw Error("--reasoning-field must be reasoning_content or reasoning");
  ro.factory = server::engine_backend_factory();
  ro.plan_memory = true;
  ro.auto_context = !o.n_ctx_given;
  if (!o.chat_template_file.empty()) {
    ro.chat_template = read_file(o.chat_template_file);
    chat::ChatTemplate check(ro.chat_template, o.chat_template_file, "", "");  // a template error now, not per request
  }

  // SIGINT/SIGTERM are taken by a thread of their own (sigwait), so block them everywhere first.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that went away is a failed write, not a signal

  server::ModelRegistry registry(ro);
  for (const std::string& m : o.models) registry.add_file(m);
  if (!o.models_dir.empty()) registry.add_dir(o.models_dir);
  if (registry.list().empty() || o.embedded) registry.add_default();
  // A -c that does not fit is refused now, with the numbers (models load on first use).
  if (o.n_ctx_given)
    for (const auto& e : registry.list()) {
      const gguf::File f = e->path.empty() ? gguf::File::from_static(model::embedded_default_model().data(),
                                                                      model::embedded_default_model().size(), e->name)
                                           : gguf::File::open(e->path);
      server::planned_context(f, e->name, ro.engine, /*automatic=*/false);
    }

  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.api_key = o.api_key;
  so.reasoning_field = o.reasoning_field;
  so.access_log = !o.no_log;
  server::HttpServer http(registry, so);
  const int port = http.bind();
  if (o.api_key.empty() && o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
    std::fprintf(stderr, "hearth: WARNING: listening on %s without --api-key: anyone who can reach it can use it\n",
                 o.host.c_str());
  std::fprintf(stderr, "hearth: models: %s\n", registry.names().c_str());
  std::fprintf(stderr, "listening on http://%s:%d\n", o.host.c_str(), port);
  std::fflush(stderr);

  std::atomic<bool> listening_ended{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (listening_ended) return;
    std::fprintf(stderr, "hearth: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    registry.shutdown(/*cancel=*/true);
    http.stop();
  });
  http.listen();
  listening_ended = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  registry.shutdown(true);
  std::fprintf(stderr, "hearth: stopped\n");
  return 0;
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand("serve", "serve models over HTTP (OpenAI-compatible and Ollama APIs)");
  sub->add_option("model", o->models, "GGUF files to serve (default: the embedded demo model)");
  sub->add_option("--host", o->host, "address to listen on (default 127.0.0.1)");
  sub->add_option("--port", o->port, "port (default 11434; 0 picks a free one)");
  sub->add_option("--parallel,--np", o->parallel, "requests decoded together per model (slots, default 4)");
  CLI::Option* ctx_opt = sub->add_option("-c,--ctx-size", o->n_ctx,
                                         "tokens per request, prompt plus answer (default: 4096, or the largest "
                                         "that fits in the available memory with --parallel slots)");
  sub->add_option("--max-queue", o->max_queue, "requests waiting for a slot before 503 (default 64)");
  sub->add_option("--api-key", o->api_key, "require Authorization: Bearer KEY (or X-Api-Key) on every route but /health");
  sub->add_option("--models-dir", o->models_dir, "also serve every *.gguf in this folder");
  sub->add_option("-t,--threads", o->threads, "compute threads (default: all cores)");
  sub->add_option("--keep-alive", o->keep_alive, "how long an idle model stays loaded (default 5m; -1: forever)");
  sub->add_option("--reasoning-field", o->reasoning_field,
                  "field of /v1 answers that holds the thinking: reasoning_content (default) or reasoning");
  sub->add_flag("--no-log", o->no_log, "no access-log line per request");
  sub->add_flag("--embedded-model", o->embedded, "also serve the embedded demo model (hearth-kjv:latest) next to MODEL files");
  sub->add_option("--chat-template-file", o->chat_template_file,
                  "Jinja chat template for every model instead of the GGUF's tokenizer.chat_template");
  o->cache.add_to(sub);
  add_command(app, sub, [o, ctx_opt]() {
    o->n_ctx_given = ctx_opt->count() > 0;
    return serve(*o);
  });
}

}  // namespace hearth::app

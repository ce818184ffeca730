#include "server/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <httplib.h>
#include <map>
#include <set>

#include "chat/formats.h"
#include "model/embedded.h"
#include "server/api.h"
#include "server/ollama.h"
#include "server/openai.h"
#include "server/session.h"
#include "server/util.h"

namespace hearth::server {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

enum class Family { OpenAi, Ollama };

Family family_of(const std::string& path) { return path.rfind("/api/", 0) == 0 ? Family::Ollama : Family::OpenAi; }

const char* const kJson = "application/json; charset=utf-8";

// ---- the client's connection (api.md 0.7) ----

// The socket of the connection `req` came on: the descriptor whose local and peer ports are the
// request's (httplib 0.11 does not hand it to handlers). -1 if none matches.
int find_connection_socket(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (dirent* de = readdir(dir)) {
    const int fd = std::atoi(de->d_name);
    if (fd <= 2) continue;
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof(local), pl = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    const auto port_of = [](const sockaddr_storage& a) -> int {
      if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
      if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
      return -1;
    };
    if (port_of(local) == req.local_port && port_of(peer) == req.remote_port) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// The peer closed the connection (EOF or an error pending on the socket).
bool peer_closed(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  if (p.revents & POLLIN) {
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0;
  }
  return false;
}

struct Timing {
  SteadyClock::time_point start;
};
thread_local Timing t_request;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool allowed_origin(const std::string& origin) {
  for (const char* p : {"http://localhost", "https://localhost", "http://127.0.0.1", "https://127.0.0.1",
                        "http://[::1]", "app://", "file://", "tauri://", "vscode-webview://", "vscode-file://"})
    if (origin.rfind(p, 0) == 0) {
      const size_t n = std::strlen(p);
      if (origin.size() == n || origin[n] == ':' || origin[n] == '/' || p[std::strlen(p) - 1] == '/') return true;
    }
  return false;
}

}  // namespace

struct HttpServer::Impl {
  ModelRegistry& registry;
  ServerOptions opt;
  httplib::Server svr;
  int port = -1;
  // Counters for /metrics.
  std::mutex metrics_mutex;
  std::map<int, uint64_t> http_requests;  // by status
  std::atomic<uint64_t> cancelled{0};
  std::map<std::string, std::set<std::string>> route_methods;  // path pattern → methods (405 answers)

  Impl(ModelRegistry& r, ServerOptions o) : registry(r), opt(std::move(o)) {}

  // ---- responses ----

  void send_json(httplib::Response& res, int status, const ojson& body) {
    res.status = status;
    res.set_content(dump(body), kJson);
  }

  void send_error(httplib::Response& res, Family fam, const ApiError& e) {
    if (e.retry_after_s > 0) {
      res.set_header("Retry-After", std::to_string(e.retry_after_s));
      res.set_header("retry-after-ms", std::to_string(e.retry_after_s * 1000));
    }
    if (fam == Family::OpenAi) send_json(res, e.status, openai::error_body(e));
    else send_json(res, e.status, ojson{{"error", e.what()}});
  }

  // The ApiError for any exception a handler threw.
  ApiError to_api_error(std::exception_ptr ep, Family fam) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      return e;
    } catch (const QueueFullError& e) {
      ApiError a(503, "unavailable_error", "server_overloaded",
                 fam == Family::Ollama ? "server busy, please try again.  maximum pending requests exceeded"
                                       : std::string("Too many queued requests (") + e.what() + "). Retry later.");
      a.retry_after_s = opt.retry_after_s;
      return a;
    } catch (const ContextOverflowError& e) {
      return context_overflow(e.n_prompt, e.n_ctx);
    } catch (const ShuttingDownError& e) {
      ApiError a(503, "unavailable_error", "server_overloaded", std::string("the server is shutting down: ") + e.what());
      a.retry_after_s = opt.retry_after_s;
      return a;
    } catch (const json::exception& e) {
      return bad_request(std::string("bad request: ") + e.what());
    } catch (const Error& e) {
      return bad_request(e.what());
    } catch (const std::bad_alloc&) {
      return ApiError(500, "server_error", "", "out of memory");
    } catch (const std::exception& e) {
      return ApiError(500, "server_error", "", std::string("internal error: ") + e.what());
    }
  }

  // Runs a handler, answering its exceptions in the route family's shape.
  template <class F>
  httplib::Server::Handler wrap(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (...) {
        send_error(res, family_of(req.path), to_api_error(std::current_exception(), family_of(req.path)));
      }
    };
  }

  void route(const char* method, const std::string& pattern, httplib::Server::Handler h) {
    route_methods[pattern].insert(method);
    const std::string m = method;
    if (m == "GET") svr.Get(pattern, h);
    else if (m == "POST") svr.Post(pattern, h);
    else if (m == "DELETE") svr.Delete(pattern, h);
  }

  static json parse_body(const httplib::Request& req) {
    if (req.body.empty()) throw ApiError(400, "invalid_request_error", "", "missing request body");
    json b = json::parse(req.body, nullptr, false);
    if (b.is_discarded())
      throw ApiError(400, "invalid_request_error", "invalid_json",
                     "the request body is not valid JSON (" + std::to_string(req.body.size()) + " bytes)");
    if (!b.is_object()) throw bad_request("the request body must be a JSON object");
    return b;
  }

  std::shared_ptr<ModelEntry> resolve(const std::string& name, Family fam) {
    auto e = registry.resolve(name);
    if (e) return e;
    if (name.empty()) throw ApiError(400, "invalid_request_error", "", "model is required", "model");
    if (fam == Family::Ollama) throw ApiError(404, "not_found_error", "model_not_found", "model '" + name + "' not found", "model");
    throw ApiError(404, "not_found_error", "model_not_found",
                   "The model '" + name + "' does not exist. Available: " + registry.names(), "model");
  }

  // A model without the single-model leniency (GET /v1/models/{id}, /api/show).
  std::shared_ptr<ModelEntry> find_strict(const std::string& name) {
    const std::string norm = normalize_model_name(name);
    for (const auto& e : registry.list())
      if (e->name == name || e->name == norm || model_name_from_path(name) == e->name) return e;
    return nullptr;
  }

  // ---- generation ----

  // One request's generation, shared between the handler and httplib's content provider.
  struct Run {
    ModelRegistry::Lease lease;
    std::unique_ptr<Session> session;
    JobSpec job;
    std::string model_echo;
    SteadyClock::time_point t0;
    int fd = -1;
  };

  std::shared_ptr<Run> start_run(const httplib::Request& req, JobSpec job, Family fam) {
    auto run = std::make_shared<Run>();
    run->t0 = t_request.start;
    auto entry = resolve(job.model, fam);
    run->model_echo = job.model.empty() ? entry->name : job.model;
    run->lease = registry.acquire(entry, job.keep_alive_ms);
    PreparedJob pj = prepare_job(job, *run->lease);
    run->session = std::make_unique<Session>(run->lease->backend, run->lease->model->tokenizer(), std::move(pj.params));
    run->session->start();
    run->job = std::move(job);
    run->fd = find_connection_socket(req);
    return run;
  }

  // Waits for the next step; cancels the session (and returns nullopt) when the client is gone.
  std::optional<StepOutput> next_step(Run& run, bool& gone) {
    while (true) {
      if (peer_closed(run.fd)) {
        run.session->cancel();
        ++cancelled;
        gone = true;
        return std::nullopt;
      }
      if (auto s = run.session->next(std::chrono::milliseconds(100))) return s;
    }
  }

  std::string error_of(const StepOutput& s) {
    return s.completion.error.empty() ? "generation failed" : s.completion.error;
  }

  void openai_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    const json body = parse_body(req);
    JobSpec job = chat ? openai::parse_chat(body) : openai::parse_completion(body);
    auto run = start_run(req, std::move(job), Family::OpenAi);
    const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-", 24);
    const int64_t created = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    if (!run->job.stream) {
      openai::Collector col(run->session->n(), chat, opt.reasoning_field);
      bool gone = false;
      while (!run->session->finished()) {
        auto s = next_step(*run, gone);
        if (gone) {
          res.status = 499;
          return;
        }
        if (s->done && s->completion.reason == FinishReason::Error)
          throw ApiError(500, "server_error", "", error_of(*s));
        col.step(*s);
      }
      send_json(res, 200, col.response(id, created, run->model_echo));
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto shaper = std::make_shared<openai::StreamShaper>(id, created, run->model_echo, run->session->n(), chat,
                                                         opt.reasoning_field);
    res.set_chunked_content_provider("text/event-stream", [this, run, shaper](size_t, httplib::DataSink& sink) {
      const auto send = [&](const std::string& data) { return sink.write(data.data(), data.size()); };
      std::vector<StepOutput> done;
      auto last_write = SteadyClock::now();
      while (!run->session->finished()) {
        bool gone = false;
        std::optional<StepOutput> s;
        while (!s) {
          if (peer_closed(run->fd)) {
            gone = true;
            break;
          }
          s = run->session->next(std::chrono::milliseconds(100));
          if (!s && SteadyClock::now() - last_write > std::chrono::seconds(10)) {
            if (!send(": ping\n\n")) {
              gone = true;
              break;
            }
            last_write = SteadyClock::now();
          }
        }
        if (gone) {
          run->session->cancel();
          ++cancelled;
          return false;
        }
        if (s->done && s->completion.reason == FinishReason::Error) {
          ApiError e(500, "server_error", "", error_of(*s));
          send("data: " + dump(openai::error_body(e)) + "\n\n");
          run->session->cancel();
          sink.done();
          return true;
        }
        for (const ojson& c : shaper->step(*s))
          if (!send("data: " + dump(c) + "\n\n")) {
            run->session->cancel();
            ++cancelled;
            return false;
          }
        last_write = SteadyClock::now();
        if (s->done) done.push_back(*s);
      }
      if (run->job.include_usage) send("data: " + dump(shaper->usage_chunk(openai::usage(done))) + "\n\n");
      send("data: [DONE]\n\n");
      sink.done();
      run->lease.release();
      return true;
    });
  }

  void ollama_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    const json body = parse_body(req);
    JobSpec job = chat ? ollama::parse_chat(body) : ollama::parse_generate(body);
    if (job.model.empty()) throw ApiError(400, "invalid_request_error", "", "model is required", "model");
    auto entry = resolve(job.model, Family::Ollama);
    if (ollama::wants_thinking(body) &&
        std::find(entry->capabilities.begin(), entry->capabilities.end(), "thinking") == entry->capabilities.end())
      throw bad_request("\"" + job.model + "\" does not support thinking", "think");
    if (!job.tools.is_null() &&
        std::find(entry->capabilities.begin(), entry->capabilities.end(), "tools") == entry->capabilities.end())
      throw bad_request("\"" + job.model + "\" does not support tools", "tools");
    // Load / unload only (empty prompt or no messages, api.md 2.3).
    if ((chat && job.messages.empty()) || (!chat && job.prompt.empty())) {
      const bool unload = job.keep_alive_ms && *job.keep_alive_ms == 0;
      if (unload) {
        registry.set_keep_alive(entry, 0);
      } else {
        ModelRegistry::Lease lease = registry.acquire(entry, job.keep_alive_ms);
      }
      ojson o = {{"model", job.model}, {"created_at", rfc3339(std::chrono::system_clock::now())}};
      if (chat) o["message"] = {{"role", "assistant"}, {"content", ""}};
      else o["response"] = "";
      o["done"] = true;
      o["done_reason"] = unload ? "unload" : "load";
      send_json(res, 200, o);
      return;
    }
    auto run = start_run(req, std::move(job), Family::Ollama);
    auto shaper = std::make_shared<ollama::Shaper>(run->model_echo, chat);
    const auto total_ns = [run]() {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - run->t0).count();
    };
    if (!run->job.stream) {
      bool gone = false;
      std::optional<StepOutput> last;
      while (!run->session->finished()) {
        auto s = next_step(*run, gone);
        if (gone) {
          res.status = 499;
          return;
        }
        if (s->done && s->completion.reason == FinishReason::Error)
          throw ApiError(500, "server_error", "", error_of(*s));
        shaper->step(*s);
        if (s->done) last = s;
      }
      send_json(res, 200, shaper->final_object(*last, total_ns(), run->lease.load_ns(), true));
      return;
    }
    res.set_chunked_content_provider("application/x-ndjson", [this, run, shaper, total_ns](size_t, httplib::DataSink& sink) {
      const auto send = [&](const ojson& o) {
        const std::string line = dump(o) + "\n";
        return sink.write(line.data(), line.size());
      };
      while (!run->session->finished()) {
        bool gone = false;
        auto s = next_step(*run, gone);
        if (gone) return false;
        if (s->done && s->completion.reason == FinishReason::Error) {
          send(ojson{{"error", error_of(*s)}});
          sink.done();
          return true;
        }
        for (const ojson& c : shaper->step(*s))
          if (!send(c)) {
            run->session->cancel();
            ++cancelled;
            return false;
          }
        if (s->done && !send(shaper->final_object(*s, total_ns(), run->lease.load_ns(), false))) {
          ++cancelled;
          return false;
        }
      }
      sink.done();
      run->lease.release();
      return true;
    });
  }

  // ---- embeddings ----

  // Embeds each input; `truncate`: cut inputs to the context instead of refusing them.
  std::vector<std::vector<float>> embed_all(LoadedModel& lm, const std::vector<std::string>& texts,
                                            std::vector<std::vector<int32_t>> token_inputs, bool truncate,
                                            Family fam, int dimensions, uint64_t& n_tokens) {
    const tokenizer::Tokenizer& tok = lm.model->tokenizer();
    for (const std::string& t : texts) token_inputs.push_back(tok.encode(t, true, false));
    std::vector<std::vector<float>> out;
    for (auto& ids : token_inputs) {
      if (ids.empty()) throw bad_request("an input has no tokens", "input");
      if (ids.size() > lm.params.n_ctx) {
        if (!truncate) {
          if (fam == Family::Ollama) throw bad_request("input length exceeds the context length", "input");
          throw context_overflow(static_cast<uint32_t>(ids.size()), lm.params.n_ctx);
        }
        ids.resize(lm.params.n_ctx);
      }
      n_tokens += ids.size();
      std::vector<float> v = lm.backend->embed(ids);
      if (dimensions > 0) {
        if (static_cast<size_t>(dimensions) > v.size())
          throw bad_request("dimensions " + std::to_string(dimensions) + " is more than the model's " +
                                std::to_string(v.size()),
                            "dimensions");
        v.resize(static_cast<size_t>(dimensions));
        double norm = 0;
        for (float x : v) norm += static_cast<double>(x) * x;
        if (norm > 0)
          for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
      }
      out.push_back(std::move(v));
    }
    return out;
  }

  void openai_embeddings(const httplib::Request& req, httplib::Response& res) {
    const openai::EmbeddingsSpec spec = openai::parse_embeddings(parse_body(req));
    auto entry = resolve(spec.model, Family::OpenAi);
    ModelRegistry::Lease lease = registry.acquire(entry, std::nullopt);
    uint64_t n_tokens = 0;
    const auto vecs = embed_all(*lease, spec.texts, spec.token_inputs, false, Family::OpenAi, spec.dimensions, n_tokens);
    ojson data = ojson::array();
    for (size_t i = 0; i < vecs.size(); ++i) {
      ojson item = {{"object", "embedding"}, {"index", i}};
      if (spec.base64) {
        std::string bytes(vecs[i].size() * sizeof(float), '\0');
        std::memcpy(bytes.data(), vecs[i].data(), bytes.size());  // little-endian hosts (x86-64, arm64)
        item["embedding"] = base64_encode(bytes);
      } else {
        item["embedding"] = vecs[i];
      }
      data.push_back(item);
    }
    send_json(res, 200,
              {{"object", "list"},
               {"data", data},
               {"model", spec.model.empty() ? entry->name : spec.model},
               {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}});
  }

  void ollama_embed(const httplib::Request& req, httplib::Response& res, bool legacy) {
    const json b = parse_body(req);
    const std::string model = get_string(b, "model").value_or("");
    if (model.empty()) throw ApiError(400, "invalid_request_error", "", "model is required", "model");
    std::vector<std::string> texts;
    if (legacy) {
      texts.push_back(get_string(b, "prompt").value_or(""));
    } else if (b.contains("input") && b["input"].is_string()) {
      texts.push_back(b["input"].get<std::string>());
    } else if (b.contains("input") && b["input"].is_array()) {
      for (const json& x : b["input"]) {
        if (!x.is_string()) throw bad_request("input must be a string or an array of strings", "input");
        texts.push_back(x.get<std::string>());
      }
    } else {
      throw bad_request("input must be a string or an array of strings", "input");
    }
    std::optional<int64_t> keep_alive;
    if (b.contains("keep_alive") && !b["keep_alive"].is_null()) keep_alive = parse_keep_alive(b["keep_alive"]);
    const auto t0 = SteadyClock::now();
    auto entry = resolve(model, Family::Ollama);
    ModelRegistry::Lease lease = registry.acquire(entry, keep_alive);
    uint64_t n_tokens = 0;
    const int dims = static_cast<int>(get_int(b, "dimensions").value_or(0));
    if (legacy && texts[0].empty()) {
      send_json(res, 200, {{"embedding", ojson::array()}});
      return;
    }
    const auto vecs = embed_all(*lease, texts, {}, get_bool(b, "truncate").value_or(true), Family::Ollama, dims, n_tokens);
    if (legacy) {
      ojson v = ojson::array();
      for (float x : vecs[0]) v.push_back(static_cast<double>(x));
      send_json(res, 200, {{"embedding", v}});
      return;
    }
    const int64_t total = std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - t0).count();
    send_json(res, 200,
              {{"model", model},
               {"embeddings", vecs},
               {"total_duration", total},
               {"load_duration", lease.load_ns()},
               {"prompt_eval_count", n_tokens}});
  }

  // ---- models ----

  ojson models_list() {
    ojson data = ojson::array(), models = ojson::array();
    for (const auto& e : registry.list()) {
      data.push_back(openai::model_object(*e, e->loaded != nullptr, registry.options().engine.n_ctx));
      models.push_back(ollama::tag_object(*e));
    }
    return {{"object", "list"}, {"data", data}, {"models", models}};
  }

  void show(const httplib::Request& req, httplib::Response& res) {
    const json b = parse_body(req);
    const std::string name = get_string(b, "model").value_or(get_string(b, "name").value_or(""));
    if (name.empty()) throw ApiError(400, "invalid_request_error", "", "model is required", "model");
    auto e = find_strict(name);
    if (!e) e = registry.list().size() == 1 ? registry.list()[0] : nullptr;
    if (!e) throw ApiError(404, "not_found_error", "model_not_found", "model '" + name + "' not found", "model");
    const bool verbose = get_bool(b, "verbose").value_or(false);
    const gguf::File f = e->path.empty()
                             ? gguf::File::from_static(model::embedded_default_model().data(),
                                                       model::embedded_default_model().size(),
                                                       std::string(model::embedded_default_model_name()))
                             : gguf::File::open(e->path);
    std::string tmpl = f.get<std::string>("tokenizer.chat_template").value_or(chat::kChatMlTemplate);
    send_json(res, 200, ollama::show_object(*e, f, tmpl, verbose));
  }

  // ---- ops ----

  std::string metrics_text() {
    std::string out;
    const auto metric = [&](const std::string& name, const char* type, const char* help,
                            const std::vector<std::pair<std::string, double>>& samples) {
      out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
      for (const auto& [labels, v] : samples) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        out += name + labels + " " + buf + "\n";
      }
    };
    EngineStats total;
    std::vector<std::pair<std::string, EngineStats>> per_model;
    for (const auto& e : registry.loaded()) {
      auto lm = e->loaded;
      if (!lm) continue;
      const EngineStats s = lm->backend->stats();
      per_model.emplace_back(e->name, s);
      total.requests_total += s.requests_total;
      total.prompt_tokens_total += s.prompt_tokens_total;
      total.generated_tokens_total += s.generated_tokens_total;
      total.cached_tokens_total += s.cached_tokens_total;
      total.requests_running += s.requests_running;
      total.requests_queued += s.requests_queued;
      total.n_parallel += s.n_parallel;
      total.kv_cells_used += s.kv_cells_used;
      total.kv_cells_total += s.kv_cells_total;
      total.prompt_ns_total += s.prompt_ns_total;
      total.generation_ns_total += s.generation_ns_total;
    }
    const auto samples = [&](auto get) {
      std::vector<std::pair<std::string, double>> v{{"", static_cast<double>(get(total))}};
      if (per_model.size() > 1)
        for (const auto& [name, s] : per_model) v.emplace_back("{model=\"" + name + "\"}", static_cast<double>(get(s)));
      return v;
    };
    using S = const EngineStats&;
    metric("llamacpp:prompt_tokens_total", "counter", "Prompt tokens processed (cache hits not counted).",
           samples([](S s) { return s.prompt_tokens_total; }));
    metric("llamacpp:prompt_tokens_cached_total", "counter", "Prompt tokens taken from the cache.",
           samples([](S s) { return s.cached_tokens_total; }));
    metric("llamacpp:prompt_seconds_total", "counter", "Prompt processing time.",
           samples([](S s) { return s.prompt_ns_total / 1e9; }));
    metric("llamacpp:tokens_predicted_total", "counter", "Generated tokens.",
           samples([](S s) { return s.generated_tokens_total; }));
    metric("llamacpp:tokens_predicted_seconds_total", "counter", "Generation time.",
           samples([](S s) { return s.generation_ns_total / 1e9; }));
    metric("llamacpp:prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
           samples([](S s) { return s.prompt_ns_total > 0 ? s.prompt_tokens_total * 1e9 / s.prompt_ns_total : 0.0; }));
    metric("llamacpp:predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
           samples([](S s) {
             return s.generation_ns_total > 0 ? s.generated_tokens_total * 1e9 / s.generation_ns_total : 0.0;
           }));
    metric("llamacpp:requests_processing", "gauge", "Requests in slots.",
           samples([](S s) { return s.requests_running; }));
    metric("llamacpp:requests_deferred", "gauge", "Requests waiting for a slot.",
           samples([](S s) { return s.requests_queued; }));
    metric("hearth_requests_total", "counter", "Generation requests accepted by the engines.",
           samples([](S s) { return s.requests_total; }));
    metric("hearth_kv_cache_cells_used", "gauge", "KV cache cells holding tokens.",
           samples([](S s) { return s.kv_cells_used; }));
    metric("hearth_kv_cache_cells_total", "gauge", "KV cache cells (n_ctx x n_parallel).",
           samples([](S s) { return s.kv_cells_total; }));
    metric("hearth_kv_cache_usage_ratio", "gauge", "Share of KV cache cells in use.",
           samples([](S s) { return s.kv_cells_total ? double(s.kv_cells_used) / s.kv_cells_total : 0.0; }));
    metric("hearth_models_loaded", "gauge", "Resident models.", {{"", static_cast<double>(per_model.size())}});
    metric("hearth_requests_cancelled_total", "counter", "Requests cancelled because the client went away.",
           {{"", static_cast<double>(cancelled.load())}});
    std::vector<std::pair<std::string, double>> http;
    {
      std::lock_guard<std::mutex> lock(metrics_mutex);
      for (const auto& [code, n] : http_requests) http.emplace_back("{code=\"" + std::to_string(code) + "\"}", n);
    }
    if (http.empty()) http.emplace_back("{code=\"200\"}", 0);
    metric("hearth_http_requests_total", "counter", "HTTP requests answered, by status.", http);
    return out;
  }

  std::shared_ptr<ModelEntry> model_param(const httplib::Request& req, const json& body) {
    std::string name = req.get_param_value("model");
    if (name.empty() && body.is_object()) name = body.value("model", "");
    return resolve(name, Family::OpenAi);
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    const json b = parse_body(req);
    ModelRegistry::Lease lease = registry.acquire(model_param(req, b), std::nullopt);
    const tokenizer::Tokenizer& tok = lease->model->tokenizer();
    const std::string content = get_string(b, "content").value_or("");
    const auto ids = tok.encode(content, get_bool(b, "add_special").value_or(false),
                                get_bool(b, "parse_special").value_or(true));
    ojson tokens = ojson::array();
    if (get_bool(b, "with_pieces").value_or(false)) {
      for (int32_t id : ids) {
        const std::string piece = tok.token_to_piece(id, true);
        tokens.push_back({{"id", id}, {"piece", valid_utf8(piece) ? ojson(piece) : ojson(byte_array(piece))}});
      }
    } else {
      for (int32_t id : ids) tokens.push_back(id);
    }
    send_json(res, 200, {{"tokens", tokens}});
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    const json b = parse_body(req);
    ModelRegistry::Lease lease = registry.acquire(model_param(req, b), std::nullopt);
    const tokenizer::Tokenizer& tok = lease->model->tokenizer();
    std::vector<int32_t> ids;
    if (b.contains("tokens") && b["tokens"].is_array())
      for (const json& t : b["tokens"]) {
        if (!t.is_number_integer()) throw bad_request("'tokens' must be an array of integers", "tokens");
        const int32_t id = t.get<int32_t>();
        if (id < 0 || id >= tok.n_vocab())
          throw bad_request("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                                std::to_string(tok.n_vocab() - 1) + ")",
                            "tokens");
        ids.push_back(id);
      }
    send_json(res, 200, {{"content", tok.decode(ids, false, true)}});
  }

  void props(const httplib::Request& req, httplib::Response& res) {
    ModelRegistry::Lease lease = registry.acquire(model_param(req, json()), std::nullopt);
    const tokenizer::Tokenizer& tok = lease->model->tokenizer();
    const sample::SamplerParams d;
    const chat::ChatTemplate& t = lease->chat_template;
    const bool tools = t.source().find("tools") != std::string::npos;
    send_json(res, 200,
              {{"default_generation_settings",
                {{"n_ctx", lease->params.n_ctx},
                 {"params",
                  {{"temperature", d.temp}, {"top_k", d.top_k}, {"top_p", d.top_p}, {"min_p", d.min_p}, {"n_predict", -1}}}}},
               {"total_slots", lease->params.n_parallel},
               {"model_alias", lease.entry().name},
               {"model_path", lease.entry().path.empty() ? std::string(model::embedded_default_model_name()) : lease.entry().path},
               {"modalities", {{"vision", false}, {"audio", false}, {"video", false}}},
               {"chat_template", t.source()},
               {"chat_template_caps",
                {{"supports_tools", tools},
                 {"supports_tool_calls", tools},
                 {"supports_parallel_tool_calls", tools},
                 {"supports_system_role", true},
                 {"supports_reasoning_effort", t.source().find("reasoning_effort") != std::string::npos},
                 {"supports_preserve_reasoning", false}}},
               {"bos_token", tok.bos() ? tok.token_text(*tok.bos()) : ""},
               {"eos_token", tok.eos() ? tok.token_text(*tok.eos()) : ""},
               {"build_info", "hearth 0.1.0"},
               {"is_sleeping", false}});
  }

  // ---- setup ----

  bool authorized(const httplib::Request& req) {
    if (opt.api_key.empty()) return true;
    if (req.method == "OPTIONS") return true;
    if ((req.path == "/" && (req.method == "GET" || req.method == "HEAD")) || req.path == "/health" ||
        req.path == "/v1/health" || req.path == "/api/version")
      return true;
    std::string key;
    const std::string auth = req.get_header_value("Authorization");
    if (lower(auth.substr(0, 7)) == "bearer ") key = auth.substr(7);
    else if (req.has_header("X-Api-Key")) key = req.get_header_value("X-Api-Key");
    if (lower(key.substr(0, 7)) == "bearer ") key = key.substr(7);
    return constant_time_equal(opt.api_key, key);
  }

  void setup() {
    const EngineParams& ep = registry.options().engine;
    int threads = opt.http_threads > 0 ? opt.http_threads
                                       : std::max<int>(16, static_cast<int>(ep.n_parallel + ep.max_queue) + 8);
    threads = std::min(threads, 512);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_read_timeout(600);
    svr.set_write_timeout(600);
    svr.set_keep_alive_max_count(1000);

    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request.start = SteadyClock::now();
      res.set_header("X-Request-Id", random_id("req-", 16));
      const std::string origin = req.get_header_value("Origin");
      if (!origin.empty() && allowed_origin(origin)) {
        res.set_header("Access-Control-Allow-Origin", origin);
        res.set_header("Vary", "Origin");
      }
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, HEAD, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key, User-Agent");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!authorized(req)) {
        ApiError e(401, "authentication_error", "invalid_api_key",
                   family_of(req.path) == Family::Ollama ? "unauthorized" : "Invalid API key");
        send_error(res, family_of(req.path), e);
        res.set_header("WWW-Authenticate", "Bearer");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });

    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(metrics_mutex);
        ++http_requests[res.status];
      }
      if (!opt.access_log) return;
      const double ms =
          std::chrono::duration<double, std::milli>(SteadyClock::now() - t_request.start).count();
      std::fprintf(stderr, "%s %s %s %d %.1fms\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(),
                   res.status, ms);
    });

    svr.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      send_error(res, family_of(req.path), to_api_error(ep, family_of(req.path)));
    });

    svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404 && res.body.empty()) {
        // A known path with another method: 405 with Allow.
        for (const auto& [pattern, methods] : route_methods) {
          if (!std::regex_match(req.path, std::regex(pattern))) continue;
          std::string allow;
          for (const std::string& m : methods) allow += (allow.empty() ? "" : ", ") + m;
          res.set_header("Allow", allow);
          send_error(res, family_of(req.path),
                     ApiError(405, "invalid_request_error", "method_not_allowed",
                              req.method + " is not allowed on " + req.path + " (allowed: " + allow + ")"));
          return;
        }
        send_error(res, family_of(req.path),
                   ApiError(404, "not_found_error", "not_found", "no route " + req.method + " " + req.path));
      } else if (res.status == 413) {
        send_error(res, family_of(req.path),
                   ApiError(413, "invalid_request_error", "request_too_large",
                            family_of(req.path) == Family::Ollama ? "request body too large"
                                                                  : "the request body is over the limit"));
      } else if (res.status == 400 && res.body.empty()) {
        send_error(res, family_of(req.path), bad_request("malformed HTTP request"));
      }
    });

    const auto text_ok = [](const httplib::Request&, httplib::Response& res) {
      res.set_content("Ollama is running", "text/plain; charset=utf-8");
    };
    route("GET", "/", text_ok);
    const auto health = [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"}});
    };
    route("GET", "/health", health);
    route("GET", "/v1/health", health);
    route("GET", "/metrics", wrap([this](const httplib::Request&, httplib::Response& res) {
            res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
          }));
    route("GET", "/props", wrap([this](const httplib::Request& q, httplib::Response& r) { props(q, r); }));
    route("POST", "/tokenize", wrap([this](const httplib::Request& q, httplib::Response& r) { tokenize(q, r); }));
    route("POST", "/detokenize", wrap([this](const httplib::Request& q, httplib::Response& r) { detokenize(q, r); }));

    // OpenAI family (also without /v1, api.md 0.1).
    for (const std::string prefix : {"/v1", ""}) {
      route("POST", prefix + "/chat/completions",
            wrap([this](const httplib::Request& q, httplib::Response& r) { openai_generate(q, r, true); }));
      route("POST", prefix + "/completions",
            wrap([this](const httplib::Request& q, httplib::Response& r) { openai_generate(q, r, false); }));
      route("POST", prefix + "/embeddings",
            wrap([this](const httplib::Request& q, httplib::Response& r) { openai_embeddings(q, r); }));
      route("GET", prefix + "/models",
            wrap([this](const httplib::Request&, httplib::Response& r) { send_json(r, 200, models_list()); }));
    }
    route("GET", R"(/v1/models/(.+))", wrap([this](const httplib::Request& q, httplib::Response& r) {
            const std::string id = httplib::detail::decode_url(q.matches[1], false);
            auto e = find_strict(id);
            if (!e)
              throw ApiError(404, "not_found_error", "model_not_found",
                             "The model '" + id + "' does not exist. Available: " + registry.names(), "model");
            send_json(r, 200, openai::model_object(*e, e->loaded != nullptr, registry.options().engine.n_ctx));
          }));

    // Ollama family.
    route("POST", "/api/chat", wrap([this](const httplib::Request& q, httplib::Response& r) { ollama_generate(q, r, true); }));
    route("POST", "/api/generate",
          wrap([this](const httplib::Request& q, httplib::Response& r) { ollama_generate(q, r, false); }));
    route("POST", "/api/embed", wrap([this](const httplib::Request& q, httplib::Response& r) { ollama_embed(q, r, false); }));
    route("POST", "/api/embeddings",
          wrap([this](const httplib::Request& q, httplib::Response& r) { ollama_embed(q, r, true); }));
    route("POST", "/api/show", wrap([this](const httplib::Request& q, httplib::Response& r) { show(q, r); }));
    route("GET", "/api/tags", wrap([this](const httplib::Request&, httplib::Response& r) {
            ojson models = ojson::array();
            for (const auto& e : registry.list()) models.push_back(ollama::tag_object(*e));
            send_json(r, 200, {{"models", models}});
          }));
    route("GET", "/api/ps", wrap([this](const httplib::Request&, httplib::Response& r) {
            ojson models = ojson::array();
            for (const auto& e : registry.loaded()) models.push_back(ollama::ps_object(*e, registry.options().engine.n_ctx));
            send_json(r, 200, {{"models", models}});
          }));
    route("GET", "/api/version", [this](const httplib::Request&, httplib::Response& r) {
      send_json(r, 200, {{"version", ollama::kVersion}, {"engine_version", "hearth 0.1.0"}});
    });
  }
};

HttpServer::HttpServer(ModelRegistry& registry, ServerOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(options))) {
  impl_->setup();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  Impl& s = *impl_;
  if (s.opt.port == 0) s.port = s.svr.bind_to_any_port(s.opt.host);
  else s.port = s.svr.bind_to_port(s.opt.host, s.opt.port) ? s.opt.port : -1;
  if (s.port <= 0)
    throw Error("cannot listen on " + s.opt.host + ":" + std::to_string(s.opt.port) +
                " (address in use, or not an address of this machine)");
  return s.port;
}

void HttpServer::listen() { impl_->svr.listen_after_bind(); }

void HttpServer::stop() {
  if (impl_->svr.is_running()) impl_->svr.stop();
}

int HttpServer::port() const { return impl_->port; }

}  // namespace hearth::server

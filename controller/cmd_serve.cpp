// `berth-controller serve`: standalone mode. Opens the SQLite state in the data directory and
// serves the REST API until SIGTERM or SIGINT. run_serve() is the one place where the
// concrete adapters of standalone mode are wired together.
#include <pthread.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "api/server.h"
#include "command.h"
#include "common/log.h"
#include "crypto/password.h"
#include "store/sqlite_store.h"

namespace berth::controller {
namespace {

struct ServeOptions {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert;
  std::string tls_key;
  bool insecure_http = false;
  std::string default_zone = "local";
  std::string log_level = "info";
  std::string port_file;
  std::size_t max_connections = 256;
};

// "HOST:PORT" or "[V6]:PORT".
bool split_listen(const std::string& text, std::string& host, std::uint16_t& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  try {
    std::size_t used = 0;
    const unsigned long p = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// Written atomically (temp file + rename) so a reader never sees a partial port.
bool write_port_file(const std::string& path, std::uint16_t port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << port << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

core::UnixMillis system_now() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int run_serve(const ServeOptions& o) {
  log::Level level;
  if (!log::parse_level(o.log_level, level)) {
    std::fprintf(stderr, "serve: --log-level must be debug, info, warn or error\n");
    return 2;
  }
  log::set_level(level);

  api::ApiOptions api_options;
  if (!split_listen(o.listen, api_options.listen_host, api_options.listen_port)) {
    std::fprintf(stderr, "serve: --listen must be HOST:PORT\n");
    return 2;
  }
  api_options.tls_cert_file = o.tls_cert;
  api_options.tls_key_file = o.tls_key;
  api_options.allow_insecure_http = o.insecure_http;
  api_options.default_zone = o.default_zone;
  api_options.max_connections = o.max_connections;
  api_options.new_id = [] { return crypto::random_uuid(); };

  // Block the stop signals before any thread starts, so every thread inherits the mask and
  // sigwait() below is the only place they arrive.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto opened = store::SqliteStore::open(o.data_dir);
  if (!opened) {
    log::error("cannot open the data directory",
               {{"data_dir", o.data_dir}, {"error", opened.error().message}});
    return 1;
  }
  std::unique_ptr<store::SqliteStore> store = std::move(opened).value();

  // Until the runtime exists, a committed change only needs to be visible in the log; the
  // runtime will enqueue the service id into its work queue here.
  auto on_change = [](const std::string& service_id) {
    log::debug("app service changed", {{"app", service_id}});
  };

  api::ApiServer server(std::move(api_options), *store, system_now, on_change);
  if (auto s = server.start(); !s) {
    log::error("cannot start the API server", {{"error", s.error().message}});
    return 1;
  }
  if (!o.port_file.empty() && !write_port_file(o.port_file, server.port())) {
    log::error("cannot write the port file", {{"path", o.port_file}});
    server.stop();
    return 1;
  }
  log::info("controller ready", {{"data_dir", o.data_dir}, {"address", server.bound_address()}});

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log::info("controller stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server.stop();
  log::info("controller stopped");
  return 0;
}

const Registration kServe([](CLI::App& root, Runner& run) {
  auto* sub = root.add_subcommand("serve", "Run standalone mode: REST API + SQLite state");
  auto o = std::make_shared<ServeOptions>();
  sub->add_option("--data-dir", o->data_dir, "State directory (created 0700)")->required();
  sub->add_option("--listen", o->listen, "HOST:PORT for the REST API (port 0: any free port)")
      ->capture_default_str();
  sub->add_option("--tls-cert", o->tls_cert, "PEM certificate chain: serve HTTPS");
  sub->add_option("--tls-key", o->tls_key, "PEM private key for --tls-cert");
  sub->add_flag("--insecure-http", o->insecure_http,
                "Allow plain HTTP on a non-loopback listen address");
  sub->add_option("--default-zone", o->default_zone, "Zone of app services that name none")
      ->capture_default_str();
  sub->add_option("--log-level", o->log_level, "debug|info|warn|error")->capture_default_str();
  sub->add_option("--port-file", o->port_file, "Write the bound port to this file once listening");
  sub->add_option("--max-connections", o->max_connections, "Concurrent API connections")
      ->capture_default_str();
  sub->callback([o, &run] { run = [o] { return run_serve(*o); }; });
});

}  // namespace
}  // namespace berth::controller

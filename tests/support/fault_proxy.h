#pragma once
// A loopback TCP proxy that breaks on purpose, for the fault suites (tests/faults): put it
// between a client and its server (the agent and the registry, the agent and the controller)
// and switch what it does while the stack runs.
//
//   auto proxy = FaultProxy::start(registry_port);       // 127.0.0.1:<free port> -> target
//   proxy->set_mode(FaultProxy::Mode::kRefuse);          // the server is "down"
//   proxy->set_mode(FaultProxy::Mode::kPass);            // and back
//
// Modes apply to new connections and to open ones alike:
// - kPass: bytes both ways, unchanged.
// - kRefuse: a new connection is reset at once (RST), open ones are cut: a server that is down.
// - kStall: connections are accepted but no byte moves either way until the mode changes: a
//   server that hangs (the client's own deadline must fire).
// - kDelay: every chunk waits `delay` before it is forwarded: a slow server.
// - kHttpStatus: TLS is terminated with `answer_with`'s certificate and every request gets
//   that status (with Retry-After when set) and `Connection: close`: a server that fails.
// cut() closes every open connection once without changing the mode (a link dropped mid-task).
//
// Threading: one acceptor thread and one thread per connection, all joined by the destructor;
// the control methods are safe from any thread. Every wait inside is bounded (100 ms polls), so
// destruction never hangs. Failures to start throw std::runtime_error.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace berth::testing {

class FaultProxy {
 public:
  enum class Mode { kPass, kRefuse, kStall, kDelay, kHttpStatus };

  struct HttpAnswer {
    int status = 500;
    int retry_after_seconds = -1;  // < 0: no Retry-After header
    std::string cert_file;         // PEM certificate (chain) the client trusts for the target
    std::string key_file;          // its private key
  };

  static std::unique_ptr<FaultProxy> start(std::uint16_t target_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

  void set_mode(Mode mode);
  void set_delay(std::chrono::milliseconds delay);  // used in kDelay
  // Switches to kHttpStatus with this answer.
  void answer_with(HttpAnswer answer);
  // Closes every connection open now; the mode stays.
  void cut();

  // Connections accepted so far, and those currently relaying.
  int accepted() const { return accepted_.load(); }
  int open_connections() const { return open_.load(); }
  // Requests answered in kHttpStatus, and bytes relayed (both directions).
  int answered() const { return answered_.load(); }
  std::int64_t bytes_relayed() const { return bytes_.load(); }

 private:
  FaultProxy() = default;
  void accept_loop();
  void relay(int client);
  void answer_http(int client);
  Mode mode() const { return mode_.load(); }

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t target_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<Mode> mode_{Mode::kPass};
  std::atomic<std::int64_t> delay_ms_{0};
  std::atomic<int> cut_generation_{0};
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::atomic<int> answered_{0};
  std::atomic<std::int64_t> bytes_{0};
  mutable std::mutex mu_;  // guards answer_ and threads_
  HttpAnswer answer_;
  std::thread acceptor_;
  std::vector<std::thread> threads_;
};

}  // namespace berth::testing

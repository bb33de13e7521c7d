// berth-controller serve as a real process: one serve per data directory, and agent revocation
// over the real agent link with certificates from the controller's own CA.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agentlink/client.h"
#include "common/log.h"
#include "crypto/certs.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace berth;

namespace {

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::string bin(const std::string& name) {
  const char* dir = std::getenv("BERTH_BIN_DIR");
  REQUIRE(dir != nullptr);
  return std::string(dir) + "/" + name;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct TempDir : berth::testing::ScratchDir {
  TempDir() : ScratchDir("berth-serve") {}
};

// berth-controller with stdout+stderr in `log`; killed and reaped on destruction.
struct Process {
  pid_t pid = -1;
  fs::path log;
  Process(std::vector<std::string> args, fs::path log_path) : log(std::move(log_path)) {
    const std::string exe = bin("berth-controller");
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv{const_cast<char*>(exe.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Process() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  // The exit code once it exited by itself within `limit`; nullopt while it still runs.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    std::optional<int> code;
    wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid, &status, WNOHANG) != pid) return false;
          code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          pid = -1;
          return true;
        },
        limit);
    return code;
  }
  std::string output() const { return slurp(log); }
};

int run(std::vector<std::string> args, std::string* output) {
  TempDir tmp;
  Process p(std::move(args), tmp.path / "out");
  auto code = p.wait(30s);
  REQUIRE(code.has_value());
  *output = p.output();
  return *code;
}

std::uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(
      ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

std::vector<std::string> serve_args(const fs::path& data_dir, const fs::path& port_file,
                                    std::uint16_t agent_port = 0) {
  std::vector<std::string> args = {"serve",       "--data-dir",  data_dir.string(), "--listen",
                                   "127.0.0.1:0", "--port-file", port_file.string()};
  if (agent_port != 0) {
    args.push_back("--agent-listen");
    args.push_back("127.0.0.1:" + std::to_string(agent_port));
  }
  return args;
}

struct LogCapture {
  std::shared_ptr<std::mutex> mu = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
  LogCapture() {
    log::set_sink([mu = mu, lines = lines](std::string_view line) {
      std::lock_guard l(*mu);
      lines->emplace_back(line);
    });
  }
  ~LogCapture() { log::set_sink({}); }
  bool contains(const std::string& a, const std::string& b = "") {
    std::lock_guard l(*mu);
    for (const auto& line : *lines)
      if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) return true;
    return false;
  }
  std::string all() {
    std::lock_guard l(*mu);
    std::string out;
    for (const auto& line : *lines) out += line + "\n";
    return out;
  }
};

}  // namespace

TEST_CASE("A second serve on a data directory in use exits non-zero naming the holder's pid",
          "[serve][lock][integration]") {
  TempDir tmp;
  const fs::path data = tmp.path / "data";
  Process first(serve_args(data, tmp.path / "port1"), tmp.path / "first.log");
  REQUIRE(wait_until([&] { return fs::exists(tmp.path / "port1"); }));

  std::string output;
  const int code = run(serve_args(data, tmp.path / "port2"), &output);
  INFO(output);
  CHECK(code != 0);
  CHECK(output.find("in use by berth-controller serve (pid " + std::to_string(first.pid) + ")") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path / "port2"));
  CHECK_FALSE(first.wait(0ms).has_value());  // the first one still runs

  // Once the first one is gone (even by SIGKILL), a new serve starts.
  ::kill(first.pid, SIGKILL);
  REQUIRE(first.wait(10s).has_value());
  Process third(serve_args(data, tmp.path / "port3"), tmp.path / "third.log");
  INFO(third.output());
  CHECK(wait_until([&] { return fs::exists(tmp.path / "port3"); }));
}

TEST_CASE("revoke-agent disconnects a connected agent and refuses it at every later handshake",
          "[serve][revocation][integration]") {
  TempDir tmp;
  const fs::path data = tmp.path / "data";
  const fs::path creds = tmp.path / "creds";
  std::string output;
  REQUIRE(run({"agent-credentials", "--data-dir", data.string(), "--name", "vm-1", "--zone", "eu-1",
               "--out", creds.string()},
              &output) == 0);
  const std::uint16_t agent_port = free_port();
  Process serve(serve_args(data, tmp.path / "port", agent_port), tmp.path / "serve.log");
  REQUIRE(wait_until([&] { return fs::exists(tmp.path / "port"); }));

  LogCapture logs;
  agentlink::ClientOptions o;
  o.url = "wss://127.0.0.1:" + std::to_string(agent_port);
  o.ca_cert_pem = slurp(creds / "ca.crt");
  o.cert_pem = slurp(creds / "agent.crt");
  o.key_pem = Secret(slurp(creds / "agent.key"));
  o.backoff.initial = 100ms;
  o.backoff.cap = 500ms;
  o.hello = [] { return agentlink::Hello{"vm-1", "eu-1", "test", {}}; };
  agentlink::Client client(std::move(o));
  REQUIRE(client.start().ok());
  REQUIRE(wait_until([&] { return client.connected(); }));

  REQUIRE(run({"revoke-agent", "vm-1", "--data-dir", data.string()}, &output) == 0);
  INFO(output);
  INFO(logs.all());
  INFO(serve.output());
  // serve re-reads the list at its next maintenance tick (5 s) and closes the connection.
  REQUIRE(
      wait_until([&] { return logs.contains("agent link closed by the controller", "revoked"); }));
  REQUIRE(
      wait_until([&] { return logs.contains("the controller refused this agent", "revoked"); }));
  CHECK_FALSE(client.connected());
  CHECK(serve.output().find("agent refused") != std::string::npos);
  CHECK(slurp(data / "pki" / "revoked-agents").find("vm-1") != std::string::npos);
}

TEST_CASE("revoke-agent refuses a name that is not a DNS label and a malformed fingerprint",
          "[serve][revocation][integration]") {
  TempDir tmp;
  std::string output;
  CHECK(run({"revoke-agent", "Not_A_Label", "--data-dir", tmp.path.string()}, &output) == 2);
  CHECK(output.find("DNS label") != std::string::npos);
  CHECK(run({"revoke-agent", "vm-1", "--data-dir", tmp.path.string(), "--fingerprint", "abc"},
            &output) == 2);
  CHECK(output.find("fingerprint") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path / "pki" / "revoked-agents"));
}

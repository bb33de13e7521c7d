#include "support/testenv.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace berth::testenv {
namespace {

namespace fs = std::filesystem;

std::string script(const char* name) { return source_dir() + "/hack/testenv/" + name; }

std::string random_hex(std::size_t bytes) {
  std::random_device rd;
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xffU;
    out += digits[v >> 4];
    out += digits[v & 0xfU];
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `data` to a new file that is 0600 from its first byte.
bool write_private(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

std::map<std::string, std::string> parse_env_file(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string base64(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned n = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += table[n & 63];
  }
  if (i + 1 == in.size()) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned n =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string source_dir() {
  if (const char* env = std::getenv("BERTH_SOURCE_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  // Set by tests/CMakeLists.txt. __FILE__ is no substitute: with ccache's base_dir it is relative
  // to the build directory, so a binary run by hand from elsewhere would look in the wrong place
  // and report every peer as missing.
  return BERTH_DEFAULT_SOURCE_DIR;
}

std::string berth_binary(const std::string& name) {
  std::filesystem::path dir;
  if (const char* env = std::getenv("BERTH_BIN_DIR"); env != nullptr && *env != '\0') {
    dir = env;
  } else {
    dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  }
  const std::filesystem::path path = dir / name;
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("berth binary not found: " + path.string() + " (build it first)");
  }
  return path.string();
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/berth-" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed for " + tmpl + ": " + std::strerror(errno));
  }
  return tmpl;
}

int run_command(const std::vector<std::string>& argv, std::string* output,
                const std::vector<std::string>& extra_env, int timeout_seconds) {
  if (argv.empty()) return -1;
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& extra : extra_env) {
    auto name = extra.substr(0, extra.find('=') + 1);
    std::erase_if(env_strings, [&](const std::string& s) { return s.rfind(name, 0) == 0; });
    env_strings.push_back(extra);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    // Long-lived children (the registry) must not keep the test's sockets and files open.
    ::close_range(3, ~0U, 0);
    ::execvpe(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string captured;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  bool killed = false;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    captured.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output != nullptr) *output = std::move(captured);
  if (killed || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// ---------------------------------------------------------------------------------------------
// Registry

Result<Registry> Registry::start(Mode mode) {
  if (const std::string missing =
          missing_peers({mode == Mode::kToken ? Peer::kTokenRegistry : Peer::kRegistry});
      !missing.empty()) {
    return make_error(ErrorCode::kUnavailable, "test registry cannot start: " + missing);
  }
  Registry reg;
  reg.mode_ = mode;
  try {
    reg.dir_ = make_temp_dir("registry");
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kUnavailable, e.what());
  }
  reg.username_ = "berth";
  // A quote and a backslash: the JSON-escaped form differs from the raw one, so a scan for the
  // raw bytes alone would miss a password leaked into a JSON log or body (support/secret_scan.h).
  reg.password_ = "berth-canary-" + random_hex(8) + "\"\\" + random_hex(8);
  const std::string pwfile = reg.dir_ + "/password";
  if (!write_private(pwfile, reg.password_)) {
    return make_error(ErrorCode::kUnavailable, "cannot write the test registry password file");
  }
  std::string out;
  int rc =
      run_command({script("registry.sh"), "start", reg.dir_, "--auth",
                   mode == Mode::kToken ? "token" : "htpasswd"},
                  &out,
                  {"BERTH_REGISTRY_USER=" + reg.username_, "BERTH_REGISTRY_PASSWORD_FILE=" + pwfile,
                   "BERTH_TESTENV_OWNER_PID=" + std::to_string(::getpid())});
  if (rc != 0) {
    return make_error(ErrorCode::kUnavailable, "test registry did not start: " + out);
  }
  auto env = parse_env_file(reg.dir_ + "/env");
  reg.host_ = env["REGISTRY_HOST"];
  reg.token_realm_ = env["TOKEN_REALM"];
  if (reg.host_.empty()) {
    return make_error(ErrorCode::kUnavailable, "test registry wrote no REGISTRY_HOST: " + out);
  }
  return reg;
}

Registry& Registry::shared(Mode mode) {
  // Function-local statics: started on first use, stopped by their destructors at exit.
  static std::map<Mode, std::unique_ptr<Registry>> registries;
  auto& slot = registries[mode];
  if (!slot) {
    auto started = start(mode);
    if (!started.ok()) throw std::runtime_error(started.error().message);
    auto reg = std::make_unique<Registry>(std::move(started).value());
    reg->push_samples();
    slot = std::move(reg);
  }
  return *slot;
}

Registry::Registry(Registry&& other) noexcept
    : mode_(other.mode_),
      dir_(std::exchange(other.dir_, {})),
      host_(std::move(other.host_)),
      username_(std::move(other.username_)),
      password_(std::move(other.password_)),
      token_realm_(std::move(other.token_realm_)),
      digests_(std::move(other.digests_)) {}

Registry& Registry::operator=(Registry&& other) noexcept {
  if (this != &other) {
    stop();
    mode_ = other.mode_;
    dir_ = std::exchange(other.dir_, {});
    host_ = std::move(other.host_);
    username_ = std::move(other.username_);
    password_ = std::move(other.password_);
    token_realm_ = std::move(other.token_realm_);
    digests_ = std::move(other.digests_);
  }
  return *this;
}

Registry::~Registry() { stop(); }

void Registry::stop() noexcept {
  if (dir_.empty()) return;
  try {
    std::string out;
    (void)run_command({script("registry.sh"), "stop", dir_}, &out, {}, 30);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  } catch (...) {
    // Destructors must not throw; a leftover temp dir is harmless.
  }
  dir_.clear();
}

std::string Registry::ca_file() const { return dir_ + "/ca.crt"; }
std::string Registry::ca_dir() const { return dir_ + "/certs"; }

std::string Registry::image(const std::string& tag, const std::string& repository) const {
  return host_ + "/" + repository + ":" + tag;
}

void Registry::write_authfile(const std::string& path) const {
  std::string json =
      "{\"auths\":{\"" + host_ + "\":{\"auth\":\"" + base64(username_ + ":" + password_) + "\"}}}";
  if (!write_private(path, json)) throw std::runtime_error("cannot write auth file " + path);
}

void Registry::push_samples(const std::string& repository) {
  const std::string authfile = dir_ + "/push-auth.json";
  std::string out;
  int rc = 1;
  // docker-registry 2.8 now and then answers a blob check with 500 while another suite loads the
  // machine; a push is idempotent, so the setup tries again before it gives up.
  for (int attempt = 0; attempt < 3 && rc != 0; ++attempt) {
    write_authfile(authfile);
    out.clear();
    rc = run_command({script("sample-image.sh"), host_, authfile, ca_dir(), repository}, &out);
    std::error_code ec;
    fs::remove(authfile, ec);  // the script deletes it too; this covers a script that never ran
  }
  if (rc != 0) throw std::runtime_error("pushing the sample images failed: " + out);
  std::istringstream in(out);
  std::string tag, digest;
  while (in >> tag >> digest) {
    if (digest.rfind("sha256:", 0) == 0) digests_[tag] = digest;
  }
  if (digests_.size() < 3) throw std::runtime_error("sample-image.sh reported: " + out);
}

std::string Registry::digest(const std::string& tag) const {
  auto it = digests_.find(tag);
  if (it == digests_.end()) throw std::runtime_error("sample tag " + tag + " was not pushed");
  return it->second;
}

Result<std::string> Registry::skopeo_digest(const std::string& tag,
                                            const std::string& repository) const {
  const std::string authfile = dir_ + "/inspect-auth-" + random_hex(4) + ".json";
  write_authfile(authfile);
  std::string out;
  int rc = run_command({"skopeo", "inspect", "--format", "{{.Digest}}", "--authfile", authfile,
                        "--cert-dir", ca_dir(), "docker://" + host_ + "/" + repository + ":" + tag},
                       &out, {}, 60);
  std::error_code ec;
  fs::remove(authfile, ec);
  if (rc != 0) return make_error(ErrorCode::kUnavailable, "skopeo inspect failed: " + out);
  return trim(out);
}

// ---------------------------------------------------------------------------------------------
// PodmanEnv

namespace {
constexpr const char* kUnset = "\x01";
const char* kPodmanVars[] = {"CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"};

// Writes the conf files into `dir` through the script (one recipe for shell and C++).
void write_podman_conf(const std::string& dir) {
  std::string out;
  if (run_command({script("podman-conf.sh"), dir}, &out, {}, 30) != 0) {
    throw std::runtime_error("podman-conf.sh failed: " + out);
  }
}
}  // namespace

PodmanEnv::PodmanEnv() : dir_(make_temp_dir("podman")) {
  write_podman_conf(dir_);
  for (const char* var : kPodmanVars) {
    const char* old = std::getenv(var);
    saved_[var] = old != nullptr ? old : kUnset;
  }
  ::setenv("CONTAINERS_CONF", containers_conf().c_str(), 1);
  ::setenv("CONTAINERS_STORAGE_CONF", storage_conf().c_str(), 1);
}

std::vector<std::string> PodmanEnv::env() const {
  return {"CONTAINERS_CONF=" + containers_conf(), "CONTAINERS_STORAGE_CONF=" + storage_conf()};
}

PodmanEnv::~PodmanEnv() {
  try {
    std::string out;
    // Everything in this storage was created through this env, so "all" is exactly ours.
    (void)run_command({"podman", "rm", "--all", "--force", "--time", "0"}, &out, env(), 60);
    (void)run_command({"podman", "pod", "rm", "--all", "--force"}, &out, env(), 30);
    for (const auto& [var, value] : saved_) {
      if (value == kUnset) {
        ::unsetenv(var.c_str());
      } else {
        ::setenv(var.c_str(), value.c_str(), 1);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  } catch (...) {
    // Destructors must not throw; a leftover temp dir is harmless.
  }
}

namespace {
struct PodmanProbe {
  bool usable = false;
  std::string reason;
};

PodmanProbe probe_podman() {
  PodmanProbe probe;
  if (!on_path("podman")) {
    probe.reason = "podman is not installed (not on PATH; apt-get install podman)";
    return probe;
  }
  if (!on_path("/bin/busybox")) {
    probe.reason = "/bin/busybox is missing (apt-get install busybox-static)";
    return probe;
  }
  std::string dir;
  try {
    dir = make_temp_dir("podman-probe");
    write_podman_conf(dir);
  } catch (const std::exception& e) {
    probe.reason = e.what();
    return probe;
  }
  const std::vector<std::string> env = {"CONTAINERS_CONF=" + dir + "/containers.conf",
                                        "CONTAINERS_STORAGE_CONF=" + dir + "/storage.conf"};
  std::string out;
  const std::string rootfs = dir + "/rootfs.tar";
  if (run_command({"tar", "-C", "/", "-cf", rootfs, "bin/busybox"}, &out, {}, 30) != 0) {
    probe.reason = "cannot pack /bin/busybox (is busybox-static installed?): " + out;
  } else if (run_command({"podman", "import", "-q", rootfs, "localhost/berth-probe:latest"}, &out,
                         env, 60) != 0) {
    probe.reason = "podman import failed: " + out;
  } else if (run_command({"podman", "run", "--rm", "-p", "127.0.0.1::8080",
                          "localhost/berth-probe:latest", "/bin/busybox", "true"},
                         &out, env, 60) != 0) {
    probe.reason = "podman cannot run a container here: " + out;
  } else {
    probe.usable = true;
  }
  (void)run_command({"podman", "rm", "--all", "--force", "--time", "0"}, &out, env, 30);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return probe;
}

const PodmanProbe& podman_probe() {
  static const PodmanProbe probe = probe_podman();
  return probe;
}
}  // namespace

bool podman_usable() { return podman_probe().usable; }
std::string podman_unusable_reason() { return podman_probe().reason; }

bool on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return true;
    }
  }
  return false;
}

namespace {
// The programs a peer runs, each with the Debian package that provides it.
struct Program {
  const char* name;
  const char* package;
};
constexpr Program kRegistryPrograms[] = {
    {"docker-registry", "docker-registry"},
    {"htpasswd", "apache2-utils"},
    {"openssl", "openssl"},
    {"curl", "curl"},
    {"/usr/bin/python3", "python3"},
    {"skopeo", "skopeo"},
    {"/bin/busybox", "busybox-static"},
};

std::string missing_programs(const Program* begin, const Program* end) {
  std::string out;
  for (const Program* p = begin; p != end; ++p) {
    if (on_path(p->name)) continue;
    out += std::string(out.empty() ? "" : ", ") + p->name + " (apt-get install " + p->package + ")";
  }
  return out;
}

std::string check_peer(Peer peer) {
  switch (peer) {
    case Peer::kPodman:
      return podman_usable() ? "" : "podman: " + podman_unusable_reason();
    case Peer::kRegistry: {
      const std::string missing =
          missing_programs(std::begin(kRegistryPrograms), std::end(kRegistryPrograms));
      return missing.empty() ? "" : "registry: missing " + missing;
    }
    case Peer::kTokenRegistry: {
      std::string missing = check_peer(Peer::kRegistry);
      if (!missing.empty()) return missing;
      std::string out;
      if (run_command({"/usr/bin/python3", "-c", "import cryptography"}, &out, {}, 30) != 0) {
        return "token registry: python3 cannot import cryptography (apt-get install "
               "python3-cryptography)";
      }
      return "";
    }
  }
  return "unknown peer";
}
}  // namespace

std::string missing_peers(std::initializer_list<Peer> peers) {
  // Peers do not come and go while a test process runs: check each once.
  static std::map<Peer, std::string> checked;
  std::string out;
  for (Peer peer : peers) {
    auto it = checked.find(peer);
    if (it == checked.end()) it = checked.emplace(peer, check_peer(peer)).first;
    if (it->second.empty()) continue;
    out += (out.empty() ? "" : "; ") + it->second;
  }
  return out;
}

}  // namespace berth::testenv

#include "kube/config.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/base64.h"
#include "common/text.h"
#include "kube/config_internal.h"

namespace berth::kube {
namespace internal {
namespace {

constexpr const char* kExecV1 = "client.authentication.k8s.io/v1";
constexpr const char* kExecV1beta1 = "client.authentication.k8s.io/v1beta1";

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// kubeconfig paths are relative to the file that names them, as kubectl resolves them.
std::string resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return dir + "/" + path;
}

// OpenSSL parses PEM here only to tell a broken field apart from a working one at load time;
// the transport loads the same bytes again.
bool has_certificate(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  const bool ok = cert != nullptr;
  X509_free(cert);
  BIO_free(bio);
  ERR_clear_error();
  return ok;
}

bool has_private_key(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  const bool ok = key != nullptr;
  EVP_PKEY_free(key);
  BIO_free(bio);
  ERR_clear_error();
  return ok;
}

// Reads one kubeconfig: every error names the file and the field path.
class Parser {
 public:
  Parser(const std::string& path, const LoadOptions& options, const Environment& env)
      : path_(path), dir_(directory_of(path)), options_(options), env_(env) {}

  Result<ClusterConfig> parse(std::string_view text) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      return make_error(ErrorCode::kInvalidArgument,
                        "kubeconfig " + path_ + ": not valid YAML at line " +
                            std::to_string(e.mark.line + 1) + ", column " +
                            std::to_string(e.mark.column + 1) + ": " + e.msg);
    }
    try {
      return parse_root(root);
    } catch (const YAML::Exception& e) {
      // The checks below look at node types first; this is a last guard.
      return make_error(ErrorCode::kInvalidArgument,
                        "kubeconfig " + path_ + ": unexpected structure: " + e.msg);
    }
  }

 private:
  Error fail(const std::string& field, const std::string& what) const {
    return make_error(ErrorCode::kInvalidArgument,
                      "kubeconfig " + path_ + ": " + field + ": " + what, field);
  }

  // A string field; "" when absent or null.
  Result<std::string> text(const YAML::Node& map, const std::string& prefix, const char* key) {
    const YAML::Node n = map[key];
    if (!n || n.IsNull()) return std::string();
    if (!n.IsScalar()) return fail(prefix + key, "not a string");
    return n.Scalar();
  }

  Result<bool> boolean(const YAML::Node& map, const std::string& prefix, const char* key) {
    const YAML::Node n = map[key];
    if (!n || n.IsNull()) return false;
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value))
      return fail(prefix + key, "not a boolean");
    return value;
  }

  // A "-data" field: base64 in the kubeconfig, as kubectl writes []byte.
  Result<std::string> data(const YAML::Node& map, const std::string& prefix, const char* key) {
    auto t = text(map, prefix, key);
    if (!t.ok() || t->empty()) return t;
    std::string out;
    if (!base64::decode(trim_ascii_whitespace(*t), out)) return fail(prefix + key, "not base64");
    return out;
  }

  Result<std::string> file(const std::string& field, const std::string& path) {
    auto r = env_.read_file(path);
    if (!r.ok()) return fail(field, "cannot read " + path + " (" + r.error().message + ")");
    return r;
  }

  // The index of the entry called `name` in the list `key` ("clusters", "users", "contexts").
  Result<int> find(const YAML::Node& root, const char* key, const std::string& name,
                   const std::string& referrer) {
    const YAML::Node list = root[key];
    if (list && !list.IsNull() && !list.IsSequence()) return fail(key, "not a list");
    if (list && list.IsSequence()) {
      for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string at = std::string(key) + "[" + std::to_string(i) + "]";
        if (!list[i].IsMap()) return fail(at, "not a mapping");
        auto n = text(list[i], at + ".", "name");
        if (!n.ok()) return n.take_error();
        if (*n == name) return static_cast<int>(i);
      }
    }
    std::string singular(key);
    singular.pop_back();
    return fail(referrer, "no " + singular + " named \"" + name + "\"");
  }

  // The map under list[i].<inner> ("clusters[0].cluster").
  Result<YAML::Node> entry(const YAML::Node& root, const char* key, int index, const char* inner) {
    const std::string at = std::string(key) + "[" + std::to_string(index) + "]." + inner;
    const YAML::Node n = root[key][index][inner];
    if (!n || n.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!n.IsMap()) return fail(at, "not a mapping");
    return n;
  }

  Result<ClusterConfig> parse_root(const YAML::Node& root) {
    if (!root || root.IsNull())
      return make_error(ErrorCode::kInvalidArgument, "kubeconfig " + path_ + ": empty file");
    if (!root.IsMap())
      return make_error(
          ErrorCode::kInvalidArgument,
          "kubeconfig " + path_ + ": not a kubeconfig (the top level is not a mapping)");
    std::string context_name = options_.context;
    if (context_name.empty()) {
      auto current = text(root, "", "current-context");
      if (!current.ok()) return current.take_error();
      if (current->empty())
        return fail("current-context", "not set, and no context was chosen (--context)");
      context_name = *current;
    }
    auto ci = find(root, "contexts", context_name,
                   options_.context.empty() ? "current-context" : "context");
    if (!ci.ok()) return ci.take_error();
    auto context = entry(root, "contexts", *ci, "context");
    if (!context.ok()) return context.take_error();
    const std::string cprefix = "contexts[" + std::to_string(*ci) + "].context.";

    auto cluster_name = text(*context, cprefix, "cluster");
    if (!cluster_name.ok()) return cluster_name.take_error();
    if (cluster_name->empty()) return fail(cprefix + "cluster", "not set");
    auto user_name = text(*context, cprefix, "user");
    if (!user_name.ok()) return user_name.take_error();
    auto ns = text(*context, cprefix, "namespace");
    if (!ns.ok()) return ns.take_error();

    ClusterConfig config;
    config.default_namespace = ns->empty() ? "default" : *ns;
    config.origin = "kubeconfig " + path_ + " (context " + context_name + ")";

    auto kl = find(root, "clusters", *cluster_name, cprefix + "cluster");
    if (!kl.ok()) return kl.take_error();
    if (auto s = parse_cluster(root, *kl, config); !s.ok()) return s.error();
    if (!user_name->empty()) {
      auto ui = find(root, "users", *user_name, cprefix + "user");
      if (!ui.ok()) return ui.take_error();
      if (auto s = parse_user(root, *ui, config); !s.ok()) return s.error();
    }
    return config;
  }

  Status parse_cluster(const YAML::Node& root, int index, ClusterConfig& config) {
    auto cluster = entry(root, "clusters", index, "cluster");
    if (!cluster.ok()) return cluster.take_error();
    const std::string p = "clusters[" + std::to_string(index) + "].cluster.";
    auto server = text(*cluster, p, "server");
    if (!server.ok()) return server.take_error();
    if (server->empty()) return fail(p + "server", "not set");
    std::string s = *server;
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    if (s.rfind("https://", 0) != 0)
      return fail(p + "server", "not an https URL (berth talks to the API server over TLS only)");
    if (!parse_server(s)) return fail(p + "server", "not a valid https://host[:port] URL");
    config.server = s;

    auto name = text(*cluster, p, "tls-server-name");
    if (!name.ok()) return name.take_error();
    config.tls_server_name = *name;
    auto insecure = boolean(*cluster, p, "insecure-skip-tls-verify");
    if (!insecure.ok()) return insecure.take_error();
    if (*insecure && !options_.allow_insecure)
      return fail(p + "insecure-skip-tls-verify",
                  "refused: the server's certificate would not be verified (allow it explicitly "
                  "with --insecure-skip-tls-verify)");
    config.insecure_skip_tls_verify = *insecure;

    auto ca_path = text(*cluster, p, "certificate-authority");
    if (!ca_path.ok()) return ca_path.take_error();
    auto ca_data = data(*cluster, p, "certificate-authority-data");
    if (!ca_data.ok()) return ca_data.take_error();
    if (!ca_path->empty() && !ca_data->empty())
      return fail(p + "certificate-authority-data",
                  "certificate-authority is set too; keep only one of them");
    if (!ca_path->empty()) {
      const std::string resolved = resolve(dir_, *ca_path);
      auto pem = file(p + "certificate-authority", resolved);
      if (!pem.ok()) return pem.take_error();
      if (!has_certificate(*pem))
        return fail(p + "certificate-authority", resolved + " holds no PEM certificate");
      config.ca_pem = std::move(*pem);
    } else if (!ca_data->empty()) {
      if (!has_certificate(*ca_data))
        return fail(p + "certificate-authority-data", "no PEM certificate in it");
      config.ca_pem = std::move(*ca_data);
    }
    if (config.insecure_skip_tls_verify && !config.ca_pem.empty())
      return fail(p + "insecure-skip-tls-verify",
                  "set together with a certificate authority; keep only one of them");
    return Status::Ok();
  }

  Status parse_user(const YAML::Node& root, int index, ClusterConfig& config) {
    auto user = entry(root, "users", index, "user");
    if (!user.ok()) return user.take_error();
    const std::string p = "users[" + std::to_string(index) + "].user.";
    for (const char* unsupported : {"auth-provider", "username", "password"}) {
      const YAML::Node n = (*user)[unsupported];
      if (n && !n.IsNull())
        return fail(p + unsupported,
                    "not supported by berth (use a token, a client certificate "
                    "or an exec plugin)");
    }
    if (auto s = parse_client_certificate(*user, p, config); !s.ok()) return s;

    auto token = text(*user, p, "token");
    if (!token.ok()) return token.take_error();
    config.token = Secret(*token);
    wipe_string(*token);
    auto token_file = text(*user, p, "tokenFile");
    if (!token_file.ok()) return token_file.take_error();
    if (!token_file->empty()) {
      if (!config.token.empty()) return fail(p + "tokenFile", "token is set too; keep only one");
      config.token_file = resolve(dir_, *token_file);
      auto contents = file(p + "tokenFile", config.token_file);
      if (!contents.ok()) return contents.take_error();
      wipe_string(*contents);
    }
    const YAML::Node exec = (*user)["exec"];
    if (exec && !exec.IsNull()) {
      if (!config.token.empty() || !config.token_file.empty())
        return fail(p + "exec", "a token is set too; keep only one way to get a token");
      auto e = parse_exec(exec, p + "exec");
      if (!e.ok()) return e.take_error();
      config.exec = std::move(*e);
    }
    return Status::Ok();
  }

  Status parse_client_certificate(const YAML::Node& user, const std::string& p,
                                  ClusterConfig& config) {
    auto cert_path = text(user, p, "client-certificate");
    if (!cert_path.ok()) return cert_path.take_error();
    auto cert_data = data(user, p, "client-certificate-data");
    if (!cert_data.ok()) return cert_data.take_error();
    auto key_path = text(user, p, "client-key");
    if (!key_path.ok()) return key_path.take_error();
    auto key_data = data(user, p, "client-key-data");
    if (!key_data.ok()) return key_data.take_error();
    Secret key(*key_data);
    wipe_string(*key_data);

    if (!cert_path->empty() && !cert_data->empty())
      return fail(p + "client-certificate-data", "client-certificate is set too; keep only one");
    if (!key_path->empty() && !key.empty())
      return fail(p + "client-key-data", "client-key is set too; keep only one");
    if (!cert_path->empty()) {
      const std::string resolved = resolve(dir_, *cert_path);
      auto pem = file(p + "client-certificate", resolved);
      if (!pem.ok()) return pem.take_error();
      if (!has_certificate(*pem))
        return fail(p + "client-certificate", resolved + " holds no PEM certificate");
      config.client_cert_pem = std::move(*pem);
    } else if (!cert_data->empty()) {
      if (!has_certificate(*cert_data))
        return fail(p + "client-certificate-data", "no PEM certificate in it");
      config.client_cert_pem = std::move(*cert_data);
    }
    if (!key_path->empty()) {
      const std::string resolved = resolve(dir_, *key_path);
      auto pem = file(p + "client-key", resolved);
      if (!pem.ok()) return pem.take_error();
      key = Secret(*pem);
      wipe_string(*pem);
      if (!has_private_key(key.reveal()))
        return fail(p + "client-key", resolved + " holds no PEM private key");
    } else if (!key.empty() && !has_private_key(key.reveal())) {
      return fail(p + "client-key-data", "no PEM private key in it");
    }
    if (!config.client_cert_pem.empty() && key.empty())
      return fail(p + "client-key", "not set, but a client certificate is");
    if (config.client_cert_pem.empty() && !key.empty())
      return fail(p + "client-certificate", "not set, but a client key is");
    config.client_key_pem = std::move(key);
    return Status::Ok();
  }

  Result<ExecConfig> parse_exec(const YAML::Node& exec, const std::string& at) {
    if (!exec.IsMap()) return fail(at, "not a mapping");
    const std::string p = at + ".";
    ExecConfig out;
    auto command = text(exec, p, "command");
    if (!command.ok()) return command.take_error();
    if (command->empty()) return fail(p + "command", "not set");
    // As kubectl does: a command with a slash in it is a path relative to the kubeconfig; a bare
    // name is looked up on PATH.
    out.command = command->find('/') == std::string::npos ? *command : resolve(dir_, *command);

    auto api = text(exec, p, "apiVersion");
    if (!api.ok()) return api.take_error();
    if (*api != kExecV1 && *api != kExecV1beta1)
      return fail(p + "apiVersion",
                  api->empty() ? std::string("not set")
                               : "\"" + *api + "\" is not " + kExecV1 + " or " + kExecV1beta1);
    out.api_version = *api;

    const YAML::Node args = exec["args"];
    if (args && !args.IsNull()) {
      if (!args.IsSequence()) return fail(p + "args", "not a list");
      for (std::size_t i = 0; i < args.size(); ++i) {
        if (!args[i].IsScalar()) return fail(p + "args[" + std::to_string(i) + "]", "not a string");
        out.args.push_back(args[i].Scalar());
      }
    }
    const YAML::Node env = exec["env"];
    if (env && !env.IsNull()) {
      if (!env.IsSequence()) return fail(p + "env", "not a list");
      for (std::size_t i = 0; i < env.size(); ++i) {
        const std::string ep = p + "env[" + std::to_string(i) + "]";
        if (!env[i].IsMap()) return fail(ep, "not a mapping");
        auto name = text(env[i], ep + ".", "name");
        if (!name.ok()) return name.take_error();
        if (name->empty() || name->find('=') != std::string::npos)
          return fail(ep + ".name", "not a variable name");
        auto value = text(env[i], ep + ".", "value");
        if (!value.ok()) return value.take_error();
        out.env.emplace_back(*name, *value);
      }
    }
    auto mode = text(exec, p, "interactiveMode");
    if (!mode.ok()) return mode.take_error();
    if (mode->empty()) {
      // v1 makes the field required; v1beta1 defaults it (client-go: IfAvailable).
      if (out.api_version == kExecV1)
        return fail(p + "interactiveMode", "not set (required in v1)");
      *mode = "IfAvailable";
    }
    if (*mode != "Never" && *mode != "IfAvailable" && *mode != "Always")
      return fail(p + "interactiveMode", "\"" + *mode + "\" is not Never, IfAvailable or Always");
    if (*mode == "Always")
      return fail(p + "interactiveMode",
                  "Always needs a terminal, and berth runs exec plugins without one");
    out.interactive_mode = *mode;
    auto cluster_info = boolean(exec, p, "provideClusterInfo");
    if (!cluster_info.ok()) return cluster_info.take_error();
    out.provide_cluster_info = *cluster_info;
    return out;
  }

  const std::string& path_;
  const std::string dir_;
  const LoadOptions& options_;
  const Environment& env_;
};

}  // namespace

std::optional<ServerAddress> parse_server(std::string_view server) {
  constexpr std::string_view kScheme = "https://";
  if (server.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  std::string_view rest = server.substr(kScheme.size());
  const auto path_at = rest.find('/');
  std::string_view authority = rest.substr(0, path_at);
  std::string_view path = path_at == std::string_view::npos ? "" : rest.substr(path_at);
  if (path.find_first_of("?#") != std::string_view::npos) return std::nullopt;
  if (authority.find('@') != std::string_view::npos) return std::nullopt;
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);

  ServerAddress out;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
      if (port.empty()) return std::nullopt;
    }
    out.host_header = "[" + out.host + "]";
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    }
    out.host_header = out.host;
  }
  if (out.host.empty()) return std::nullopt;
  if (out.host.find_first_of(" \t/\\") != std::string::npos) return std::nullopt;
  if (!port.empty()) {
    if (!all_digits(port) || port.size() > 5 || std::stoi(std::string(port)) < 1 ||
        std::stoi(std::string(port)) > 65535)
      return std::nullopt;
    out.port = std::string(port);
  } else {
    out.port = "443";
  }
  out.host_header += ":" + out.port;
  out.path_prefix = std::string(path);
  return out;
}

Environment process_environment() {
  Environment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  env.read_file = [](const std::string& path) -> Result<std::string> {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int err = errno;
      return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                        std::strerror(err));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return make_error(ErrorCode::kUnavailable, "read error");
    return ss.str();
  };
  return env;
}

Result<ClusterConfig> parse_kubeconfig(std::string_view text, const std::string& path,
                                       const LoadOptions& options, const Environment& env) {
  return Parser(path, options, env).parse(text);
}

Result<ClusterConfig> load_kubeconfig(const std::string& path, const LoadOptions& options,
                                      const Environment& env) {
  auto text = env.read_file(path);
  if (!text.ok()) {
    Error e = text.take_error();
    e.message = "kubeconfig " + path + ": cannot read it (" + e.message + ")";
    if (e.code != ErrorCode::kNotFound) e.code = ErrorCode::kInvalidArgument;
    return e;
  }
  auto config = parse_kubeconfig(*text, path, options, env);
  // The file may hold tokens and keys.
  wipe_string(*text);
  return config;
}

Result<ClusterConfig> load_in_cluster(const LoadOptions& options, const Environment& env) {
  const auto host = env.getenv("KUBERNETES_SERVICE_HOST");
  const auto port = env.getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty())
    return make_error(ErrorCode::kNotFound,
                      "in-cluster: not running in a cluster (KUBERNETES_SERVICE_HOST and "
                      "KUBERNETES_SERVICE_PORT are not both set)");
  const bool ipv6 = host->find(':') != std::string::npos;
  ClusterConfig config;
  config.server = "https://" + (ipv6 ? "[" + *host + "]" : *host) + ":" + *port;
  if (!parse_server(config.server))
    return make_error(ErrorCode::kInvalidArgument,
                      "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT do not form "
                      "a valid address (" +
                          config.server + ")");
  const std::string& dir = options.service_account_dir;
  config.token_file = dir + "/token";
  auto token = env.read_file(config.token_file);
  if (!token.ok())
    return make_error(ErrorCode::kInvalidArgument,
                      "in-cluster: cannot read the service-account "
                      "token " +
                          config.token_file + " (" + token.error().message + ")");
  wipe_string(*token);
  const std::string ca_file = dir + "/ca.crt";
  auto ca = env.read_file(ca_file);
  if (!ca.ok())
    return make_error(ErrorCode::kInvalidArgument, "in-cluster: cannot read the cluster CA " +
                                                       ca_file + " (" + ca.error().message + ")");
  if (!has_certificate(*ca))
    return make_error(ErrorCode::kInvalidArgument,
                      "in-cluster: " + ca_file + " holds no PEM certificate");
  config.ca_pem = std::move(*ca);
  auto ns = env.read_file(dir + "/namespace");
  config.default_namespace = ns.ok() ? std::string(trim_ascii_whitespace(*ns)) : std::string();
  if (config.default_namespace.empty()) config.default_namespace = "default";
  config.origin = "in-cluster";
  return config;
}

Result<ClusterConfig> load_config(const LoadOptions& options, const Environment& env) {
  if (!options.kubeconfig.empty()) return load_kubeconfig(options.kubeconfig, options, env);
  if (auto list = env.getenv("KUBECONFIG"); list && !list->empty()) {
    // Only the first file of the list: berth does not merge kubeconfigs as kubectl does.
    std::stringstream ss(*list);
    std::string first;
    while (std::getline(ss, first, ':') && first.empty()) {
    }
    if (!first.empty()) return load_kubeconfig(first, options, env);
  }
  if (auto host = env.getenv("KUBERNETES_SERVICE_HOST"); host && !host->empty())
    return load_in_cluster(options, env);
  if (auto home = env.getenv("HOME"); home && !home->empty()) {
    const std::string path = *home + "/.kube/config";
    auto config = load_kubeconfig(path, options, env);
    if (config.ok() || config.error().code != ErrorCode::kNotFound) return config;
  }
  return make_error(ErrorCode::kNotFound,
                    "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a "
                    "cluster, or create ~/.kube/config");
}

}  // namespace internal

Result<ClusterConfig> load_kubeconfig(const std::string& path, const LoadOptions& options) {
  return internal::load_kubeconfig(path, options, internal::process_environment());
}

Result<ClusterConfig> load_in_cluster(const LoadOptions& options) {
  return internal::load_in_cluster(options, internal::process_environment());
}

Result<ClusterConfig> load_config(const LoadOptions& options) {
  return internal::load_config(options, internal::process_environment());
}

}  // namespace berth::kube

#pragma once
// The seams of kube/config.h, for the transport and for unit tests: the server address parser,
// and the loaders with the process environment and the file system passed in (tests give them
// a map in memory; the public functions give them getenv and the real files).
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "kube/config.h"

namespace berth::kube::internal {

// "https://host[:port][/prefix]" split up. IPv6 hosts are written in brackets and kept here
// without them.
struct ServerAddress {
  std::string host;         // "10.0.0.1", "::1", "api.example.com"
  std::string port;         // "443" when the URL has none
  std::string path_prefix;  // "" or "/k8s/clusters/c-1" (no trailing slash)
  std::string host_header;  // "host:port", IPv6 in brackets
};

// nullopt unless `server` is an https URL with a host, an optional numeric port (1-65535) and
// an optional path; no query, fragment or user info.
std::optional<ServerAddress> parse_server(std::string_view server);

struct Environment {
  // The value of an environment variable, nullopt when unset.
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  // The contents of a file; kNotFound when it does not exist, kUnavailable when unreadable.
  std::function<Result<std::string>(const std::string& path)> read_file;
};

// getenv(3) and the real file system.
Environment process_environment();

Result<ClusterConfig> parse_kubeconfig(std::string_view text, const std::string& path,
                                       const LoadOptions& options, const Environment& env);
Result<ClusterConfig> load_kubeconfig(const std::string& path, const LoadOptions& options,
                                      const Environment& env);
Result<ClusterConfig> load_in_cluster(const LoadOptions& options, const Environment& env);
Result<ClusterConfig> load_config(const LoadOptions& options, const Environment& env);

}  // namespace berth::kube::internal

// Kubeconfig YAML (kube/config_internal.h parse_kubeconfig), the file a user hands the
// controller with --kubeconfig or $KUBECONFIG. Nothing outside the text is read: the
// environment is empty and every referenced file is missing. Contract checked: any text loads or
// fails with an error value (yaml-cpp's exceptions stay inside config.cpp), and a loaded
// config names an https server parse_server accepts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "kube/config_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace internal = berth::kube::internal;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  internal::Environment env;
  env.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  env.read_file = [](const std::string& path) -> berth::Result<std::string> {
    return berth::make_error(berth::ErrorCode::kNotFound, path + " does not exist");
  };
  for (bool insecure : {false, true}) {
    berth::kube::LoadOptions options;
    options.allow_insecure = insecure;
    auto config = internal::parse_kubeconfig(text, "/fuzz/config", options, env);
    if (!config) continue;
    FUZZ_CHECK(internal::parse_server(config->server).has_value());
    FUZZ_CHECK(insecure || !config->insecure_skip_tls_verify);
  }
  (void)internal::parse_server(text);
  return 0;
}

#pragma once
// core::DigestResolver over the OCI registry client: the controller pins every revision to the
// manifest digest before an agent pulls it (SPEC section 6).
#include "core/execution.h"
#include "registry/client.h"

namespace berth::controller {

class RegistryDigestResolver final : public core::DigestResolver {
 public:
  explicit RegistryDigestResolver(registry::RegistryOptions options)
      : options_(std::move(options)) {}
  Result<std::string> resolve(const std::string& image_ref,
                              const core::RegistryLogin* login) override;

 private:
  registry::RegistryOptions options_;
};

}  // namespace berth::controller

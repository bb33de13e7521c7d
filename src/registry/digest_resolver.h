#pragma once
// core::DigestResolver over the OCI registry client: the controller pins every revision to the
// manifest digest before an agent pulls it (SPEC section 6), and the API checks a new
// registry password with it before storing it. The composition root makes one per use, each
// with its own deadline (RegistryOptions::timeout).
//
// Thread-safe (resolve_digest keeps no state between calls); errors as in registry/client.h.
#include "core/execution.h"
#include "registry/client.h"

namespace berth::registry {

class RegistryDigestResolver final : public core::DigestResolver {
 public:
  explicit RegistryDigestResolver(RegistryOptions options) : options_(std::move(options)) {}
  Result<std::string> resolve(const std::string& image_ref,
                              const core::RegistryLogin* login) override;

 private:
  RegistryOptions options_;
};

}  // namespace berth::registry

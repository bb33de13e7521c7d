#include "registry/digest_resolver.h"

#include "common/pause_point.h"
#include "core/image_ref.h"

namespace berth::registry {

Result<std::string> RegistryDigestResolver::resolve(const std::string& image_ref,
                                                    const core::RegistryLogin* login) {
  pause_point("resolve");  // tests/crash
  auto ref = core::parse_image_ref(image_ref);
  if (!ref.ok()) return ref.error();
  std::optional<RegistryCredential> cred;
  if (login != nullptr) cred = RegistryCredential{login->username, login->password};
  auto info = resolve_digest(*ref, cred, options_);
  if (!info.ok()) return info.error();
  return info->digest;
}

}  // namespace berth::registry

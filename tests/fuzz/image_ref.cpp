// Image references as API callers and AppService specs write them (core/image_ref.h).
// Contract checked: any bytes parse or fail with kValidation naming the field; an accepted
// reference is a fixed point (its normalized and familiar forms parse back to it); the input is
// never quoted in an error (a pasted URL can carry a password: "s3cr3t" stands for one).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/image_ref.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using berth::core::parse_image_ref;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)berth::core::is_ecr_host(text);
  auto ref = parse_image_ref(text, "app_config.image_ref");
  if (!ref) {
    const auto& e = ref.error();
    FUZZ_CHECK(e.code == berth::ErrorCode::kValidation);
    FUZZ_CHECK(e.field == "app_config.image_ref");
    FUZZ_CHECK(e.message.rfind("app_config.image_ref: ", 0) == 0);
    FUZZ_CHECK(e.message.find('\n') == std::string::npos);
    FUZZ_CHECK(text.find("s3cr3t") == std::string_view::npos ||
               e.message.find("s3cr3t") == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(!ref->registry_host.empty());
  FUZZ_CHECK(!ref->repository.empty());
  auto again = parse_image_ref(ref->normalized());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == *ref);
  // The short form names the same image (docker.io/ kept when the path would read as a host).
  auto familiar = parse_image_ref(ref->familiar());
  FUZZ_CHECK(familiar.ok());
  FUZZ_CHECK(*familiar == *ref);
  auto tagged = parse_image_ref(ref->with_default_tag());
  FUZZ_CHECK(tagged.ok());
  FUZZ_CHECK(tagged->name() == ref->name());
  FUZZ_CHECK(!ref->auth_keys().empty());
  const std::string digest = "sha256:" + std::string(64, 'a');
  auto pinned = parse_image_ref(ref->pinned(digest));
  FUZZ_CHECK(pinned.ok());
  FUZZ_CHECK(pinned->name() == ref->name() && pinned->digest == digest);
  return 0;
}

#pragma once
// Sealing of registry passwords at rest: AES-256-GCM (OpenSSL EVP), a fresh random 96-bit
// nonce per seal, associated data binding the ciphertext to (app service id, registry host,
// username), and the id of the master key beside each ciphertext so keys can be rotated.
//
// Errors: a missing, short or unreadable key file, a wrong key, a tampered ciphertext or wrong
// associated data all come back as Error (kDataLoss / kFailedPrecondition) with a clear
// sentence; unseal never returns garbage. Thread-safe after construction (const methods).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/secret.h"

namespace berth::crypto {

struct SealedBlob {
  std::string key_id;                    // which master key sealed it
  std::vector<std::uint8_t> nonce;       // 12 bytes
  std::vector<std::uint8_t> ciphertext;  // ciphertext followed by the 16-byte GCM tag
};

// The associated data for a registry credential.
std::string credential_aad(std::string_view service_id, std::string_view registry_host,
                           std::string_view username);

class Keyring {
 public:
  // Loads the master key at `key_file`, creating it (32 random bytes, mode 0600, parent
  // directory created 0700) when it does not exist. Also loads `<key_file>.next` when present
  // (a rotation that has not finished), so that ciphertexts under either key stay readable.
  static Result<Keyring> load_or_create(const std::filesystem::path& key_file);
  // Loads an existing key file; a missing file is an error.
  static Result<Keyring> load(const std::filesystem::path& key_file);
  // A keyring holding one in-memory key (exactly 32 bytes, else kInvalidArgument), e.g. a key
  // handed over by Kubernetes or a test. It has no key file, so rotation is kFailedPrecondition.
  static Result<Keyring> from_key(const Secret& key);

  // The id of the key new seals use: the first 16 hex digits of SHA-256(key).
  const std::string& current_key_id() const { return current_id_; }
  bool has_key(std::string_view key_id) const;

  Result<SealedBlob> seal(const Secret& plaintext, std::string_view aad) const;
  Result<Secret> unseal(const SealedBlob& blob, std::string_view aad) const;

  // Rotation, in three steps so a crash at any point loses nothing:
  //   1. begin_rotation(): writes a new key to `<key_file>.next` (0600) and makes it current
  //      for seal(); the old key stays loaded for unseal().
  //   2. the caller re-seals every ciphertext in one database transaction and commits.
  //   3. finish_rotation(): atomically renames `<key_file>.next` over `<key_file>`.
  //
  // begin_rotation() while `<key_file>.next` already exists resumes that rotation (the key on
  // disk becomes current) instead of generating another key. finish_rotation() when the key
  // file already holds the current key (a repeated call after a crash) drops the other keys
  // and succeeds. Neither is thread-safe against concurrent seal()/unseal() on this object.
  Status begin_rotation();
  Status finish_rotation();

  Keyring(Keyring&&) noexcept = default;
  Keyring& operator=(Keyring&&) noexcept = default;
  ~Keyring();

 private:
  Keyring() = default;
  std::filesystem::path key_file_;
  std::map<std::string, Secret, std::less<>> keys_;  // key id -> 32 key bytes
  std::string current_id_;
};

}  // namespace berth::crypto

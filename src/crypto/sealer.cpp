#include "crypto/sealer.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/hex.h"
#include "common/log.h"
#include "crypto/files.h"

namespace berth::crypto {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kKeyIdHex = 16;
// Sealed values are passwords and registry tokens; the bound keeps every length inside an int.
constexpr std::size_t kMaxPlaintext = 1 << 20;
constexpr std::string_view kAadDomain = "berth.credential.v1";

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx new_ctx() { return CipherCtx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free); }

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

fs::path next_path(const fs::path& key_file) { return fs::path(key_file.string() + ".next"); }

std::string key_id_of(const Secret& key) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(key.reveal().data(), key.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  return hex_lower(md, kKeyIdHex / 2);
}

// Reads and checks one key file. kNotFound when it does not exist.
Result<Secret> read_key(const fs::path& path) {
  auto key = detail::read_file(path, kKeyBytes, /*require_private=*/true);
  if (!key.ok()) {
    Error err = key.take_error();
    if (err.code == ErrorCode::kDataLoss) {
      err.message = "master key file " + path.string() + " is longer than " +
                    std::to_string(kKeyBytes) + " bytes; it is corrupt or not a berth key";
    }
    return err;
  }
  if (key->size() != kKeyBytes) {
    return make_error(ErrorCode::kDataLoss, "master key file " + path.string() + " holds " +
                                                std::to_string(key->size()) +
                                                " bytes; a master key is exactly " +
                                                std::to_string(kKeyBytes) + " bytes");
  }
  return std::move(key).value();
}

Result<Secret> new_key() {
  std::array<unsigned char, kKeyBytes> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    return make_error(ErrorCode::kInternal, "the random number generator failed");
  }
  Secret key(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  OPENSSL_cleanse(raw.data(), raw.size());
  return key;
}

void append_field(std::string& out, std::string_view field) {
  const auto n = static_cast<std::uint32_t>(field.size());
  out += static_cast<char>((n >> 24) & 0xFF);
  out += static_cast<char>((n >> 16) & 0xFF);
  out += static_cast<char>((n >> 8) & 0xFF);
  out += static_cast<char>(n & 0xFF);
  out += field;
}

Error unseal_failed() {
  return make_error(ErrorCode::kDataLoss,
                    "the sealed value failed authentication: it was sealed under a different key "
                    "or for a different service, registry or username, or it was modified");
}

}  // namespace

std::string credential_aad(std::string_view service_id, std::string_view registry_host,
                           std::string_view username) {
  std::string aad;
  aad.reserve(kAadDomain.size() + 12 + service_id.size() + registry_host.size() + username.size());
  append_field(aad, kAadDomain);
  append_field(aad, service_id);
  append_field(aad, registry_host);
  append_field(aad, username);
  return aad;
}

Keyring::~Keyring() = default;

Result<Keyring> Keyring::from_key(const Secret& key) {
  if (key.size() != kKeyBytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      "a master key is exactly " + std::to_string(kKeyBytes) + " bytes");
  }
  Keyring ring;
  ring.current_id_ = key_id_of(key);
  if (ring.current_id_.empty()) return make_error(ErrorCode::kInternal, "SHA-256 failed");
  ring.keys_.emplace(ring.current_id_, key);
  return ring;
}

Result<Keyring> Keyring::load_or_create(const fs::path& key_file) {
  if (key_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "the master key file path is empty");
  }
  const fs::path parent = key_file.parent_path();
  if (!parent.empty()) {
    if (Status st = detail::ensure_private_dir(parent); !st.ok()) return st.error();
  }
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(key_file, ec))) {
    if (fs::exists(fs::symlink_status(next_path(key_file), ec))) {
      // Rotation renames .next over the key file, so this state means the key file was lost;
      // a fresh key would hide that.
      return make_error(ErrorCode::kFailedPrecondition,
                        "master key file " + key_file.string() + " is missing but " +
                            next_path(key_file).string() + " exists; restore the key file");
    }
    auto key = new_key();
    if (!key.ok()) return key.error();
    Status st = detail::create_file_exclusive(key_file, key->reveal(), 0600);
    if (st.ok()) {
      log::info("created master key", {{"path", key_file.string()}, {"key_id", key_id_of(*key)}});
    } else if (st.error().code != ErrorCode::kConflict) {
      // kConflict: another process created it first; load that one.
      return st.error();
    }
  }
  return load(key_file);
}

Result<Keyring> Keyring::load(const fs::path& key_file) {
  auto key = read_key(key_file);
  if (!key.ok()) {
    if (key.error().code == ErrorCode::kNotFound) {
      return make_error(ErrorCode::kFailedPrecondition,
                        "master key file " + key_file.string() + " does not exist");
    }
    return key.error();
  }
  Keyring ring;
  ring.key_file_ = key_file;
  ring.current_id_ = key_id_of(*key);
  if (ring.current_id_.empty()) return make_error(ErrorCode::kInternal, "SHA-256 failed");
  ring.keys_.emplace(ring.current_id_, std::move(key).value());

  const fs::path next = next_path(key_file);
  auto next_key = read_key(next);
  if (next_key.ok()) {
    // An unfinished rotation: part of the data may already be sealed under the new key.
    const std::string next_id = key_id_of(*next_key);
    log::warn("unfinished master key rotation; both keys loaded",
              {{"key_id", ring.current_id_}, {"next_key_id", next_id}});
    ring.current_id_ = next_id;
    ring.keys_.emplace(next_id, std::move(next_key).value());
  } else if (next_key.error().code != ErrorCode::kNotFound) {
    return next_key.error();
  }
  return ring;
}

bool Keyring::has_key(std::string_view key_id) const { return keys_.find(key_id) != keys_.end(); }

Result<SealedBlob> Keyring::seal(const Secret& plaintext, std::string_view aad) const {
  const auto key = keys_.find(current_id_);
  if (key == keys_.end()) return make_error(ErrorCode::kFailedPrecondition, "no master key loaded");
  if (plaintext.size() > kMaxPlaintext || aad.size() > kMaxPlaintext) {
    return make_error(ErrorCode::kInvalidArgument, "the value to seal is too large");
  }
  SealedBlob blob;
  blob.key_id = current_id_;
  blob.nonce.resize(kNonceBytes);
  if (RAND_bytes(blob.nonce.data(), static_cast<int>(kNonceBytes)) != 1) {
    return make_error(ErrorCode::kInternal, "the random number generator failed");
  }
  blob.ciphertext.resize(plaintext.size() + kTagBytes);

  CipherCtx ctx = new_ctx();
  int len = 0;
  int total = 0;
  const bool ok =
      ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key->second.reveal()),
                         blob.nonce.data()) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), blob.ciphertext.data(), &len, bytes(plaintext.reveal()),
                        static_cast<int>(plaintext.size())) == 1 &&
      (total = len, EVP_EncryptFinal_ex(ctx.get(), blob.ciphertext.data() + total, &len) == 1) &&
      (total += len, static_cast<std::size_t>(total) == plaintext.size()) &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          blob.ciphertext.data() + total) == 1;
  if (!ok) {
    ERR_clear_error();
    return make_error(ErrorCode::kInternal, "AES-256-GCM encryption failed");
  }
  return blob;
}

Result<Secret> Keyring::unseal(const SealedBlob& blob, std::string_view aad) const {
  const auto key = keys_.find(blob.key_id);
  if (key == keys_.end()) {
    return make_error(ErrorCode::kDataLoss,
                      "the value was sealed under master key " + blob.key_id +
                          ", which is not loaded; restore that key file or set the value again");
  }
  if (blob.nonce.size() != kNonceBytes || blob.ciphertext.size() < kTagBytes ||
      blob.ciphertext.size() - kTagBytes > kMaxPlaintext || aad.size() > kMaxPlaintext) {
    return make_error(ErrorCode::kDataLoss,
                      "the sealed value is malformed (wrong nonce or "
                      "ciphertext length)");
  }
  const std::size_t n = blob.ciphertext.size() - kTagBytes;
  // The tag is passed to OpenSSL from a copy because EVP_CTRL_GCM_SET_TAG takes a non-const
  // pointer.
  std::array<unsigned char, kTagBytes> tag{};
  std::copy(blob.ciphertext.begin() + static_cast<std::ptrdiff_t>(n), blob.ciphertext.end(),
            tag.begin());
  std::string plain(n, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plain.data());

  CipherCtx ctx = new_ctx();
  int len = 0;
  int total = 0;
  bool setup =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key->second.reveal()),
                         blob.nonce.data()) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), out, &len, blob.ciphertext.data(), static_cast<int>(n)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1;
  total = len;
  // The tag is checked here; nothing decrypted leaves this function unless it passes.
  const bool authentic = setup && EVP_DecryptFinal_ex(ctx.get(), out + total, &len) == 1;
  if (!authentic) {
    OPENSSL_cleanse(plain.data(), plain.size());
    ERR_clear_error();  // a stale entry would confuse the next TLS call on this thread
    if (!setup) return make_error(ErrorCode::kInternal, "AES-256-GCM decryption failed");
    return unseal_failed();
  }
  Secret result(plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  return result;
}

Status Keyring::begin_rotation() {
  if (key_file_.empty()) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "this master key has no key file, so it cannot be rotated here");
  }
  const fs::path next = next_path(key_file_);
  auto existing = read_key(next);
  if (!existing.ok() && existing.error().code != ErrorCode::kNotFound) return existing.error();
  if (!existing.ok()) {
    auto key = new_key();
    if (!key.ok()) return key.error();
    // Created whole or not at all (temp file, fsync, link, directory fsync), and never over a
    // .next another process wrote in the meantime.
    Status st = detail::create_file_exclusive(next, key->reveal(), 0600);
    if (!st.ok() && st.error().code != ErrorCode::kConflict) return st;
    existing = read_key(next);
    if (!existing.ok()) return existing.error();
  }
  const std::string id = key_id_of(*existing);
  if (id.empty()) return make_error(ErrorCode::kInternal, "SHA-256 failed");
  keys_.insert_or_assign(id, std::move(existing).value());
  current_id_ = id;
  log::info("master key rotation begun", {{"next_key_id", id}});
  return Status::Ok();
}

Status Keyring::finish_rotation() {
  if (key_file_.empty()) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "this master key has no key file, so it cannot be rotated here");
  }
  const fs::path next = next_path(key_file_);
  auto next_key = read_key(next);
  if (next_key.ok()) {
    if (key_id_of(*next_key) != current_id_) {
      return make_error(ErrorCode::kFailedPrecondition,
                        next.string() +
                            " is not the key this process seals with; reload the "
                            "keyring and re-seal before finishing the rotation");
    }
    if (::rename(next.c_str(), key_file_.c_str()) != 0) {
      return make_error(ErrorCode::kInternal,
                        "cannot rename " + next.string() + " over " + key_file_.string() + ": " +
                            std::error_code(errno, std::generic_category()).message());
    }
    const fs::path parent = key_file_.parent_path();
    if (Status st = detail::fsync_dir(parent.empty() ? fs::path(".") : parent); !st.ok()) {
      return st;
    }
  } else if (next_key.error().code == ErrorCode::kNotFound) {
    // Nothing to rename: fine when an earlier call already renamed (e.g. it crashed afterwards).
    auto current = read_key(key_file_);
    if (!current.ok()) return current.error();
    if (key_id_of(*current) != current_id_) {
      return make_error(ErrorCode::kFailedPrecondition, "no master key rotation is in progress");
    }
  } else {
    return next_key.error();
  }
  for (auto it = keys_.begin(); it != keys_.end();) {
    it = it->first == current_id_ ? std::next(it) : keys_.erase(it);
  }
  log::info("master key rotation finished", {{"key_id", current_id_}});
  return Status::Ok();
}

}  // namespace berth::crypto

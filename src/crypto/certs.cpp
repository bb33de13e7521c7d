#include "crypto/certs.h"

#include <chrono>
#include <ctime>
#include <memory>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/hex.h"
#include "crypto/files.h"

namespace berth::crypto {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxNameField = 64;  // ub-common-name / ub-organizational-unit-name
constexpr std::size_t kMaxPemFile = 64 * 1024;
constexpr int kSerialBytes = 16;

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using PKeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using NamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME, GENERAL_NAME_free>>;

// Builds an error from OpenSSL's thread-local error queue and empties the queue, so a stale
// entry cannot confuse a later TLS call on this thread.
Error ossl_error(ErrorCode code, std::string what) {
  const unsigned long e = ERR_peek_last_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    what += " (";
    what += buf;
    what += ")";
  }
  ERR_clear_error();
  return make_error(code, std::move(what));
}

Result<X509Ptr> parse_cert(std::string_view pem) {
  if (pem.size() > kMaxPemFile)
    return make_error(ErrorCode::kInvalidArgument, "certificate PEM is too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ossl_error(ErrorCode::kInternal, "cannot allocate a BIO");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return ossl_error(ErrorCode::kInvalidArgument, "not a PEM certificate");
  return cert;
}

Result<PKeyPtr> parse_key(const Secret& pem) {
  if (pem.size() > kMaxPemFile)
    return make_error(ErrorCode::kInvalidArgument, "private key PEM is too large");
  BioPtr bio(BIO_new_mem_buf(pem.reveal().data(), static_cast<int>(pem.size())));
  if (!bio) return ossl_error(ErrorCode::kInternal, "cannot allocate a BIO");
  // A null password callback with an empty passphrase: encrypted keys are refused, not prompted.
  char empty[] = "";
  PKeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, empty));
  if (!key) return ossl_error(ErrorCode::kInvalidArgument, "not an unencrypted PEM private key");
  return key;
}

Result<std::string> cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot encode the certificate as PEM");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Result<Secret> key_pem(EVP_PKEY* key) {
  // Secure-heap memory BIO: OpenSSL cleanses it when it is freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot encode the private key as PEM");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return Secret(std::string_view(data, static_cast<std::size_t>(n)));
}

Result<PKeyPtr> new_p256_key() {
  PKeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return ossl_error(ErrorCode::kInternal, "cannot generate an ECDSA P-256 key");
  return key;
}

Status check_name_field(std::string_view value, const char* what, bool required) {
  if (value.empty() && !required) return Status::Ok();
  if (value.empty() || value.size() > kMaxNameField) {
    return make_error(
        ErrorCode::kInvalidArgument,
        std::string(what) + " must be 1 to " + std::to_string(kMaxNameField) + " characters");
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7F) {
      return make_error(ErrorCode::kInvalidArgument,
                        std::string(what) + " must not contain control characters");
    }
  }
  return Status::Ok();
}

Status set_subject(X509* cert, std::string_view cn, std::string_view ou) {
  X509_NAME* name = X509_get_subject_name(cert);
  auto add = [&](int nid, std::string_view v) {
    return X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(v.data()),
                                      static_cast<int>(v.size()), -1, 0) == 1;
  };
  if (!ou.empty() && !add(NID_organizationalUnitName, ou)) {
    return ossl_error(ErrorCode::kInvalidArgument, "cannot set the subject OU");
  }
  if (!add(NID_commonName, cn))
    return ossl_error(ErrorCode::kInvalidArgument, "cannot set the subject CN");
  return Status::Ok();
}

Status set_serial(X509* cert) {
  unsigned char raw[kSerialBytes];
  BnPtr bn(BN_new());
  if (!bn) return ossl_error(ErrorCode::kInternal, "cannot allocate a BIGNUM");
  do {
    if (RAND_bytes(raw, sizeof raw) != 1)
      return ossl_error(ErrorCode::kInternal, "the random number generator failed");
    if (BN_bin2bn(raw, sizeof raw, bn.get()) == nullptr)
      return ossl_error(ErrorCode::kInternal, "BN_bin2bn failed");
  } while (BN_is_zero(bn.get()));
  // DER INTEGERs are signed; BN_to_ASN1_INTEGER encodes the unsigned 128-bit value as positive.
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return ossl_error(ErrorCode::kInternal, "cannot set the serial number");
  }
  return Status::Ok();
}

// Adds an extension whose value is a fixed string of ours (never caller input).
Status add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return ossl_error(ErrorCode::kInternal, std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
  return Status::Ok();
}

bool valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '*';
    if (!ok) return false;
  }
  return true;
}

// subjectAltName built as structures, not as a config string, so caller-supplied names cannot
// inject extra entries.
Status add_san(X509* cert, const CertRequest& req) {
  if (req.dns_names.empty() && req.ip_addresses.empty()) return Status::Ok();
  NamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return ossl_error(ErrorCode::kInternal, "cannot allocate GENERAL_NAMES");
  for (const auto& dns : req.dns_names) {
    if (!valid_dns_name(dns)) {
      return make_error(ErrorCode::kInvalidArgument, "invalid DNS name in subjectAltName: " + dns);
    }
    NamePtr gen(GENERAL_NAME_new());
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (!gen || !ia5 || ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(ia5);
      return ossl_error(ErrorCode::kInternal, "cannot build a DNS subjectAltName");
    }
    GENERAL_NAME_set0_value(gen.get(), GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gen.get()) == 0)
      return ossl_error(ErrorCode::kInternal, "push failed");
    gen.release();
  }
  for (const auto& ip : req.ip_addresses) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr) {
      ERR_clear_error();
      return make_error(ErrorCode::kInvalidArgument, "invalid IP address in subjectAltName: " + ip);
    }
    NamePtr gen(GENERAL_NAME_new());
    if (!gen) {
      ASN1_OCTET_STRING_free(octets);
      return ossl_error(ErrorCode::kInternal, "cannot allocate GENERAL_NAME");
    }
    GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, octets);
    if (sk_GENERAL_NAME_push(names.get(), gen.get()) == 0)
      return ossl_error(ErrorCode::kInternal, "push failed");
    gen.release();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot add subjectAltName");
  }
  return Status::Ok();
}

Status set_validity(X509* cert, std::int64_t not_before, std::int64_t not_after) {
  if (X509_gmtime_adj(X509_getm_notBefore(cert), static_cast<long>(not_before)) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(not_after)) == nullptr) {
    return ossl_error(ErrorCode::kInternal, "cannot set the validity period");
  }
  return Status::Ok();
}

Result<PemPair> finish(X509* cert, EVP_PKEY* signer, EVP_PKEY* subject_key) {
  if (X509_sign(cert, signer, EVP_sha256()) <= 0) {
    return ossl_error(ErrorCode::kInternal, "cannot sign the certificate");
  }
  auto c = cert_pem(cert);
  if (!c.ok()) return c.error();
  auto k = key_pem(subject_key);
  if (!k.ok()) return k.error();
  return PemPair{std::move(c).value(), std::move(k).value()};
}

Status check_file_name(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument, "invalid certificate file name");
  }
  return Status::Ok();
}

std::string name_entry(X509_NAME* name, int nid) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return {};
  unsigned char* utf8 = nullptr;
  const int n =
      ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

Result<PemPair> create_ca(std::string_view common_name, std::int64_t valid_seconds) {
  if (Status st = check_name_field(common_name, "the CA common name", true); !st.ok())
    return st.error();
  if (valid_seconds <= 0)
    return make_error(ErrorCode::kInvalidArgument, "a CA needs a positive validity");
  auto key = new_p256_key();
  if (!key.ok()) return key.error();
  X509Ptr cert(X509_new());
  if (!cert) return ossl_error(ErrorCode::kInternal, "cannot allocate a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot initialise the CA certificate");
  }
  if (Status st = set_serial(cert.get()); !st.ok()) return st.error();
  if (Status st = set_validity(cert.get(), -300, valid_seconds); !st.ok()) return st.error();
  if (Status st = set_subject(cert.get(), common_name, {}); !st.ok()) return st.error();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot set the issuer");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (Status st = add_ext(cert.get(), &ctx, nid, value); !st.ok()) return st.error();
  }
  return finish(cert.get(), key->get(), key->get());
}

Result<PemPair> issue_certificate(const PemPair& ca, const CertRequest& request) {
  if (Status st = check_name_field(request.common_name, "the common name", true); !st.ok())
    return st.error();
  if (Status st = check_name_field(request.zone, "the zone", false); !st.ok()) return st.error();
  if (!request.server && !request.client) {
    return make_error(ErrorCode::kInvalidArgument, "a certificate must allow server or client use");
  }
  if (request.not_after_offset_s <= request.not_before_offset_s) {
    return make_error(ErrorCode::kInvalidArgument, "the certificate must expire after it starts");
  }
  auto ca_cert = parse_cert(ca.cert_pem);
  if (!ca_cert.ok()) return ca_cert.error();
  auto ca_key = parse_key(ca.key_pem);
  if (!ca_key.ok()) return ca_key.error();
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1) {
    return ossl_error(ErrorCode::kInvalidArgument, "the CA key does not match the CA certificate");
  }
  if (X509_check_ca(ca_cert->get()) < 1) {
    ERR_clear_error();
    return make_error(ErrorCode::kInvalidArgument, "the issuing certificate is not a CA");
  }

  auto key = new_p256_key();
  if (!key.ok()) return key.error();
  X509Ptr cert(X509_new());
  if (!cert) return ossl_error(ErrorCode::kInternal, "cannot allocate a certificate");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot initialise the certificate");
  }
  if (Status st = set_serial(cert.get()); !st.ok()) return st.error();
  if (Status st = set_validity(cert.get(), request.not_before_offset_s, request.not_after_offset_s);
      !st.ok()) {
    return st.error();
  }
  if (Status st = set_subject(cert.get(), request.common_name, request.zone); !st.ok())
    return st.error();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert->get())) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot set the issuer");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert->get(), cert.get(), nullptr, nullptr, 0);
  const char* eku = request.server && request.client ? "serverAuth,clientAuth"
                    : request.server                 ? "serverAuth"
                                                     : "clientAuth";
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
        std::pair{NID_key_usage, "critical,digitalSignature"}, std::pair{NID_ext_key_usage, eku},
        std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (Status st = add_ext(cert.get(), &ctx, nid, value); !st.ok()) return st.error();
  }
  if (Status st = add_san(cert.get(), request); !st.ok()) return st.error();
  return finish(cert.get(), ca_key->get(), key->get());
}

Result<CertInfo> inspect_certificate(std::string_view cert_pem_text) {
  auto cert = parse_cert(cert_pem_text);
  if (!cert.ok()) return cert.error();
  CertInfo info;
  X509_NAME* subject = X509_get_subject_name(cert->get());
  info.common_name = name_entry(subject, NID_commonName);
  info.zone = name_entry(subject, NID_organizationalUnitName);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert->get(), EVP_sha256(), md, &len) != 1) {
    return ossl_error(ErrorCode::kInternal, "cannot compute the certificate fingerprint");
  }
  info.fingerprint = hex_lower(md, len);
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert->get()), &tm) != 1) {
    return ossl_error(ErrorCode::kInvalidArgument, "the certificate has an unreadable notAfter");
  }
  // UTC broken-down time to seconds since the epoch with the C++20 calendar (no timegm).
  const auto to_unix = [](const std::tm& t) {
    using namespace std::chrono;
    const sys_days day = year{t.tm_year + 1900} / month{static_cast<unsigned>(t.tm_mon + 1)} /
                         std::chrono::day{static_cast<unsigned>(t.tm_mday)};
    const sys_seconds at = day + hours{t.tm_hour} + minutes{t.tm_min} + seconds{t.tm_sec};
    return static_cast<std::int64_t>(at.time_since_epoch().count());
  };
  info.not_after_unix = to_unix(tm);
  tm = std::tm{};
  if (ASN1_TIME_to_tm(X509_get0_notBefore(cert->get()), &tm) != 1) {
    return ossl_error(ErrorCode::kInvalidArgument, "the certificate has an unreadable notBefore");
  }
  info.not_before_unix = to_unix(tm);
  return info;
}

Status write_pem_files(const fs::path& dir, std::string_view name, const PemPair& pair) {
  if (Status st = check_file_name(name); !st.ok()) return st;
  if (Status st = detail::ensure_private_dir(dir); !st.ok()) return st;
  // Key first: after a crash between the two writes read_pem_files reports the mismatch
  // instead of serving a certificate whose key is gone.
  const std::string base(name);
  if (Status st = detail::write_file_atomic(dir / (base + ".key"), pair.key_pem.reveal(), 0600);
      !st.ok()) {
    return st;
  }
  return detail::write_file_atomic(dir / (base + ".crt"), pair.cert_pem, 0644);
}

Result<PemPair> read_pem_files(const fs::path& dir, std::string_view name) {
  if (Status st = check_file_name(name); !st.ok()) return st.error();
  const std::string base(name);
  auto crt = detail::read_file(dir / (base + ".crt"), kMaxPemFile, /*require_private=*/false);
  if (!crt.ok()) return crt.error();
  auto key = detail::read_file(dir / (base + ".key"), kMaxPemFile, /*require_private=*/true);
  if (!key.ok()) return key.error();
  PemPair pair{std::string(crt->reveal()), std::move(key).value()};
  auto cert = parse_cert(pair.cert_pem);
  if (!cert.ok()) {
    return make_error(ErrorCode::kDataLoss,
                      (dir / (base + ".crt")).string() + " is not a PEM certificate");
  }
  auto pkey = parse_key(pair.key_pem);
  if (!pkey.ok()) {
    return make_error(ErrorCode::kDataLoss,
                      (dir / (base + ".key")).string() + " is not an unencrypted PEM private key");
  }
  if (X509_check_private_key(cert->get(), pkey->get()) != 1) {
    ERR_clear_error();
    return make_error(ErrorCode::kDataLoss, (dir / (base + ".key")).string() +
                                                " does not match the certificate " +
                                                (dir / (base + ".crt")).string());
  }
  return pair;
}

}  // namespace berth::crypto

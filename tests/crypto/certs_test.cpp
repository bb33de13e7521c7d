#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "crypto/certs.h"

using berth::ErrorCode;
using namespace berth::crypto;

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr parse(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(x);
  return x;
}

// Verifies `leaf` against a store holding only `ca`; returns the X509_V_* result and checks the
// purpose (TLS server or client) the way a TLS stack would.
int verify(const std::string& ca_pem, const std::string& leaf_pem, int purpose) {
  X509Ptr ca = parse(ca_pem);
  X509Ptr leaf = parse(leaf_pem);
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
  REQUIRE(X509_STORE_add_cert(store.get(), ca.get()) == 1);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      &X509_STORE_CTX_free);
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) == 1);
  REQUIRE(X509_STORE_CTX_set_purpose(ctx.get(), purpose) == 1);
  const int rc = X509_verify_cert(ctx.get());
  const int err = X509_STORE_CTX_get_error(ctx.get());
  if (rc == 1) REQUIRE(err == X509_V_OK);
  return rc == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

const PemPair& test_ca() {
  static const PemPair ca = [] {
    auto r = create_ca("berth test CA", 3600);
    REQUIRE(r.ok());
    return std::move(r).value();
  }();
  return ca;
}

CertRequest agent_request() {
  CertRequest req;
  req.common_name = "agent-7";
  req.zone = "eu-west";
  req.dns_names = {"agent-7.internal"};
  req.ip_addresses = {"127.0.0.1", "::1"};
  req.client = true;
  return req;
}

}  // namespace

TEST_CASE("The CA is a self-signed P-256 CA with critical basicConstraints and keyCertSign",
          "[certs]") {
  const PemPair& ca = test_ca();
  X509Ptr x = parse(ca.cert_pem);
  CHECK(X509_check_ca(x.get()) == 1);
  CHECK(X509_get_extension_flags(x.get()) & EXFLAG_SS);
  CHECK((X509_get_key_usage(x.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
        (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  const int bc = X509_get_ext_by_NID(x.get(), NID_basic_constraints, -1);
  REQUIRE(bc >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(x.get(), bc)) == 1);
  EVP_PKEY* pub = X509_get0_pubkey(x.get());
  REQUIRE(pub != nullptr);
  CHECK(EVP_PKEY_is_a(pub, "EC"));
  char group[32] = {};
  size_t len = 0;
  REQUIRE(EVP_PKEY_get_group_name(pub, group, sizeof group, &len) == 1);
  CHECK(std::string(group) == "prime256v1");
  CHECK(ca.key_pem.reveal().find("-----BEGIN PRIVATE KEY-----") == 0);
  CHECK(verify(ca.cert_pem, ca.cert_pem, X509_PURPOSE_ANY) == X509_V_OK);
}

TEST_CASE("A client certificate issued by the CA verifies against it for TLS client use",
          "[certs]") {
  auto leaf = issue_certificate(test_ca(), agent_request());
  REQUIRE(leaf.ok());
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
  // Asked for client use only, so it must not pass as a server.
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_SERVER) ==
        X509_V_ERR_INVALID_PURPOSE);
  X509Ptr x = parse(leaf->cert_pem);
  CHECK(X509_check_ca(x.get()) == 0);
  CHECK(X509_check_host(x.get(), "agent-7.internal", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(x.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_ip_asc(x.get(), "::1", 0) == 1);
  CHECK(X509_check_host(x.get(), "other.internal", 0, 0, nullptr) == 0);
  CHECK(X509_get_signature_nid(x.get()) == NID_ecdsa_with_SHA256);
}

TEST_CASE("A server certificate verifies for TLS server use", "[certs]") {
  CertRequest req;
  req.common_name = "berth-controller";
  req.dns_names = {"localhost"};
  req.ip_addresses = {"127.0.0.1"};
  req.server = true;
  auto leaf = issue_certificate(test_ca(), req);
  REQUIRE(leaf.ok());
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_SERVER) == X509_V_OK);
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_CLIENT) ==
        X509_V_ERR_INVALID_PURPOSE);
}

TEST_CASE("A certificate from another CA does not verify", "[certs]") {
  auto other = create_ca("other CA", 3600);
  REQUIRE(other.ok());
  auto leaf = issue_certificate(*other, agent_request());
  REQUIRE(leaf.ok());
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_CLIENT) ==
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_CASE("An expired certificate fails verification", "[certs]") {
  CertRequest req = agent_request();
  req.not_before_offset_s = -7200;
  req.not_after_offset_s = -3600;
  auto leaf = issue_certificate(test_ca(), req);
  REQUIRE(leaf.ok());
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_CLIENT) ==
        X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_CASE("A certificate that is not valid yet fails verification", "[certs]") {
  CertRequest req = agent_request();
  req.not_before_offset_s = 3600;
  req.not_after_offset_s = 7200;
  auto leaf = issue_certificate(test_ca(), req);
  REQUIRE(leaf.ok());
  CHECK(verify(test_ca().cert_pem, leaf->cert_pem, X509_PURPOSE_SSL_CLIENT) ==
        X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST_CASE("inspect_certificate reads back CN, zone, DER fingerprint and expiry", "[certs]") {
  auto leaf = issue_certificate(test_ca(), agent_request());
  REQUIRE(leaf.ok());
  auto info = inspect_certificate(leaf->cert_pem);
  REQUIRE(info.ok());
  CHECK(info->common_name == "agent-7");
  CHECK(info->zone == "eu-west");

  X509Ptr x = parse(leaf->cert_pem);
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(x.get(), &der);
  REQUIRE(der_len > 0);
  unsigned char md[32];
  unsigned int md_len = 0;
  REQUIRE(EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr) == 1);
  OPENSSL_free(der);
  char hex[65] = {};
  for (unsigned i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
  CHECK(info->fingerprint == std::string(hex));

  const ASN1_TIME* na = X509_get0_notAfter(x.get());
  int days = 0, secs = 0;
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> epoch(ASN1_TIME_set(nullptr, 0),
                                                              &ASN1_TIME_free);
  REQUIRE(ASN1_TIME_diff(&days, &secs, epoch.get(), na) == 1);
  CHECK(info->not_after_unix == std::int64_t{days} * 86400 + secs);

  auto ca_info = inspect_certificate(test_ca().cert_pem);
  REQUIRE(ca_info.ok());
  CHECK(ca_info->common_name == "berth test CA");
  CHECK(ca_info->zone.empty());
  CHECK(ca_info->fingerprint != info->fingerprint);
}

TEST_CASE("Issued certificates get distinct random serials and keys", "[certs]") {
  auto a = issue_certificate(test_ca(), agent_request());
  auto b = issue_certificate(test_ca(), agent_request());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  X509Ptr xa = parse(a->cert_pem);
  X509Ptr xb = parse(b->cert_pem);
  CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(xa.get()), X509_get0_serialNumber(xb.get())) != 0);
  CHECK_FALSE(a->key_pem.equals(b->key_pem));
}

TEST_CASE("Bad certificate requests are refused with kInvalidArgument", "[certs]") {
  SECTION("no common name") {
    CertRequest req = agent_request();
    req.common_name.clear();
    auto r = issue_certificate(test_ca(), req);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("neither server nor client use") {
    CertRequest req = agent_request();
    req.client = false;
    auto r = issue_certificate(test_ca(), req);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("an unparseable IP address") {
    CertRequest req = agent_request();
    req.ip_addresses = {"127.0.0.300"};
    auto r = issue_certificate(test_ca(), req);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
    CHECK(r.error().message.find("127.0.0.300") != std::string::npos);
  }
  SECTION("a DNS name that would inject another entry") {
    CertRequest req = agent_request();
    req.dns_names = {"a.example,IP:10.0.0.1"};
    auto r = issue_certificate(test_ca(), req);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("a CA key that does not belong to the CA certificate") {
    auto other = create_ca("other CA", 3600);
    REQUIRE(other.ok());
    PemPair mixed{test_ca().cert_pem, other->key_pem};
    auto r = issue_certificate(mixed, agent_request());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  SECTION("a leaf used as issuer") {
    auto leaf = issue_certificate(test_ca(), agent_request());
    REQUIRE(leaf.ok());
    auto r = issue_certificate(*leaf, agent_request());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("inspect_certificate refuses text that is not a PEM certificate", "[certs]") {
  auto r = inspect_certificate("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
}

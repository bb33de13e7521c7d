// The exec credential protocol's pure parts: what the plugin is told and how its answer is read.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "kube/credentials.h"

using namespace berth;
using namespace berth::kube;
using namespace std::chrono_literals;

namespace {

constexpr const char* kV1 = "client.authentication.k8s.io/v1";

std::string credential(const nlohmann::json& status, const std::string& api = kV1) {
  return nlohmann::json{{"apiVersion", api}, {"kind", "ExecCredential"}, {"status", status}}.dump();
}

std::string error_of(const Result<ExecCredential>& r) {
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kUnauthenticated);
  return r.error().message;
}

std::chrono::system_clock::time_point utc(int y, unsigned m, unsigned d, int h, int min, int s) {
  return std::chrono::sys_days(std::chrono::year(y) / m / d) + std::chrono::hours(h) +
         std::chrono::minutes(min) + std::chrono::seconds(s);
}

}  // namespace

TEST_CASE("an ExecCredential with a token and an expiry is read", "[kube][exec]") {
  auto r = parse_exec_credential(
      credential({{"token", "tok-1"}, {"expirationTimestamp", "2026-11-27T20:00:00Z"}}), kV1);
  REQUIRE(r.ok());
  CHECK(r->token.reveal() == "tok-1");
  CHECK(r->client_cert_pem.empty());
  REQUIRE(r->expiry.has_value());
  CHECK(*r->expiry == utc(2026, 11, 27, 20, 0, 0));
}

TEST_CASE("an ExecCredential with a client certificate and no expiry is read", "[kube][exec]") {
  auto r = parse_exec_credential(
      credential({{"clientCertificateData", "CERT"}, {"clientKeyData", "KEY"}}), kV1);
  REQUIRE(r.ok());
  CHECK(r->token.empty());
  CHECK(r->client_cert_pem == "CERT");
  CHECK(r->client_key_pem.reveal() == "KEY");
  CHECK_FALSE(r->expiry.has_value());
}

TEST_CASE("a malformed ExecCredential is refused without quoting it", "[kube][exec]") {
  CHECK(error_of(parse_exec_credential("secret-token-not-json", kV1)) == "its output is not JSON");
  CHECK(error_of(parse_exec_credential("[1]", kV1)) ==
        "its output is not an ExecCredential object");
  CHECK(error_of(parse_exec_credential(
            credential({{"token", "t"}}, "client.authentication.k8s.io/v1beta1"), kV1)) ==
        "it answered with apiVersion \"client.authentication.k8s.io/v1beta1\", but the kubeconfig "
        "asks for client.authentication.k8s.io/v1");
  CHECK(error_of(parse_exec_credential(
            R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"Pod","status":{}})", kV1)) ==
        "its output is not of kind ExecCredential");
  CHECK(error_of(parse_exec_credential(
            R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"})", kV1)) ==
        "its output has no status (an interactive plugin needs a terminal)");
  CHECK(error_of(parse_exec_credential(credential(nlohmann::json::object()), kV1)) ==
        "it returned neither a token nor a client certificate and key");
  CHECK(error_of(parse_exec_credential(credential({{"clientCertificateData", "C"}}), kV1)) ==
        "it returned only one of clientCertificateData and clientKeyData");
  CHECK(error_of(parse_exec_credential(credential({{"token", 7}}), kV1)) ==
        "a status field is not a string");
  CHECK(error_of(parse_exec_credential(
            credential({{"token", "t"}, {"expirationTimestamp", "tomorrow"}}), kV1)) ==
        "status.expirationTimestamp is not an RFC 3339 time");
}

TEST_CASE(
    "KUBERNETES_EXEC_INFO says the plugin is not interactive and carries the cluster only "
    "when asked",
    "[kube][exec]") {
  ExecConfig exec;
  exec.command = "get-token";
  exec.api_version = kV1;
  ClusterConfig cluster;
  cluster.server = "https://10.0.0.1:6443";
  cluster.tls_server_name = "kubernetes";
  cluster.ca_pem = "-----BEGIN CERTIFICATE-----\n...";
  cluster.token = Secret("never-sent");

  auto plain = nlohmann::json::parse(exec_info(exec, cluster));
  CHECK(plain == nlohmann::json{{"apiVersion", kV1},
                                {"kind", "ExecCredential"},
                                {"spec", {{"interactive", false}}}});

  exec.provide_cluster_info = true;
  const std::string text = exec_info(exec, cluster);
  CHECK(text.find("never-sent") == std::string::npos);
  auto info = nlohmann::json::parse(text);
  CHECK(info["spec"]["interactive"] == false);
  CHECK(info["spec"]["cluster"]["server"] == "https://10.0.0.1:6443");
  CHECK(info["spec"]["cluster"]["tls-server-name"] == "kubernetes");
  CHECK(info["spec"]["cluster"]["certificate-authority-data"] == base64::encode(cluster.ca_pem));
  CHECK_FALSE(info["spec"]["cluster"].contains("insecure-skip-tls-verify"));
}

TEST_CASE("RFC 3339 times with offsets and fractions are read", "[kube][exec]") {
  CHECK(parse_rfc3339("2026-11-27T20:00:00Z") == utc(2026, 11, 27, 20, 0, 0));
  CHECK(parse_rfc3339("2026-11-27T21:30:00+01:30") == utc(2026, 11, 27, 20, 0, 0));
  CHECK(parse_rfc3339("2026-11-27T12:00:00-08:00") == utc(2026, 11, 27, 20, 0, 0));
  CHECK(parse_rfc3339("2026-11-27T20:00:00.25Z") == utc(2026, 11, 27, 20, 0, 0) + 250ms);
  for (const char* bad :
       {"", "2026-11-27", "2026-11-27T20:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "2026-11-27T20:00:00.Z", "2026-11-27T20:00:00+0100", "2026-11-27 20:00:00Z",
        "2026-11-27T20:00:00Zjunk"})
    CHECK_FALSE(parse_rfc3339(bad).has_value());
}

TEST_CASE("parse_rfc3339 refuses years the clock cannot hold instead of overflowing") {
  // Found by the kube_watch fuzz target (UBSan: signed overflow in the nanosecond count).
  CHECK_FALSE(parse_rfc3339("4053-11-27T10:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("0001-01-01T00:00:00Z").has_value());
  CHECK(parse_rfc3339("2261-12-31T23:59:59Z").has_value());
}

#include "agentlink/tls.h"
#include "common/clock.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/algorithm/hex.hpp>
#include <charconv>
#include <chrono>
#include <iterator>

namespace berth::agentlink::detail {
namespace ssl = boost::asio::ssl;
using boost::system::error_code;

Result<HostPort> split_host_port(std::string_view text) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(ErrorCode::kInvalidArgument, "address must be HOST:PORT or [IPV6]:PORT");
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return make_error(ErrorCode::kInvalidArgument, "address must be HOST:PORT or [IPV6]:PORT");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (out.host.empty() || port_text.empty() || ec != std::errc() ||
      ptr != port_text.data() + port_text.size() || value > 65535)
    return make_error(ErrorCode::kInvalidArgument, "address must be HOST:PORT with a port 0-65535");
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

Result<std::shared_ptr<ssl::context>> make_tls_context(bool server, const std::string& ca_pem,
                                                       const std::string& cert_pem,
                                                       const Secret& key_pem) {
  auto ctx =
      std::make_shared<ssl::context>(server ? ssl::context::tls_server : ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION) != 1)
    return make_error(ErrorCode::kInternal, "cannot restrict TLS to version 1.3");
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
  if (ca_pem.empty() || cert_pem.empty() || key_pem.empty())
    return make_error(ErrorCode::kInvalidArgument,
                      "the agent link needs a CA certificate, a certificate and a private key");
  error_code ec;
  ctx->add_certificate_authority(boost::asio::buffer(ca_pem), ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "CA certificate is not valid PEM");
  ctx->use_certificate_chain(boost::asio::buffer(cert_pem), ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "certificate is not valid PEM");
  ctx->use_private_key(boost::asio::buffer(key_pem.reveal().data(), key_pem.size()),
                       ssl::context::pem, ec);
  if (ec) return make_error(ErrorCode::kInvalidArgument, "private key is not valid PEM");
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    return make_error(ErrorCode::kInvalidArgument, "private key does not match the certificate");
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
  if (ec) return make_error(ErrorCode::kInternal, "cannot enable peer verification");
  // Agents must present a certificate made for a client, the controller one made for a server.
  SSL_CTX_set_purpose(ctx->native_handle(),
                      server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
  return ctx;
}

namespace {
std::string name_entry(X509_NAME* name, int nid) {
  const int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return {};
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out;
}
}  // namespace

std::optional<AgentIdentity> peer_identity(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  std::unique_ptr<X509, decltype(&X509_free)> cert(SSL_get1_peer_certificate(ssl), &X509_free);
  if (!cert) return std::nullopt;
  AgentIdentity id;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  id.name = name_entry(subject, NID_commonName);
  id.zone = name_entry(subject, NID_organizationalUnitName);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &md_len) != 1) return std::nullopt;
  boost::algorithm::hex_lower(md, md + md_len, std::back_inserter(id.fingerprint));
  if (id.name.empty()) return std::nullopt;
  return id;
}

std::int64_t now_unix_ms() { return system_now(); }

}  // namespace berth::agentlink::detail

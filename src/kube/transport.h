#pragma once
// HTTP/1.1 to the API server: TLS verified against the cluster CA, keep-alive connections reused
// across calls, a deadline on every call, client-side rate limiting (client-go's token bucket:
// QPS and burst), and the bearer token or client certificate of the ClusterConfig (a token file
// is re-read every minute; an exec plugin's token is cached until its expirationTimestamp and
// refreshed once on a 401).
//
// Threading: send() and stream() may be called from any number of threads at once; each call
// takes a pooled connection or opens one. Calls block the calling thread (a controller runs its
// watches on their own threads, as client-go's reflectors do).
//
// Errors: transport failures are values (kUnavailable, kDeadlineExceeded, kUnauthenticated when
// no credential could be obtained, kFailedPrecondition when the server's certificate fails
// verification, kPayloadTooLarge for a body or watch line over 64 MiB, kInvalidArgument for an
// unknown method or a target not starting with '/'). An HTTP error status is *not* an error
// here: Response carries it and the resource client decodes the Status object. A 401 answered
// to a token from a file or an exec plugin fetches the credential again and retries once.
#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "common/result.h"
#include "kube/config.h"

namespace berth::kube {

struct Request {
  std::string method = "GET";
  std::string target;  // path and query, e.g. "/apis/berth.dev/v1alpha1/appservices?limit=500"
  std::string accept = "application/json";
  std::string content_type;  // empty when there is no body
  std::string body;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // the whole call
};

struct Response {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct TransportOptions {
  double qps = 5.0;  // client-go's defaults
  int burst = 10;
  std::string user_agent = "berth-controller";
};

class Transport {
 public:
  virtual ~Transport() = default;
  // One request, the whole body read.
  virtual Result<Response> send(const Request& request) = 0;
  // A streaming GET (watch): on_line gets each newline-terminated chunk of the body as it
  // arrives (one JSON object per line, without the newline; empty lines are skipped), until the
  // server ends the response, request.timeout passes, `stop` is requested or on_line returns
  // false. Returns the HTTP status (also when the timeout or `stop` ended the stream after the
  // response began); on a non-2xx status the body is in `error_body` and on_line is not called.
  // `stop` requested before the response began gives kUnavailable ("the watch was cancelled
  // before the server answered"); connecting is bounded by 30 s within request.timeout. A stop
  // request closes the socket on the call's own thread, so it ends the call promptly from any
  // thread.
  virtual Result<int> stream(const Request& request,
                             const std::function<bool(std::string_view line)>& on_line,
                             std::stop_token stop, std::string* error_body = nullptr) = 0;
};

Result<std::unique_ptr<Transport>> make_transport(ClusterConfig config,
                                                  TransportOptions options = {});

}  // namespace berth::kube

#pragma once
// Transport-neutral HTTP request and response values. The Beast server (server.cpp) converts
// to and from these, so request handling (handler.h) can be exercised without sockets and
// public headers carry no Beast types.
#include <map>
#include <string>

namespace berth::api {

struct HttpRequest {
  std::string method;  // upper case: GET, POST, ...
  std::string target;  // path plus optional query, as sent ("/app-services/x?all=true")
  // Header names lower-cased; a repeated header keeps its last value.
  std::map<std::string, std::string> headers;
  std::string body;

  // Empty when absent.
  std::string header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::map<std::string, std::string> headers;  // Content-Type is set by the helpers below
  std::string body;
};

// {"error": message} plus "field" when non-empty, with the given status.
HttpResponse json_error(int status, const std::string& message, const std::string& field = {});

}  // namespace berth::api

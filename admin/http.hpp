#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corral {

/// An admin request, as far as the admin port cares: no endpoint takes a body.
struct HttpRequest {
  std::string method;
  std::string target;
  bool keep_alive = false;  ///< the client may send another request on this connection
};

struct HttpResponse {
  using Headers = std::vector<std::pair<std::string, std::string>>;
  HttpResponse() = default;
  HttpResponse(int code, std::string type, std::string text, Headers extra = {})
      : status(code),
        content_type(std::move(type)),
        body(std::move(text)),
        headers(std::move(extra)) {}

  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;  ///< beyond the standard ones
};

/// Parses a request head, the bytes up to and including the blank line. nullopt when it is not
/// an HTTP/1.0 or 1.1 request: a malformed request line, a target not starting with '/', a
/// header line without a name and a colon. A request that announces a body is answered and
/// its connection closed rather than the body read.
std::optional<HttpRequest> parseRequestHead(std::string_view head);

/// The whole response: status line, headers (Content-Type, Content-Length, Cache-Control,
/// Connection, then `response.headers`) and, unless `head_only`, the body.
std::string renderResponse(const HttpResponse& response, bool head_only, bool keep_alive);

/// "OK", "Not Found", ... for the status line.
std::string_view reasonPhrase(int status);

}  // namespace corral

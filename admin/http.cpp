#include "admin/http.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "util/text.hpp"

namespace corral {
namespace {

// RFC 9110's token characters: what a method and a header name are made of.
bool isToken(std::string_view text) {
  constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           kSpecials.find(c) != std::string_view::npos;
  });
}

// Header values may hold any visible character; control characters other than tab may not.
bool isFieldValue(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7F;
  });
}

}  // namespace

std::optional<HttpRequest> parseRequestHead(std::string_view head) {
  const auto line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return std::nullopt;
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
  HttpRequest request{std::string(line.substr(0, sp1)),
                      std::string(line.substr(sp1 + 1, sp2 - sp1 - 1))};
  if (!isToken(request.method) || request.target.empty() || request.target.front() != '/' ||
      request.target.find_first_of(" \t") != std::string::npos || !isFieldValue(request.target)) {
    return std::nullopt;
  }
  bool close = version == "HTTP/1.0";
  bool body = false;  // sticky: a later Connection header must not reopen a connection with a body
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    const auto end = rest.find("\r\n");
    const std::string_view header = rest.substr(0, end);
    rest = end == std::string_view::npos ? "" : rest.substr(end + 2);
    if (header.empty()) break;  // the blank line that ends the head
    const auto colon = header.find(':');
    if (colon == std::string_view::npos || !isToken(header.substr(0, colon))) return std::nullopt;
    const std::string_view name = header.substr(0, colon);
    const std::string_view value = trim(header.substr(colon + 1));
    if (!isFieldValue(value)) return std::nullopt;
    if (iequals(name, "connection")) close = !iequals(value, "keep-alive");
    if ((iequals(name, "content-length") && value != "0") || iequals(name, "transfer-encoding")) {
      body = true;
    }
  }
  request.keep_alive = !close && !body;
  return request;
}

std::string renderResponse(const HttpResponse& response, bool head_only, bool keep_alive) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "Connection: {}\r\n",
      response.status, reasonPhrase(response.status), response.content_type, response.body.size(),
      keep_alive ? "keep-alive" : "close");
  for (const auto& [name, value] : response.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out += "\r\n";
  if (!head_only) out += response.body;
  return out;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace corral

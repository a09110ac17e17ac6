#include "admin/http.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace corral {
namespace {

TEST_CASE("parseRequestHead reads the request line and what keeps a connection open",
          "[unit][http]") {
  const auto get = parseRequestHead("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(get);
  CHECK(get->method == "GET");
  CHECK(get->target == "/healthz");
  CHECK(get->keep_alive);

  const auto old = parseRequestHead("HEAD /ready?x=1 HTTP/1.0\r\n\r\n");
  REQUIRE(old);
  CHECK(old->target == "/ready?x=1");
  CHECK_FALSE(old->keep_alive);  // HTTP/1.0 closes unless asked otherwise
  CHECK(parseRequestHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")->keep_alive);
  CHECK_FALSE(parseRequestHead("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")->keep_alive);
  CHECK(parseRequestHead("GET / HTTP/1.1\r\nX-Thing:   spaced   \r\n\r\n")->keep_alive);
}

TEST_CASE("A request with a body is answered, then its connection closed", "[unit][http]") {
  CHECK_FALSE(parseRequestHead("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")->keep_alive);
  CHECK_FALSE(
      parseRequestHead("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")->keep_alive);
  CHECK(parseRequestHead("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")->keep_alive);
  // A later Connection header must not reopen it: the unread body would be read as a request.
  CHECK_FALSE(
      parseRequestHead("POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n")
          ->keep_alive);
}

TEST_CASE("parseRequestHead refuses what is not HTTP/1.x", "[unit][http]") {
  const auto bad = GENERATE(as<std::string>{},                          //
                            "",                                         // nothing
                            "\r\n\r\n",                                 // no request line
                            "GET\r\n\r\n",                              // no target
                            "GET /\r\n\r\n",                            // no version
                            "GET / HTTP/2\r\n\r\n",                     // not 1.x
                            "GET / http/1.1\r\n\r\n",                   // case matters
                            "GET healthz HTTP/1.1\r\n\r\n",             // not an origin-form path
                            "GET /a b HTTP/1.1\r\n\r\n",                // space in the target
                            " / HTTP/1.1\r\n\r\n",                      // no method
                            "G(T / HTTP/1.1\r\n\r\n",                   // not a token
                            "GET / HTTP/1.1\r\nno colon here\r\n\r\n",  // a header without ':'
                            "GET / HTTP/1.1\r\n: empty name\r\n\r\n",   // an empty name
                            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",    // space in a name
                            "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",      // control in a value
                            std::string("GET /\0 HTTP/1.1\r\n\r\n", 20));  // NUL in the target
  CAPTURE(bad);
  CHECK_FALSE(parseRequestHead(bad));
}

TEST_CASE("renderResponse writes the status line, the headers and the body", "[unit][http]") {
  const HttpResponse response(405, "text/plain", "only GET and HEAD\n", {{"Allow", "GET, HEAD"}});
  CHECK(renderResponse(response, false, true) ==
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n"
        "Cache-Control: no-store\r\nConnection: keep-alive\r\nAllow: GET, HEAD\r\n\r\n"
        "only GET and HEAD\n");
  const std::string head = renderResponse({200, "application/json", "{}"}, true, false);
  CHECK(
      head.ends_with("Content-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"));
}

}  // namespace
}  // namespace corral

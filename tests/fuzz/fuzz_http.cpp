// The admin port's request parser, fed anything a client could send, and the response renderer
// fed what the parser let through.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "admin/http.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  if (const auto request = corral::parseRequestHead(head)) {
    // Whatever passed must be what a well-formed request line holds.
    if (request->target.empty() || request->target.front() != '/') __builtin_trap();
    if (request->method.empty()) __builtin_trap();
    const corral::HttpResponse response(200, "text/plain", request->target);
    (void)corral::renderResponse(response, request->method == "HEAD", request->keep_alive);
  }
  return 0;
}

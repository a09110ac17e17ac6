// The JSON writer: whatever bytes a string holds, the document written is valid JSON that reads
// back to the same (valid UTF-8) text.

#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const corral::json::Object object{{"text", text},
                                    {"n", static_cast<double>(size) / 3.0},
                                    {"keys", corral::json::Object{{text, true}}}};
  boost::system::error_code ec;
  const auto parsed = boost::json::parse(corral::json::write(object), ec);
  if (ec) __builtin_trap();
  const auto clean = corral::json::validUtf8(text);
  const auto& read = parsed.as_object();
  if (read.at("text").as_string() != clean) __builtin_trap();
  if (!read.at("keys").as_object().contains(clean)) __builtin_trap();
  return 0;
}

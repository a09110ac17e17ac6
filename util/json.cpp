#include "util/json.hpp"

// Boost.JSON's implementation, compiled once here (header-only use, no library to link).
#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <boost/json/src.hpp>
#include <cmath>
#include <cstdint>

namespace corral::json {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at the start of `text`, or 0 if there is none.
std::size_t sequenceLength(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80;   // the range of the second byte, which rules out overlong forms,
  unsigned char high = 0xBF;  // surrogates and code points above U+10FFFF (RFC 3629, table 3-7)
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

void writeString(std::string& out, std::string_view text) {
  out += boost::json::serialize(boost::json::string_view(validUtf8(text)));
}

void writeDouble(std::string& out, double number) {
  if (!std::isfinite(number)) {
    out += "null";
  } else {
    out += fmt::format("{}", number);  // the shortest text that reads back the same
  }
}

void writeValue(std::string& out, const Value& value) {
  switch (value.kind()) {
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, member] : value.get_object()) {
        if (!first) out += ',';
        first = false;
        writeString(out, key);
        out += ':';
        writeValue(out, member);
      }
      out += '}';
      break;
    }
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const Value& element : value.get_array()) {
        if (!first) out += ',';
        first = false;
        writeValue(out, element);
      }
      out += ']';
      break;
    }
    case boost::json::kind::string: writeString(out, value.get_string()); break;
    case boost::json::kind::double_: writeDouble(out, value.get_double()); break;
    case boost::json::kind::int64: out += std::to_string(value.get_int64()); break;
    case boost::json::kind::uint64: out += std::to_string(value.get_uint64()); break;
    case boost::json::kind::bool_: out += value.get_bool() ? "true" : "false"; break;
    case boost::json::kind::null: out += "null"; break;
  }
}

}  // namespace

std::string write(const Value& value) {
  std::string out;
  writeValue(out, value);
  return out;
}

std::string validUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length = sequenceLength(text);
    if (length == 0) {
      out += kReplacement;
      text.remove_prefix(1);
    } else {
      out += text.substr(0, length);
      text.remove_prefix(length);
    }
  }
  return out;
}

}  // namespace corral::json

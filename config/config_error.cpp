#include "config/config_error.hpp"

namespace corral {
namespace {

constexpr std::size_t kMaxEchoedChars = 200;

}  // namespace

std::string escapeControls(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      constexpr std::string_view kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

std::string printable(std::string_view text) {
  std::string out = escapeControls(text.substr(0, kMaxEchoedChars));
  if (text.size() > kMaxEchoedChars) out += "...";
  return out;
}

std::string describeInput(std::string_view source, std::string_view text) {
  // A config file's value is named "FILE:LINE: key" (config/config_file.hpp).
  if (source.find(": ") != std::string_view::npos) {
    return std::string(source) + " = '" + printable(text) + "'";
  }
  const bool variable = !source.empty() && source.front() != '-' && source != "APP";
  return std::string(source) + (variable ? "='" : " '") + printable(text) + "'";
}

void failInput(std::string_view source, std::string_view text, std::string_view reason) {
  throw ConfigError(describeInput(source, text) + ": " + std::string(reason));
}

}  // namespace corral

#include "config/option_values.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "config/config_error.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

// Python identifiers; bytes >= 0x80 pass so that non-ASCII module names are left to Python.
bool isIdentifier(std::string_view text) {
  const auto word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  if (text.empty() || std::isdigit(static_cast<unsigned char>(text.front())) != 0) return false;
  return std::all_of(text.begin(), text.end(), word);
}

bool isDottedName(std::string_view text) {
  while (true) {
    const auto dot = text.find('.');
    if (!isIdentifier(text.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    text.remove_prefix(dot + 1);
  }
}

}  // namespace

// Digits only (parseInt of an unsigned type takes no sign); a number too large to parse is as
// wrong as one too large to accept.
int parseInRange(const Input& input, int min, int max, std::string_view expected) {
  const auto value = parseInt<unsigned>(input.text);
  if (!value || *value < static_cast<unsigned>(min) || *value > static_cast<unsigned>(max)) {
    fail(input, expected);
  }
  return static_cast<int>(*value);
}

int parseWorkers(const Input& input) {
  const auto value = parseInt<unsigned>(input.text);
  const bool digits =
      !input.text.empty() && input.text.find_first_not_of("0123456789") == std::string::npos;
  if ((!value && !digits) || (value && *value < 1)) {
    fail(input, "expected a whole number of workers >= 1");
  }
  if (!value || *value > static_cast<unsigned>(kMaxWorkers)) {
    fail(input, "at most " + std::to_string(kMaxWorkers) + " workers are supported");
  }
  return static_cast<int>(*value);
}

bool parseBool(const Input& input) {
  const std::string text = lower(input.text);
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  fail(input, "expected true or false (or 1/0, yes/no)");
}

std::string parseChoice(const Input& input, std::initializer_list<std::string_view> choices,
                        std::string_view expected) {
  std::string text = lower(input.text);
  if (std::find(choices.begin(), choices.end(), text) == choices.end()) fail(input, expected);
  return text;
}

std::string parseNonEmpty(const Input& input, std::string_view expected) {
  if (input.text.empty()) fail(input, expected);
  return input.text;
}

Duration parseTimeout(const Input& input) {
  return parseDuration(input.text, input.source);
}

LogLevel parseLogLevel(const Input& input) {
  constexpr std::array kLevels = {LogLevel::Critical, LogLevel::Error, LogLevel::Warning,
                                  LogLevel::Info,     LogLevel::Debug, LogLevel::Trace};
  const std::string text = lower(input.text);
  for (const LogLevel level : kLevels) {
    if (logLevelName(level) == text) return level;
  }
  fail(input, "expected critical, error, warning, info, debug or trace");
}

std::string parseApp(const std::optional<Input>& input) {
  if (!input) {
    throw ConfigError("missing APP (module:attribute, e.g. main:app); run 'corral --help'");
  }
  const std::string_view text = input->text;
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || !isDottedName(text.substr(0, colon)) ||
      !isDottedName(text.substr(colon + 1))) {
    fail(*input, "expected module:attribute, e.g. main:app or pkg.module:create_app");
  }
  return input->text;
}

ResponseHeader parseHeader(const Input& input) {
  const auto colon = input.text.find(':');
  const std::string_view name = trim(std::string_view(input.text).substr(0, colon));
  if (colon == std::string::npos || name.empty()) {
    fail(input, "expected NAME:VALUE, e.g. 'X-Frame-Options: DENY'");
  }
  // RFC 9110's token characters.
  constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
  const bool token = std::all_of(name.begin(), name.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           kTokenPunctuation.find(c) != std::string_view::npos;
  });
  if (!token) fail(input, "'" + std::string(name) + "' is not a valid header name");
  const std::string_view value = trim(std::string_view(input.text).substr(colon + 1));
  // A line break would let the value start a header, or a body, of its own.
  const bool clean = std::none_of(value.begin(), value.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (byte < 0x20 && c != '\t') || byte == 0x7f;
  });
  if (!clean) fail(input, "a header value cannot hold line breaks or control characters");
  return {std::string(name), std::string(value)};
}

unsigned parseUmask(const Input& input) {
  std::string_view digits = input.text;
  if (digits.starts_with("0o")) digits.remove_prefix(2);
  unsigned mode = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mode, 8);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || mode > 0777) {
    fail(input, "expected an octal mode from 000 to 777, e.g. 022 or 007");
  }
  return mode;
}

}  // namespace corral

#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// What the command line said, read against the option table. The rest of config sees only
/// this, never CLI11.
struct CommandLine {
  enum class Request { Run, Help, Version };
  Request request = Request::Run;
  /// Every value given for each option, in command-line order, under its long name
  /// ("--workers"; "--proxy-headers" for both halves of a flag pair) or "APP".
  std::map<std::string, std::vector<std::string>, std::less<>> values;

  /// The values given for `name`; throws std::logic_error for a name not in the table.
  const std::vector<std::string>& given(std::string_view name) const;
};

/// Parses argv against the option table. --help and --version win over mistakes elsewhere on
/// the line; otherwise unknown options, missing values and stray arguments throw ConfigError.
CommandLine readCommandLine(int argc, const char* const* argv);

/// What --help prints.
std::string helpText();

/// CORRAL_ + the long name in upper case with dashes as underscores: --graceful-timeout is
/// CORRAL_GRACEFUL_TIMEOUT.
std::string envNameFor(std::string_view name);

}  // namespace corral

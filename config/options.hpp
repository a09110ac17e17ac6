#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// What the rest of config knows of one row of the option table.
struct OptionInfo {
  std::string name;            ///< the long name: "--workers"; "--proxy-headers" for a flag pair
  std::string short_name;      ///< "-w"; empty for none
  std::string_view metavar;    ///< "N", "DURATION"...; empty for a flag
  bool pair = false;           ///< a --[no-]x flag pair
  bool repeatable = false;     ///< each value is kept (--bind); otherwise the last one wins
  bool in_environment = true;  ///< read from its CORRAL_* variable
  bool in_file = true;         ///< a key of the config file (the long name without "--")

  bool flag() const { return metavar.empty(); }
};

/// Every option of the table, in its order (the help's, and --print-config's).
const std::vector<OptionInfo>& optionTable();

/// The row whose long name is `name` ("--workers"), or nullptr.
const OptionInfo* findOption(std::string_view name);

/// What the command line said, read against the option table. The rest of config sees only
/// this, never CLI11.
struct CommandLine {
  enum class Request { Run, Help, Version };
  Request request = Request::Run;
  /// Every value given for each option, in command-line order, under its long name
  /// ("--workers"; "--proxy-headers" for both halves of a flag pair) or "APP". The synonyms
  /// gunicorn and uvicorn users bring (config/migration.hpp) are there under their own names.
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

#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace corral {

/// `text` with control characters (newlines among them) written as \xNN, so that it stays on
/// one line.
std::string escapeControls(std::string_view text);

/// A bad flag, value or environment variable. what() is one line naming the input and saying
/// what to do; main prints it and exits with kExitUsage. Whatever fragment of the input a
/// message quotes, it stays one line: control characters are escaped here.
struct ConfigError : std::runtime_error {
  explicit ConfigError(std::string_view what) : std::runtime_error(escapeControls(what)) {}
};

/// Names a user's input the way they wrote it, so they can find it: a flag as `--workers 'abc'`,
/// a variable as `CORRAL_WORKERS='abc'`, the positional as `APP 'x'`, a config file's value as
/// `corral.toml:3: workers = 'abc'`. Control characters are
/// escaped and huge values shortened, so a message always stays on one line.
std::string describeInput(std::string_view source, std::string_view text);

/// `text` with control characters escaped and shortened past 200 characters.
std::string printable(std::string_view text);

/// Throws ConfigError "<describeInput>: <reason>".
[[noreturn]] void failInput(std::string_view source, std::string_view text,
                            std::string_view reason);

}  // namespace corral

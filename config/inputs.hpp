#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/options.hpp"

namespace corral {

/// One setting's text and where it came from, so a message can name the flag or variable.
struct Input {
  std::string source;  ///< "--workers", "CORRAL_WORKERS", "WEB_CONCURRENCY", "APP"
  std::string text;
};

/// Throws ConfigError naming the input as the user wrote it, then `reason`.
[[noreturn]] void fail(const Input& input, std::string_view reason);

/// Where values come from: the command line first, then the environment.
class Inputs {
 public:
  Inputs(const CommandLine& line, const EnvLookup& env) : line_(line), env_(env) {}

  /// The last value given on the command line (later flags win, as in gunicorn), else the
  /// option's CORRAL_* variable.
  std::optional<Input> get(const std::string& name) const;

  /// Every value given on the command line, in order.
  std::vector<Input> all(const std::string& name) const;

  /// A variable of the environment; empty counts as unset.
  std::optional<Input> variable(const std::string& name) const;

  const EnvLookup& env() const { return env_; }

 private:
  const CommandLine& line_;
  const EnvLookup& env_;
};

}  // namespace corral

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/options.hpp"

namespace corral {

/// Where a setting's value came from, from the lowest precedence to the highest.
enum class Origin { Default, File, Environment, CommandLine };

/// One setting's text and where it came from, so a message can name the flag or variable.
struct Input {
  std::string source;  ///< "--workers", "CORRAL_WORKERS", "WEB_CONCURRENCY", "APP",
                       ///< "corral.toml:3: workers"
  std::string text;
  Origin origin = Origin::CommandLine;
};

/// Throws ConfigError naming the input as the user wrote it, then `reason`.
[[noreturn]] void fail(const Input& input, std::string_view reason);

class ConfigFile;

/// Where values come from: the command line first, then the environment, then the config file.
class Inputs {
 public:
  Inputs(const CommandLine& line, const EnvLookup& env, const ConfigFile* file = nullptr)
      : line_(line), env_(env), file_(file) {}

  /// The last value given on the command line (later flags win, as in gunicorn; a synonym such
  /// as --keep-alive counts as its option), else the option's CORRAL_* variable, else the
  /// option's key in the config file. Throws ConfigError when an option and its synonym are
  /// both given.
  std::optional<Input> get(const std::string& name) const;

  /// Every value given on the command line, in order.
  std::vector<Input> all(const std::string& name) const;

  /// Every value of a repeatable option: those on the command line, else those of its CORRAL_*
  /// variable cut by `separators`, else those of the config file.
  std::vector<Input> list(const std::string& name, std::string_view separators) const;

  /// The values of `name` in the config file, if it has that key.
  std::vector<Input> fromFile(const std::string& name) const;

  /// A variable of the environment; empty counts as unset.
  std::optional<Input> variable(const std::string& name) const;

  /// These inputs with the config file first: every value the file holds is used, even where
  /// the environment or the command line overrides it, so that it can be checked.
  Inputs fileFirst() const {
    Inputs inputs = *this;
    inputs.file_first_ = true;
    return inputs;
  }

  /// Whether these are fileFirst() inputs.
  bool prefersFile() const { return file_first_; }

  const EnvLookup& env() const { return env_; }
  const CommandLine& commandLine() const { return line_; }
  const ConfigFile* file() const { return file_; }

 private:
  std::optional<Input> fromCommandLine(const std::string& name) const;

  const CommandLine& line_;
  const EnvLookup& env_;
  const ConfigFile* file_;
  bool file_first_ = false;
};

/// `input`'s text cut at any of `separators`, each part an Input from the same source; fails
/// when there is none.
std::vector<Input> splitInput(const Input& input, std::string_view separators,
                              std::string_view expected);

}  // namespace corral

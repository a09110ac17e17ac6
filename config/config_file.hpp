#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/inputs.hpp"

namespace corral {

/// A TOML config file (--config, CORRAL_CONFIG). Its keys are the long options without their
/// dashes (`workers = 4`, `graceful-timeout = "30s"`, `bind = ["0.0.0.0:8000"]`) and `app`;
/// each value becomes an Input named "FILE:LINE: KEY", so that a bad value is reported with
/// its place, by the same parsers as a flag's.
class ConfigFile {
 public:
  /// Parses `text`, read from `path`. Throws ConfigError naming the file and line for a syntax
  /// error, an unknown key or a value of the wrong type.
  static ConfigFile parse(std::string_view text, const std::string& path);

  /// Reads and parses the file `input` names (--config or CORRAL_CONFIG).
  static ConfigFile load(const Input& input);

  /// The path as given.
  const std::string& path() const { return path_; }

  /// The values of the option `name` ("--workers", "APP"); several only for a repeatable one.
  /// nullptr when the file does not set it.
  const std::vector<Input>* find(std::string_view name) const;

 private:
  std::string path_;
  std::map<std::string, std::vector<Input>, std::less<>> values_;
};

}  // namespace corral

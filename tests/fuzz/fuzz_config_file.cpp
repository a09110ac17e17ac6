// The config file parser (--config): toml++ and corral's reading of keys and values. Whatever
// the bytes, ConfigFile::parse returns the values, each named by the file and a line, or throws
// ConfigError with one line that names the file.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_error.hpp"
#include "config/config_file.hpp"
#include "config/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const corral::ConfigFile file = corral::ConfigFile::parse(text, "fuzz.toml");
    std::vector<std::string> names{"APP"};
    for (const auto& option : corral::optionTable()) names.push_back(option.name);
    for (const auto& name : names) {
      const auto* values = file.find(name);
      if (values == nullptr) continue;
      for (const auto& input : *values) {
        if (!input.source.starts_with("fuzz.toml:")) __builtin_trap();
        if (input.origin != corral::Origin::File) __builtin_trap();
      }
    }
  } catch (const corral::ConfigError& error) {
    const std::string_view what = error.what();
    if (!what.starts_with("fuzz.toml:") || what.find('\n') != std::string_view::npos) {
      __builtin_trap();
    }
  }
  return 0;
}

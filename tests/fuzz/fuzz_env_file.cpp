// --env-file's dotenv reader: any bytes either give NAME=value entries or EnvFileError naming
// a line of the file, and expanding what parsed never fails.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/env_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto assignments = corral::parseEnvFile(text);
    const corral::EnvLookup environment =
        [](const std::string& name) -> std::optional<std::string> {
      if (name == "HOME") return std::string("/root");
      return std::nullopt;
    };
    for (const std::string& entry : corral::expandEnvFile(assignments, environment)) {
      if (entry.find('=') == std::string::npos) __builtin_trap();
    }
  } catch (const corral::EnvFileError& error) {
    if (error.line < 1) __builtin_trap();
  }
  return 0;
}

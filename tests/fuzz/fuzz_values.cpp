// The value parsers of the command line and the environment: bind addresses, durations and
// sizes. Each either returns a value or throws ConfigError with one printable line.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/bind_address.hpp"
#include "config/config_error.hpp"
#include "config/duration.hpp"
#include "config/size.hpp"

namespace {

void oneLine(const corral::ConfigError& error) {
  const std::string_view what = error.what();
  if (what.empty() || what.find('\n') != std::string_view::npos) __builtin_trap();
}

template <typename Parse>
void check(Parse parse) {
  try {
    parse();
  } catch (const corral::ConfigError& error) {
    oneLine(error);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check([&] {
    const auto address = corral::parseBindAddress(text, "--bind");
    (void)address.str();
  });
  check([&] {
    const auto duration = corral::parseDuration(text, "--timeout");
    // What is printed parses back to the same duration.
    if (corral::parseDuration(corral::formatDuration(duration), "x") != duration) __builtin_trap();
  });
  check([&] {
    const auto bytes = corral::parseSize(text, "--max-worker-memory");
    if (bytes == 0 || corral::parseSize(corral::formatSize(bytes), "x") != bytes) __builtin_trap();
  });
  return 0;
}

// The whole command line and environment. The input is split at newlines: a line "NAME=value"
// whose NAME starts with CORRAL_ or UVICORN_ (or is PORT, WEB_CONCURRENCY or GUNICORN_CMD_ARGS)
// is an environment variable,
// every other line an argument. Whatever comes in, parseCommandLine returns a Config or an exit
// code, and prints at most one line of error, the last, after its warnings (one line each).

#include <cstddef>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args{"corral"};
  std::map<std::string, std::string> env;
  std::size_t start = 0;
  while (start <= input.size()) {
    const std::size_t end = std::min(input.find('\n', start), input.size());
    const std::string line(input.substr(start, end - start));
    const auto equals = line.find('=');
    const std::string name = line.substr(0, equals);
    if (equals != std::string::npos &&
        (name.starts_with("CORRAL_") || name.starts_with("UVICORN_") || name == "PORT" ||
         name == "WEB_CONCURRENCY" || name == "GUNICORN_CMD_ARGS")) {
      env[name] = line.substr(equals + 1);
    } else {
      args.push_back(line);
    }
    start = end + 1;
  }
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);
  const corral::EnvLookup lookup = [&](const std::string& name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  std::vector<std::string> names;
  for (const auto& [name, value] : env) names.push_back(name);
  std::ostringstream out;
  std::ostringstream err;
  const auto outcome =
      corral::parseCommandLine(static_cast<int>(args.size()), argv.data(), lookup, out, err, names);
  const std::string error = err.str();
  if (!outcome.config && outcome.exit_code != 0 && error.empty()) __builtin_trap();
  if (!error.empty() && error.back() != '\n') __builtin_trap();
  // Every line is a warning, an info line or the one error, which comes last.
  std::size_t from = 0;
  while (from < error.size()) {
    const std::size_t end = error.find('\n', from);
    const std::string_view message(error.data() + from, end - from);
    if (!message.starts_with("corral: ")) __builtin_trap();
    if (message.starts_with("corral: error: ") && end != error.size() - 1) __builtin_trap();
    from = end + 1;
  }
  return 0;
}

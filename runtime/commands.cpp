#include "runtime/commands.hpp"

#include <array>
#include <iostream>

#include "config/exit_codes.hpp"
#include "runtime/probe.hpp"
#include "runtime/run_command.hpp"

namespace corral {
namespace {

// One row per subcommand; `corral --help` (config/options.cpp) lists them too.
constexpr auto kCommands = std::to_array<Command>({
    {"probe", kProbeUsage, runProbe},
    {"run", kRunUsage, runCommand},
});

bool isHelp(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "-h" || arg == "--help") return true;
  }
  return false;
}

}  // namespace

std::span<const Command> commands() {
  return kCommands;
}

std::optional<int> runSubcommand(int argc, const char* const* argv) {
  if (argc < 2) return std::nullopt;
  const std::string_view name = argv[1];
  for (const Command& row : kCommands) {
    if (row.name != name) continue;
    const std::vector<std::string> args(argv + 2, argv + argc);
    if (isHelp(args)) {
      std::cout << row.usage;
      return kExitOk;
    }
    return row.run(args);
  }
  return std::nullopt;
}

int usageError(std::string_view name, std::string_view message) {
  std::cerr << "corral " << name << ": error: " << message << '\n';
  return kExitUsage;
}

}  // namespace corral

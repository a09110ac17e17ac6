#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// A subcommand: `corral NAME ARGS...` runs it instead of the supervisor.
struct Command {
  std::string_view name;
  std::string_view usage;  ///< what `corral NAME --help` prints
  /// Runs with the arguments after NAME; returns corral's exit code. Writes its own messages.
  int (*run)(const std::vector<std::string>& args);
};

/// Every subcommand, one row each.
std::span<const Command> commands();

/// If argv[1] names a subcommand, runs it and returns its exit code; otherwise nullopt, and
/// the line is corral's own options and APP. An APP is always module:attribute, so a
/// subcommand's name can never be mistaken for one.
std::optional<int> runSubcommand(int argc, const char* const* argv);

/// A subcommand's usage error: the one line "corral NAME: error: MESSAGE" on stderr; returns
/// kExitUsage.
int usageError(std::string_view name, std::string_view message);

}  // namespace corral

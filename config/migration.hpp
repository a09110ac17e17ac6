#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/inputs.hpp"
#include "config/options.hpp"

namespace corral {

// What gunicorn and uvicorn users bring: their names for corral's options (accepted on the
// command line), their options that do not apply (refused, each with the reason and what to use
// instead), and their environment variables (which corral does not read, and says so).

/// A gunicorn or uvicorn spelling corral accepts on the command line. The config file and the
/// CORRAL_* variables know only corral's own names, and point to them.
struct Synonym {
  std::string_view names;    ///< CLI11 spelling: "--keep-alive", "-p,--pid"
  std::string_view metavar;  ///< every synonym takes a value
  std::string_view target;   ///< the option it sets; empty for those read apart (binds, logs)
  std::string_view origin;   ///< whose name it is: "gunicorn", "uvicorn"
};

/// Every synonym, in the order --help lists them.
std::span<const Synonym> synonyms();

/// The synonym's long name ("--pid" for "-p,--pid"); CommandLine keeps its values under it.
std::string_view synonymName(const Synonym& synonym);

/// Every spelling of every synonym, for "did you mean".
std::vector<std::string> synonymSpellings();

/// The value a synonym gives its target, as an Input named after the synonym. Throws
/// ConfigError for a value the synonym cannot mean (--access-logfile to a file).
Input synonymInput(const Synonym& synonym, const std::string& value);

/// The addresses --host/--port, --uds and --fd ask for, as --bind values named after them.
/// --port without --host binds 127.0.0.1, and --host without --port port 8000, as uvicorn does.
std::vector<Input> synonymBinds(const CommandLine& line);

/// Checks the synonyms that set nothing (--error-logfile -, --worker-tmp-dir) and adds an info
/// line for those that are accepted only to be ignored.
void checkInertSynonyms(const CommandLine& line, std::vector<Notice>& notices);

/// Why a gunicorn or uvicorn option (`flag`, e.g. "--preload") does not apply to corral, and what
/// to use instead; nullopt for any other.
std::optional<std::string_view> refusalReason(std::string_view flag);

/// How a message names an option: as a flag, a config-file key or a variable.
enum class Spelling { Flag, Key, Variable };

/// `option` ("--timeout-keep-alive") spelled the given way.
std::string spell(std::string_view option, Spelling spelling);

/// The rest of the message about an unknown option, key or variable `name` (spelled as
/// `spelling` says, e.g. "CORRAL_KEEP_ALIVE"): why a gunicorn or uvicorn option does not apply
/// and what to use instead, corral's own name for a synonym, or "; did you mean X?" for a likely
/// typo. Empty when nothing is known of it. Starts with ": " or "; ".
std::string adviceFor(std::string_view name, Spelling spelling);

/// Warnings about variables of the environment that corral does not read and that look meant
/// for it: a CORRAL_* variable that names no option (a typo falls back to the default),
/// GUNICORN_CMD_ARGS and UVICORN_*, each with corral's equivalent.
std::vector<Notice> environmentNotices(const std::vector<std::string>& names, const EnvLookup& env);

}  // namespace corral

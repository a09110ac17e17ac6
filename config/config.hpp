#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/bind_address.hpp"
#include "config/config_error.hpp"
#include "config/duration.hpp"

namespace corral {

/// Ceiling of --workers (explicit or auto) and --max-surge.
inline constexpr int kMaxWorkers = 1024;

enum class LogLevel { Critical, Error, Warning, Info, Debug, Trace };

/// uvicorn's name for a level: "critical" ... "trace".
std::string_view logLevelName(LogLevel level);

/// The unprivileged identity workers run as (--user, --group).
struct WorkerUser {
  unsigned uid = 0;
  unsigned gid = 0;
  std::vector<unsigned> groups;  ///< supplementary groups, as initgroups(3) would set them
  std::string name;
};

/// Everything corral was asked to do, validated. Defaults live here and nowhere else.
struct Config {
  std::string app;                         ///< "module:attribute"
  int workers = 1;                         ///< --workers, CORRAL_WORKERS, WEB_CONCURRENCY, auto
  std::string workers_reason = "default";  ///< how the count was chosen, for the log
  std::optional<std::uint64_t> worker_memory_budget;  ///< bytes per worker, for --workers auto
  std::vector<BindAddress> binds;                     ///< never empty after parsing
  std::optional<BindAddress> admin_bind;              ///< nullopt when --admin-bind none
  int backlog = 2048;
  std::optional<int> limit_concurrency;  ///< per worker, passed to uvicorn
  Duration timeout_keep_alive{5000};
  Duration timeout{30000};  ///< heartbeat timeout; zero disables
  Duration graceful_timeout{30000};
  Duration startup_timeout{60000};
  Duration drain_delay{0};      ///< SIGTERM: serve this long with /ready failing
  int max_surge = 1;            ///< workers a reload starts ahead of the old ones
  int max_requests = 0;         ///< recycle a worker after this many; 0: never
  int max_requests_jitter = 0;  ///< plus random(0..jitter), drawn per worker
  std::optional<std::uint64_t> max_worker_memory;  ///< recycle above this resident size
  int min_ready = 0;                               ///< workers needed for /ready; 0 means all
  std::optional<bool> proxy_headers;               ///< unset: uvicorn's own default
  std::optional<std::string> forwarded_allow_ips;
  std::string root_path;
  std::string lifespan = "auto";  ///< auto | on | off
  std::string http = "auto";
  std::string loop = "auto";
  bool factory = false;
  bool access_log = true;
  std::string app_dir = ".";
  std::string python;                       ///< absolute path of the interpreter
  std::string start_method = "forkserver";  ///< forkserver | spawn
  LogLevel log_level = LogLevel::Info;
  std::string pidfile;                        ///< empty: none
  std::optional<WorkerUser> user;             ///< nullopt: workers run as corral does
  std::optional<unsigned> umask;              ///< applied before binding (unix sockets, pidfile)
  std::string env_file;                       ///< --env-file, absolute; empty: none
  std::vector<std::string> env_file_entries;  ///< its NAME=value entries, as read at start
  bool reload = false;                        ///< --reload: restart workers on file changes
  std::vector<std::string> reload_dirs;       ///< watched, canonical: --reload-dir, else --app-dir
  std::vector<std::string> reload_includes;   ///< globs of files that count, beside *.py
  std::vector<std::string> reload_excludes;   ///< globs of files and folders that never count
  Duration reload_delay{30};                  ///< quiet wanted after a change before a restart
};

/// Looks up an environment variable; injected so tests need not touch the real environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The real environment.
EnvLookup processEnvironment();

/// Result of parsing a command line: a Config to run, or an exit code after --help/--version
/// (printed to `out`) or an error (one line printed to `err`).
struct ParseOutcome {
  std::optional<Config> config;
  int exit_code = 0;
};

/// Parses argv and CORRAL_* variables (the command line wins), applies WEB_CONCURRENCY and PORT,
/// resolves the interpreter and validates everything. Never throws.
ParseOutcome parseCommandLine(int argc, const char* const* argv, const EnvLookup& env,
                              std::ostream& out, std::ostream& err);

}  // namespace corral

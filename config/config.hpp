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

/// --log-format: how corral and the workers write each log line.
enum class LogFormat { Text, Json };

/// uvicorn's name for a level: "critical" ... "trace".
std::string_view logLevelName(LogLevel level);

/// The unprivileged identity workers run as (--user, --group).
struct WorkerUser {
  unsigned uid = 0;
  unsigned gid = 0;
  std::vector<unsigned> groups;  ///< supplementary groups, as initgroups(3) would set them
  std::string name;
};

/// A header uvicorn adds to every response (--header NAME:VALUE).
struct ResponseHeader {
  std::string name;
  std::string value;
  bool operator==(const ResponseHeader&) const = default;
};

/// Everything corral was asked to do, validated. Defaults live here and nowhere else.
struct Config {
  std::string app;                         ///< "module:attribute"
  int workers = 1;                         ///< --workers, CORRAL_WORKERS, WEB_CONCURRENCY, auto
  std::string workers_reason = "default";  ///< how the count was chosen, for the log
  bool workers_from_host_cpus = false;     ///< auto, with nothing limited or requested
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
  bool preload = false;  ///< the worker template imports APP's module too
  bool access_log = true;
  std::string app_dir = ".";
  std::string python;                       ///< absolute path of the interpreter
  std::string start_method = "forkserver";  ///< forkserver | spawn
  LogLevel log_level = LogLevel::Info;
  LogFormat log_format = LogFormat::Text;
  std::string log_config;  ///< --log-config: the workers' logging, uvicorn's way; empty: corral's
  std::string pidfile;     ///< empty: none
  std::optional<WorkerUser> user;  ///< nullopt: workers run as corral does
  std::optional<unsigned> umask;   ///< applied before binding (unix sockets, pidfile)
  std::string chdir;               ///< absolute; corral and the workers run there; empty: stay
  std::string env_file;            ///< --env-file, absolute; empty: none
  std::vector<std::string> env_file_entries;  ///< its NAME=value entries, as read at start
  bool reload = false;                        ///< --reload: restart workers on file changes
  std::vector<std::string> reload_dirs;       ///< watched, canonical: --reload-dir, else --app-dir
  std::vector<std::string> reload_includes;   ///< globs of files that count, beside *.py
  std::vector<std::string> reload_excludes;   ///< globs of files and folders that never count
  Duration reload_delay{30};                  ///< quiet wanted after a change before a restart

  // Passed to uvicorn as they are; unset ones are left to uvicorn's defaults, so that a uvicorn
  // too old to know one is bothered only when it is set.
  std::optional<std::string> ssl_certfile;
  std::optional<std::string> ssl_keyfile;
  std::optional<std::string> ssl_keyfile_password;
  std::optional<int> ssl_version;    ///< a ssl.PROTOCOL_* number
  std::optional<int> ssl_cert_reqs;  ///< a ssl.CERT_* number: 0 none, 1 optional, 2 required
  std::optional<std::string> ssl_ca_certs;
  std::optional<std::string> ssl_ciphers;
  std::optional<std::string> ws;  ///< auto, none, websockets, wsproto or an import string
  std::optional<std::uint64_t> ws_max_size;
  std::optional<int> ws_max_queue;
  std::optional<Duration> ws_ping_interval;
  std::optional<Duration> ws_ping_timeout;
  std::optional<bool> ws_per_message_deflate;
  std::vector<ResponseHeader> headers;
  std::optional<bool> server_header;
  std::optional<bool> date_header;
  std::optional<std::uint64_t> h11_max_incomplete_event_size;

  std::string config_file;  ///< the --config file read, as given; empty: none
};

/// Something corral says about its settings that is no error: an info line about a flag it
/// accepts and needs not, a warning about a variable it does not read.
struct Notice {
  enum class Level { Info, Warning };
  Level level = Level::Warning;
  std::string text;
};

/// Looks up an environment variable; injected so tests need not touch the real environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The real environment.
EnvLookup processEnvironment();

/// Result of parsing a command line: a Config to run (or to check, for --check-config), or an
/// exit code after --help, --version or --print-config (printed to `out`) or an error (one line
/// printed to `err`, after the notices).
struct ParseOutcome {
  enum class Mode { Run, Check };
  std::optional<Config> config;
  int exit_code = 0;
  Mode mode = Mode::Run;
  std::vector<Notice> notices = {};  ///< for the caller to log, when there is a config
  std::string settings_report = {};  ///< --print-config --json's document, for GET /status
};

/// Parses argv, CORRAL_* variables and the --config file (the command line wins over the
/// environment, which wins over the file), applies WEB_CONCURRENCY and PORT, resolves the
/// interpreter and validates everything. `env_names` lists the environment's variables, for the
/// warnings about those that look meant for corral but are not read. Never throws.
ParseOutcome parseCommandLine(int argc, const char* const* argv, const EnvLookup& env,
                              std::ostream& out, std::ostream& err,
                              const std::vector<std::string>& env_names = {});

/// The names of the process environment's variables.
std::vector<std::string> environmentNames();

}  // namespace corral

#include "config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <sstream>

#include "config/exit_codes.hpp"
#include "config/resources.hpp"
#include "config/socket_activation.hpp"
#include "config/worker_user.hpp"

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build"
#endif

namespace corral {
namespace {

// ---------------------------------------------------------------------------------------------
// The option table. It drives CLI11 registration, the help text and the CORRAL_* variable
// names, so the three cannot drift apart.

enum class Group { Binding, Workers, Timeouts, Uvicorn, Process, General };

struct OptionSpec {
  std::string_view names;    ///< CLI11 spelling; "!" marks the negating half of a flag pair
  std::string_view metavar;  ///< empty for flags
  Group group;
  std::string_view help;  ///< '\n' starts a continuation line
};

constexpr auto kOptions = std::to_array<OptionSpec>({
    {"-b,--bind", "ADDR", Group::Binding,
     "Listen on ADDR; repeat to listen on several. ADDR is\n"
     "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; a bare HOST\n"
     "means port 8000 [0.0.0.0:$PORT if PORT is set, else\n"
     "127.0.0.1:8000]"},
    {"--admin-bind", "ADDR", Group::Binding,
     "Serve /healthz, /ready and /metrics on ADDR (HOST:PORT or\n"
     "unix:PATH); 'none' turns them off [127.0.0.1:8081]"},
    {"--backlog", "N", Group::Binding,
     "Connections that may wait for a worker to accept them,\n"
     "1-65535 [2048]"},
    {"-w,--workers", "N", Group::Workers,
     "Worker processes, 1-1024, or auto: one per whole CPU of\n"
     "the cgroup quota and affinity mask [$WEB_CONCURRENCY,\n"
     "else auto]"},
    {"--worker-memory-budget", "SIZE", Group::Workers,
     "With auto, at most the cgroup memory limit / SIZE\n"
     "workers (512Mi, 1G)"},
    {"--min-ready", "N", Group::Workers,
     "Workers that must be up for /ready to pass; 0 means all\n"
     "of them [0]"},
    {"--max-requests", "N", Group::Workers,
     "Replace a worker after it has served N requests; 0\n"
     "never [0]"},
    {"--max-requests-jitter", "N", Group::Workers,
     "Add a random 0..N to each worker's --max-requests [0]"},
    {"--max-worker-memory", "SIZE", Group::Workers,
     "Replace a worker whose resident memory stays above SIZE\n"
     "(512Mi, 1G) [no limit]"},
    {"--max-surge", "N", Group::Workers,
     "Workers a reload (SIGHUP) starts ahead of those it\n"
     "replaces [1]"},
    {"--python", "PATH", Group::Workers,
     "Interpreter that runs the workers; it needs uvicorn\n"
     "[$VIRTUAL_ENV/bin/python, else python3 on PATH]"},
    {"--timeout", "DURATION", Group::Timeouts,
     "Restart a worker whose heartbeat stops for this long;\n"
     "0 turns the check off [30s]"},
    {"--graceful-timeout", "DURATION", Group::Timeouts,
     "On SIGTERM, time the workers get to finish their\n"
     "requests before SIGKILL [30s]"},
    {"--startup-timeout", "DURATION", Group::Timeouts,
     "Time a worker gets to import APP and finish lifespan\n"
     "startup [60s]"},
    {"--drain-delay", "DURATION", Group::Timeouts,
     "On SIGTERM, keep serving this long with /ready failing\n"
     "before the drain starts (a preStop sleep) [0]"},
    {"--timeout-keep-alive", "DURATION", Group::Timeouts,
     "Close idle keep-alive connections after this long [5s]"},
    {"--[no-]proxy-headers", "", Group::Uvicorn,
     "Trust X-Forwarded-For and -Proto from the addresses in\n"
     "--forwarded-allow-ips [uvicorn's default]"},
    {"--forwarded-allow-ips", "IPS", Group::Uvicorn,
     "Comma-separated addresses or networks of trusted proxies\n"
     "[uvicorn's default]"},
    {"--root-path", "PATH", Group::Uvicorn, "ASGI root_path of an app mounted below a URL prefix"},
    {"--lifespan", "MODE", Group::Uvicorn, "auto, on or off [auto]"},
    {"--http", "IMPL", Group::Uvicorn, "auto, h11, httptools or an import string [auto]"},
    {"--loop", "IMPL", Group::Uvicorn, "auto, asyncio, uvloop or an import string [auto]"},
    {"--limit-concurrency", "N", Group::Uvicorn,
     "Per worker: answer 503 beyond N concurrent connections\n"
     "or tasks [no limit]"},
    {"--factory", "", Group::Uvicorn, "APP is a factory: call it without arguments to get the app"},
    {"--[no-]access-log", "", Group::Uvicorn, "Log every request [on]"},
    {"--app-dir", "DIR", Group::Uvicorn, "Directory put first on sys.path to import APP from [.]"},
    {"--pidfile", "PATH", Group::Process, "Write corral's pid to PATH once bound; removed at exit"},
    {"--user", "USER", Group::Process,
     "Run the workers as USER (name or uid); corral starts as\n"
     "root, binds, then drops privileges for them"},
    {"--group", "GROUP", Group::Process, "Run the workers with GROUP [USER's primary group]"},
    {"--umask", "MODE", Group::Process,
     "Octal umask for corral and the workers, e.g. 007 for a\n"
     "unix socket shared with a group [inherited]"},
    {"--log-level", "LEVEL", Group::General,
     "critical, error, warning, info, debug or trace [info]"},
    {"-h,--help", "", Group::General, "Show this help and exit"},
    {"--version", "", Group::General, "Show the version and exit"},
});

constexpr int kMaxWorkers = 1024;
constexpr std::string_view kDefaultAdminBind = "127.0.0.1:8081";
constexpr std::string_view kDefaultSearchPath = "/usr/local/bin:/usr/bin:/bin";

// "--[no-]x" is how the help spells a flag pair; CLI11 wants "--x,!--no-x".
std::string cliNames(std::string_view names) {
  constexpr std::string_view kPair = "--[no-]";
  if (names.substr(0, kPair.size()) != kPair) return std::string(names);
  const std::string base(names.substr(kPair.size()));
  return "--" + base + ",!--no-" + base;
}

std::string_view longName(const OptionSpec& spec) {
  const auto start = spec.names.find("--");
  return spec.names.substr(start);
}

// "--proxy-headers" for "--[no-]proxy-headers"; this is the name CLI11 files results under.
std::string primaryName(const OptionSpec& spec) {
  std::string name(longName(spec));
  const auto pair = name.find("[no-]");
  if (pair != std::string::npos) name.erase(pair, 5);
  return name;
}

// CORRAL_ + the long name in upper case with dashes as underscores: --graceful-timeout is
// CORRAL_GRACEFUL_TIMEOUT.
std::string envNameFor(std::string_view name) {
  while (!name.empty() && name.front() == '-') name.remove_prefix(1);
  std::string out = "CORRAL_";
  for (const char c : name) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages

/// One setting's text and where it came from, so a message can name the flag or variable.
struct Input {
  std::string source;  ///< "--workers", "CORRAL_WORKERS", "WEB_CONCURRENCY", "APP"
  std::string text;
};

[[noreturn]] void fail(const Input& input, std::string_view reason) {
  failInput(input.source, input.text, reason);
}

// ---------------------------------------------------------------------------------------------
// Where values come from

std::optional<std::string> nonEmptyEnv(const EnvLookup& env, const std::string& name) {
  auto value = env(name);
  // An empty variable means "not set", as `docker run -e CORRAL_WORKERS=` usually intends.
  if (!value || value->empty()) return std::nullopt;
  return value;
}

class Inputs {
 public:
  Inputs(const CLI::App& app, const EnvLookup& env) : app_(app), env_(env) {}

  /// The last value given on the command line (later flags win, as in gunicorn), else the
  /// option's CORRAL_* variable.
  std::optional<Input> get(const std::string& name) const {
    const auto& results = app_.get_option(name)->results();
    if (!results.empty()) return Input{name, results.back()};
    return variable(envNameFor(name));
  }

  std::vector<Input> all(const std::string& name) const {
    std::vector<Input> inputs;
    for (const auto& text : app_.get_option(name)->results()) inputs.push_back({name, text});
    return inputs;
  }

  std::optional<Input> variable(const std::string& name) const {
    auto value = nonEmptyEnv(env_, name);
    if (!value) return std::nullopt;
    return Input{name, std::move(*value)};
  }

  const EnvLookup& env() const { return env_; }

 private:
  const CLI::App& app_;
  const EnvLookup& env_;
};

// ---------------------------------------------------------------------------------------------
// Value parsers. Each names its input in the message and says what would be accepted.

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Digits only: no sign, no spaces, no hex. Absurdly long numbers saturate so that range checks
// report them as too large rather than as garbage.
std::optional<long long> wholeNumber(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) return LLONG_MAX;
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

int parseInRange(const Input& input, long long min, long long max, std::string_view expected) {
  const auto value = wholeNumber(input.text);
  if (!value || *value < min || *value > max) fail(input, expected);
  return static_cast<int>(*value);
}

int parseWorkers(const Input& input) {
  const auto value = wholeNumber(input.text);
  if (!value || *value < 1) fail(input, "expected a whole number of workers >= 1");
  if (*value > kMaxWorkers) {
    fail(input, "at most " + std::to_string(kMaxWorkers) + " workers are supported");
  }
  return static_cast<int>(*value);
}

bool parseBool(const Input& input) {
  const std::string text = lower(input.text);
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  fail(input, "expected true or false (or 1/0, yes/no)");
}

std::string parseChoice(const Input& input, std::initializer_list<std::string_view> choices,
                        std::string_view expected) {
  std::string text = lower(input.text);
  if (std::find(choices.begin(), choices.end(), text) == choices.end()) fail(input, expected);
  return text;
}

std::string parseNonEmpty(const Input& input, std::string_view expected) {
  if (input.text.empty()) fail(input, expected);
  return input.text;
}

Duration parseTimeout(const Input& input) {
  return parseDuration(input.text, input.source);
}

LogLevel parseLogLevel(const Input& input) {
  constexpr std::array kLevels = {LogLevel::Critical, LogLevel::Error, LogLevel::Warning,
                                  LogLevel::Info,     LogLevel::Debug, LogLevel::Trace};
  const std::string text = lower(input.text);
  for (const LogLevel level : kLevels) {
    if (logLevelName(level) == text) return level;
  }
  fail(input, "expected critical, error, warning, info, debug or trace");
}

// Python identifiers; bytes >= 0x80 pass so that non-ASCII module names are left to Python.
bool isIdentifier(std::string_view text) {
  const auto word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  if (text.empty() || std::isdigit(static_cast<unsigned char>(text.front())) != 0) return false;
  return std::all_of(text.begin(), text.end(), word);
}

bool isDottedName(std::string_view text) {
  while (true) {
    const auto dot = text.find('.');
    if (!isIdentifier(text.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    text.remove_prefix(dot + 1);
  }
}

std::string parseApp(const std::optional<Input>& input) {
  if (!input) {
    throw ConfigError("missing APP (module:attribute, e.g. main:app); run 'corral --help'");
  }
  const std::string_view text = input->text;
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || !isDottedName(text.substr(0, colon)) ||
      !isDottedName(text.substr(colon + 1))) {
    fail(*input, "expected module:attribute, e.g. main:app or pkg.module:create_app");
  }
  return input->text;
}

// ---------------------------------------------------------------------------------------------
// Binding

std::vector<Input> splitList(const Input& input) {
  std::vector<Input> items;
  std::string item;
  for (const char c : input.text + ",") {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c)) != 0) {
      if (!item.empty()) items.push_back({input.source, item});
      item.clear();
    } else {
      item += c;
    }
  }
  if (items.empty()) fail(input, "expected addresses separated by commas or spaces");
  return items;
}

std::vector<Input> bindInputs(const Inputs& inputs) {
  auto given = inputs.all("--bind");
  if (!given.empty()) return given;
  if (const auto listed = inputs.variable("CORRAL_BIND")) return splitList(*listed);
  return {};
}

// Platforms such as Heroku and Cloud Run announce the port to serve in PORT; gunicorn honours
// it the same way.
BindAddress defaultBind(const Inputs& inputs) {
  BindAddress address;
  if (const auto port = inputs.variable("PORT")) {
    address.host = "0.0.0.0";
    address.port = static_cast<std::uint16_t>(
        parseInRange(*port, 0, 65535, "expected a port number from 0 to 65535"));
  } else {
    address.host = "127.0.0.1";
    address.port = 8000;
  }
  return address;
}

// Port 0 asks the kernel for a fresh port each time, so two such binds never collide.
bool collides(const BindAddress& a, const BindAddress& b) {
  return a == b && !(a.kind == BindAddress::Kind::Tcp && a.port == 0);
}

BindAddress fdAddress(int fd) {
  BindAddress address;
  address.kind = BindAddress::Kind::Fd;
  address.fd = fd;
  return address;
}

// systemd's sockets (LISTEN_FDS) are binds; the one named "admin" is the admin endpoint.
std::vector<BindAddress> activatedBinds(const Inputs& inputs, bool admin) {
  std::vector<BindAddress> binds;
  for (const auto& socket : activatedSockets(inputs.env(), static_cast<int>(::getpid()))) {
    if ((socket.name == kAdminSocketName) == admin) binds.push_back(fdAddress(socket.fd));
  }
  return binds;
}

std::vector<BindAddress> parseBinds(const Inputs& inputs) {
  std::vector<BindAddress> binds = activatedBinds(inputs, false);
  for (const auto& input : bindInputs(inputs)) {
    const auto address = parseBindAddress(input.text, input.source);
    for (const auto& earlier : binds) {
      if (collides(earlier, address)) {
        fail(input, "duplicate of the earlier bind " + earlier.str());
      }
    }
    binds.push_back(address);
  }
  if (binds.empty()) binds.push_back(defaultBind(inputs));
  return binds;
}

// The default must not take an address the user asked to serve the app on.
BindAddress defaultAdminBind(const std::vector<BindAddress>& binds) {
  auto address = parseBindAddress(kDefaultAdminBind, "--admin-bind");
  for (const auto& bind : binds) {
    if (collides(bind, address)) {
      throw ConfigError("bind address " + bind.str() + " is also the admin server's default; " +
                        "pass --admin-bind with another address or 'none'");
    }
  }
  return address;
}

std::optional<BindAddress> parseAdminBind(const Inputs& inputs,
                                          const std::vector<BindAddress>& binds) {
  const auto input = inputs.get("--admin-bind");
  if (!input) {
    const auto activated = activatedBinds(inputs, true);
    if (!activated.empty()) return activated.front();
    return defaultAdminBind(binds);
  }
  if (lower(input->text) == "none") return std::nullopt;
  const auto address = parseBindAddress(input->text, input->source);
  if (address.kind == BindAddress::Kind::Fd) fail(*input, "expected HOST:PORT or unix:PATH");
  for (const auto& bind : binds) {
    if (collides(bind, address)) {
      fail(*input, "already used by a --bind address; choose another or 'none'");
    }
  }
  return address;
}

// ---------------------------------------------------------------------------------------------
// The interpreter

bool isExecutableFile(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// Lexical only: a virtualenv's python is a symlink, and resolving it would lose the venv.
std::string absolutePath(const std::string& path) {
  std::error_code error;
  const auto absolute = std::filesystem::absolute(path, error);
  if (error) {
    throw ConfigError("cannot make '" + printable(path) + "' absolute: " + error.message());
  }
  return absolute.lexically_normal().string();
}

std::optional<std::string> searchPath(const std::string& name, const Inputs& inputs) {
  const auto path = nonEmptyEnv(inputs.env(), "PATH").value_or(std::string(kDefaultSearchPath));
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find(':', start), path.size());
    // An empty PATH entry means the current directory, as for execvp.
    std::string candidate = end == start ? "." : path.substr(start, end - start);
    candidate += "/" + name;
    if (isExecutableFile(candidate)) return absolutePath(candidate);
    start = end + 1;
  }
  return std::nullopt;
}

std::string checkInterpreterFile(const Input& input, const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) fail(input, "no such file");
  if (S_ISDIR(info.st_mode)) fail(input, "is a directory; pass the interpreter itself");
  if (!isExecutableFile(path)) fail(input, "not an executable file");
  return absolutePath(path);
}

std::string resolvePython(const Inputs& inputs) {
  constexpr std::string_view kInstall = "install Python 3 or pass --python /path/to/python";
  if (const auto chosen = inputs.get("--python")) {
    if (chosen->text.empty()) fail(*chosen, "expected an interpreter name or path");
    if (chosen->text.find('/') != std::string::npos) {
      return checkInterpreterFile(*chosen, chosen->text);
    }
    if (auto found = searchPath(chosen->text, inputs)) return *found;
    fail(*chosen, "not found on PATH; " + std::string(kInstall));
  }
  if (const auto venv = inputs.variable("VIRTUAL_ENV")) {
    const std::string python = venv->text + "/bin/python";
    if (isExecutableFile(python)) return absolutePath(python);
    fail(*venv, printable(python) + " is missing or not executable; activate a working " +
                    "virtualenv or pass --python /path/to/python");
  }
  if (auto found = searchPath("python3", inputs)) return *found;
  throw ConfigError("python3 not found on PATH; " + std::string(kInstall));
}

// ---------------------------------------------------------------------------------------------
// Assembling the Config

template <typename T, typename Parse>
void apply(const std::optional<Input>& input, T& field, Parse parse) {
  if (input) field = parse(*input);
}

void applyWorkers(const Inputs& inputs, Config& config) {
  auto input = inputs.get("--workers");
  // uvicorn and gunicorn both read WEB_CONCURRENCY; honouring it makes corral a drop-in.
  if (!input) input = inputs.variable("WEB_CONCURRENCY");
  apply(inputs.get("--worker-memory-budget"), config.worker_memory_budget,
        [](const Input& in) { return parseSize(in.text, in.source); });
  if (!input || lower(input->text) == "auto") {
    // gunicorn and uvicorn count the host's CPUs, which inside a CPU-limited container has
    // OOM-killed real deployments (gunicorn #2028); the cgroup quota is what the app may use.
    const WorkerCount count =
        autoWorkers(detectCpuLimit(), detectMemoryLimit(), config.worker_memory_budget);
    config.workers = count.workers;
    config.workers_reason = count.explanation;
  } else {
    config.workers = parseWorkers(*input);
    config.workers_reason = describeInput(input->source, input->text);
  }
  apply(inputs.get("--min-ready"), config.min_ready, [&](const Input& in) {
    const int min_ready = parseInRange(in, 0, INT_MAX, "expected a whole number >= 0 (0: all)");
    if (min_ready > config.workers) {
      fail(in, "more than the " + std::to_string(config.workers) +
                   " workers; use at most that many, or 0 for all");
    }
    return min_ready;
  });
}

void applyRecycling(const Inputs& inputs, Config& config) {
  apply(inputs.get("--max-requests"), config.max_requests, [](const Input& in) {
    return parseInRange(in, 0, INT_MAX / 2, "expected a whole number of requests, 0 for never");
  });
  apply(inputs.get("--max-requests-jitter"), config.max_requests_jitter, [](const Input& in) {
    return parseInRange(in, 0, INT_MAX / 2, "expected a whole number of requests >= 0");
  });
  apply(inputs.get("--max-worker-memory"), config.max_worker_memory,
        [](const Input& in) { return parseSize(in.text, in.source); });
  apply(inputs.get("--max-surge"), config.max_surge, [](const Input& in) {
    return parseInRange(in, 1, kMaxWorkers, "expected a whole number of workers >= 1");
  });
}

void applyTimeouts(const Inputs& inputs, Config& config) {
  apply(inputs.get("--timeout-keep-alive"), config.timeout_keep_alive, parseTimeout);
  apply(inputs.get("--timeout"), config.timeout, parseTimeout);
  apply(inputs.get("--graceful-timeout"), config.graceful_timeout, parseTimeout);
  apply(inputs.get("--drain-delay"), config.drain_delay, parseTimeout);
  apply(inputs.get("--startup-timeout"), config.startup_timeout, [](const Input& in) {
    const Duration timeout = parseTimeout(in);
    if (timeout == Duration::zero()) fail(in, "must be longer than 0");
    return timeout;
  });
}

void applyUvicorn(const Inputs& inputs, Config& config) {
  apply(inputs.get("--proxy-headers"), config.proxy_headers, parseBool);
  apply(inputs.get("--forwarded-allow-ips"), config.forwarded_allow_ips,
        [](const Input& in) { return in.text; });
  apply(inputs.get("--root-path"), config.root_path, [](const Input& in) { return in.text; });
  apply(inputs.get("--lifespan"), config.lifespan, [](const Input& in) {
    return parseChoice(in, {"auto", "on", "off"}, "expected auto, on or off");
  });
  apply(inputs.get("--http"), config.http, [](const Input& in) {
    return parseNonEmpty(in, "expected auto, h11, httptools or an import string");
  });
  apply(inputs.get("--loop"), config.loop, [](const Input& in) {
    return parseNonEmpty(in, "expected auto, asyncio, uvloop or an import string");
  });
  apply(inputs.get("--limit-concurrency"), config.limit_concurrency, [](const Input& in) {
    return parseInRange(in, 1, INT_MAX, "expected a whole number >= 1");
  });
  apply(inputs.get("--factory"), config.factory, parseBool);
  apply(inputs.get("--access-log"), config.access_log, parseBool);
  apply(inputs.get("--app-dir"), config.app_dir, [](const Input& in) {
    // Checked here: a missing directory would otherwise surface as a puzzling ImportError.
    std::error_code error;
    if (!std::filesystem::is_directory(in.text, error)) fail(in, "no such directory");
    return in.text;
  });
}

unsigned parseUmask(const Input& input) {
  std::string_view digits = input.text;
  if (digits.starts_with("0o")) digits.remove_prefix(2);
  unsigned mode = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mode, 8);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || mode > 0777) {
    fail(input, "expected an octal mode from 000 to 777, e.g. 022 or 007");
  }
  return mode;
}

void applyProcess(const Inputs& inputs, Config& config) {
  apply(inputs.get("--pidfile"), config.pidfile,
        [](const Input& in) { return parseNonEmpty(in, "expected a file path"); });
  apply(inputs.get("--umask"), config.umask, parseUmask);
  const auto user = inputs.get("--user");
  const auto group = inputs.get("--group");
  if (group && !user)
    fail(*group, "needs --user too: corral drops privileges for the workers as a whole");
  if (user) {
    config.user = resolveWorkerUser(user->source, user->text, group ? group->source : "",
                                    group ? std::optional(group->text) : std::nullopt);
  }
}

Config buildConfig(const Inputs& inputs) {
  Config config;
  config.app = parseApp(inputs.get("APP"));
  applyWorkers(inputs, config);
  config.binds = parseBinds(inputs);
  config.admin_bind = parseAdminBind(inputs, config.binds);
  apply(inputs.get("--backlog"), config.backlog, [](const Input& in) {
    return parseInRange(in, 1, 65535, "expected a whole number from 1 to 65535");
  });
  applyTimeouts(inputs, config);
  applyRecycling(inputs, config);
  applyUvicorn(inputs, config);
  apply(inputs.get("--log-level"), config.log_level, parseLogLevel);
  applyProcess(inputs, config);
  // Last: it touches the filesystem, and a typo elsewhere is the likelier mistake.
  config.python = resolvePython(inputs);
  return config;
}

// ---------------------------------------------------------------------------------------------
// The command line

void registerOptions(CLI::App& app) {
  app.set_help_flag();  // our own -h/--help prints our own text
  app.allow_extras();   // unknown arguments are reported by us, in one line
  for (const auto& spec : kOptions) {
    const std::string names = cliNames(spec.names);
    // Every occurrence is kept as raw text; conversion and "last one wins" are ours.
    CLI::Option* option = spec.metavar.empty() ? app.add_flag(names) : app.add_option(names);
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    if (!spec.metavar.empty()) option->allow_extra_args(false);
  }
  app.add_option("APP");
}

std::string displayName(const OptionSpec& spec) {
  const bool has_short = spec.names.front() == '-' && spec.names[1] != '-';
  std::string out = has_short ? "  " + std::string(spec.names.substr(0, 2)) + ", " : "      ";
  out += longName(spec);
  if (!spec.metavar.empty()) out += " " + std::string(spec.metavar);
  return out;
}

void renderOption(std::ostream& out, const OptionSpec& spec) {
  constexpr std::size_t kColumn = 37;
  const std::string name = displayName(spec);
  const std::string indent(kColumn, ' ');
  out << name;
  if (name.size() + 2 > kColumn) {
    out << '\n' << indent;
  } else {
    out << std::string(kColumn - name.size(), ' ');
  }
  for (const char c : spec.help) {
    out << c;
    if (c == '\n') out << indent;
  }
  out << '\n';
}

std::string helpText() {
  constexpr std::array<std::pair<Group, std::string_view>, 6> kHeadings = {{
      {Group::Binding, "Binding:"},
      {Group::Workers, "Workers:"},
      {Group::Timeouts, "Timeouts (DURATION: 30 and 0.5 are seconds; also 500ms, 30s, 2m, 1h):"},
      {Group::Uvicorn, "Passed to uvicorn (same names and meanings as uvicorn's options):"},
      {Group::Process, "Process:"},
      {Group::General, "General:"},
  }};
  std::ostringstream out;
  out << "Usage: corral [OPTIONS] APP\n\n"
         "Runs the ASGI app APP (module:attribute, e.g. main:app) in a pool of uvicorn workers:\n"
         "corral binds the sockets, restarts workers that die or hang, and drains them on "
         "SIGTERM.\n";
  for (const auto& [group, heading] : kHeadings) {
    out << '\n' << heading << '\n';
    for (const auto& spec : kOptions) {
      if (spec.group == group) renderOption(out, spec);
    }
  }
  out << "\n"
         "Every option can also be set in the environment as CORRAL_<OPTION>, upper case with\n"
         "dashes as underscores: CORRAL_WORKERS=4, CORRAL_GRACEFUL_TIMEOUT=1m,\n"
         "CORRAL_PROXY_HEADERS=true, CORRAL_APP=main:app. The command line wins; empty variables\n"
         "are ignored. CORRAL_BIND may hold several addresses separated by commas or spaces.\n"
         "\n"
      << "Exit codes: " << kExitOk << " stopped cleanly, " << kExitFailure << " runtime failure, "
      << kExitUsage << " bad usage or configuration,\n"
      << kExitBootFailure << " APP failed to import or start, " << kExitInterrupted
      << " interrupted (Ctrl-C).\n";
  return out.str();
}

// Hints for flags that people bring over from gunicorn and uvicorn.
std::string_view unknownOptionHint(std::string_view flag) {
  if (flag == "--host" || flag == "--port") return "use --bind HOST:PORT";
  if (flag == "--uds") return "use --bind unix:PATH";
  if (flag == "--fd") return "use --bind fd://N";
  if (flag == "-k" || flag == "--worker-class") return "corral always runs uvicorn workers";
  if (flag == "--reload") return "corral does not reload; use uvicorn --reload while developing";
  return "run 'corral --help' for the list";
}

[[noreturn]] void rejectUnknownOption(const std::string& arg) {
  const std::string flag = arg.substr(0, arg.find('='));
  throw ConfigError("unknown option '" + printable(flag) + "'; " +
                    std::string(unknownOptionHint(flag)));
}

bool looksLikeOption(const std::string& arg) {
  return arg.size() > 1 && arg.front() == '-';
}

void rejectExtras(const std::vector<std::string>& extras, const CLI::App& app) {
  bool after_separator = false;
  std::optional<std::string> stray;
  for (const auto& arg : extras) {
    if (arg == "--" && !after_separator) {
      after_separator = true;
    } else if (!after_separator && looksLikeOption(arg)) {
      rejectUnknownOption(arg);
    } else if (!stray) {
      stray = arg;
    }
  }
  const auto& positional = app.get_option("APP")->results();
  const std::string app_text = positional.empty() ? "" : positional.front();
  // CLI11 files "---x" as the positional; without a "--" before it, it was meant as an option.
  if (!after_separator && looksLikeOption(app_text)) rejectUnknownOption(app_text);
  if (stray) {
    throw ConfigError("unexpected argument '" + printable(*stray) + "' after APP '" +
                      printable(app_text) + "'; corral runs a single app");
  }
}

// Every way an option can be written: "-w", "--workers", "--no-access-log".
std::vector<std::string> spellings(const OptionSpec& spec) {
  std::vector<std::string> out;
  std::stringstream names(cliNames(spec.names));
  for (std::string name; std::getline(names, name, ',');) {
    out.push_back(name.front() == '!' ? name.substr(1) : name);
  }
  return out;
}

bool isOptionSpelling(std::string_view arg) {
  for (const auto& spec : kOptions) {
    for (const std::string& name : spellings(spec)) {
      if (arg == name || arg.substr(0, name.size() + 1) == name + "=") return true;
    }
  }
  return false;
}

ConfigError needsValue(const OptionSpec& spec) {
  const std::string name = primaryName(spec);
  return ConfigError(name + " needs a value: " + name + " " + std::string(spec.metavar));
}

// CLI11 takes whatever follows a flag as its value, so "--workers --bind x" would read the
// value "--bind"; saying the value is missing is closer to the truth.
void rejectSwallowedOptions(const CLI::App& app) {
  for (const auto& spec : kOptions) {
    if (spec.metavar.empty()) continue;
    for (const auto& value : app.get_option(primaryName(spec))->results()) {
      if (isOptionSpelling(value)) throw needsValue(spec);
    }
  }
}

// CLI11's own messages are phrased for programmers; this rewrites the ones users can cause.
ConfigError translate(const CLI::ParseError& error) {
  const std::string what = error.what();
  for (const auto& spec : kOptions) {
    // CLI11 2.1 words a missing value as "--workers: 1 required N missing".
    if (!spec.metavar.empty() && what.rfind(primaryName(spec) + ":", 0) == 0) {
      return needsValue(spec);
    }
  }
  return ConfigError(printable(what) + "; run 'corral --help'");
}

bool wasGiven(const CLI::App& app, const std::string& name) {
  return app.get_option(name)->count() > 0;
}

ParseOutcome parseOrThrow(int argc, const char* const* argv, const EnvLookup& env,
                          std::ostream& out) {
  CLI::App app{"", "corral"};
  registerOptions(app);
  // CLI11 consumes arguments from the back of the vector.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);
  std::optional<ConfigError> parse_error;
  try {
    app.parse(args);
  } catch (const CLI::ParseError& error) {
    parse_error = translate(error);
  }
  // --help and --version win over mistakes elsewhere on the line.
  if (wasGiven(app, "--help")) {
    out << helpText();
    return {std::nullopt, kExitOk};
  }
  if (wasGiven(app, "--version")) {
    out << "corral " << CORRAL_VERSION << '\n';
    return {std::nullopt, kExitOk};
  }
  if (parse_error) throw *parse_error;
  rejectSwallowedOptions(app);
  rejectExtras(app.remaining(), app);
  return {buildConfig(Inputs(app, env)), kExitOk};
}

}  // namespace

std::string_view logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return "critical";
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    case LogLevel::Trace: return "trace";
  }
  return "info";
}

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

ParseOutcome parseCommandLine(int argc, const char* const* argv, const EnvLookup& env,
                              std::ostream& out, std::ostream& err) {
  try {
    return parseOrThrow(argc, argv, env, out);
  } catch (const ConfigError& error) {
    err << "corral: error: " << error.what() << '\n';
    return {std::nullopt, kExitUsage};
  } catch (const std::exception& error) {
    // A bug or resource exhaustion, not a usage mistake.
    err << "corral: error: internal error while reading options: " << printable(error.what())
        << '\n';
  } catch (...) {
    err << "corral: error: internal error while reading options\n";
  }
  return {std::nullopt, kExitFailure};
}

}  // namespace corral

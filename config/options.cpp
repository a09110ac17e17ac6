#include "config/options.hpp"

#include <CLI/CLI.hpp>
#include <array>
#include <cctype>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "config/config_error.hpp"
#include "config/exit_codes.hpp"
#include "config/migration.hpp"

namespace corral {
namespace {

// ---------------------------------------------------------------------------------------------
// The option table. It drives CLI11 registration, the help text, the CORRAL_* variable names,
// the config file's keys and --print-config, so none of them can drift apart.

enum class Group { Binding, Workers, Timeouts, Uvicorn, Process, Development, General };

// Traits of a row, or-ed together; most rows have none.
constexpr unsigned kRepeatable = 1U << 0;       ///< every value is kept (--bind), not the last
constexpr unsigned kCommandLineOnly = 1U << 1;  ///< no CORRAL_* variable, no config-file key
constexpr unsigned kNotInFile = 1U << 2;        ///< no config-file key (--config itself)

struct OptionSpec {
  std::string_view names;    ///< CLI11 spelling; "!" marks the negating half of a flag pair
  std::string_view metavar;  ///< empty for flags
  Group group;
  std::string_view help;  ///< '\n' starts a continuation line
  unsigned traits = 0;
};

constexpr auto kOptions = std::to_array<OptionSpec>({
    {"-b,--bind", "ADDR", Group::Binding,
     "Listen on ADDR; repeat to listen on several. ADDR is\n"
     "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; a bare HOST\n"
     "means port 8000 [0.0.0.0:$PORT if PORT is set, else\n"
     "127.0.0.1:8000]",
     kRepeatable},
    {"--admin-bind", "ADDR", Group::Binding,
     "Serve /healthz, /ready and /metrics on ADDR (HOST:PORT or\n"
     "unix:PATH); 'none' turns them off [port 8081 on the first\n"
     "--bind's host, 127.0.0.1 if it has none]"},
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
    {"--preload", "", Group::Workers,
     "Import APP's module in the worker template, so that the\n"
     "workers share its memory; lifespan startup still runs in\n"
     "each worker, and SIGHUP still loads new code"},
    {"--max-surge", "N", Group::Workers,
     "Workers a reload (SIGHUP) starts ahead of those it\n"
     "replaces [1]"},
    {"--python", "PATH", Group::Workers,
     "Interpreter that runs the workers; it needs uvicorn\n"
     "[$VIRTUAL_ENV/bin/python, else the python beside corral\n"
     "in a virtualenv's bin/, else python3 on PATH]"},
    {"--start-method", "METHOD", Group::Workers,
     "forkserver: fork new workers from a process that has\n"
     "imported uvicorn (milliseconds of CPU each); spawn: a\n"
     "fresh interpreter each [forkserver]"},
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
    {"--[no-]server-header", "", Group::Uvicorn, "Send 'Server: uvicorn' [on]"},
    {"--[no-]date-header", "", Group::Uvicorn, "Send a Date header [on]"},
    {"--header", "NAME:VALUE", Group::Uvicorn,
     "Add this header to every response; repeat for several", kRepeatable},
    {"--h11-max-incomplete-event-size", "SIZE", Group::Uvicorn,
     "With h11, the most bytes of an unfinished request head\n"
     "to buffer (uvicorn >= 0.18) [16Ki]"},
    {"--ws", "IMPL", Group::Uvicorn,
     "WebSockets: auto, none, websockets, wsproto or an\n"
     "import string [auto]"},
    {"--ws-max-size", "SIZE", Group::Uvicorn, "Largest WebSocket message accepted [16Mi]"},
    {"--ws-max-queue", "N", Group::Uvicorn,
     "WebSocket messages held for the app (uvicorn >= 0.23) [32]"},
    {"--ws-ping-interval", "DURATION", Group::Uvicorn, "WebSocket ping interval [20s]"},
    {"--ws-ping-timeout", "DURATION", Group::Uvicorn, "WebSocket ping timeout [20s]"},
    {"--[no-]ws-per-message-deflate", "", Group::Uvicorn, "WebSocket compression [on]"},
    {"--ssl-certfile", "FILE", Group::Uvicorn, "Serve HTTPS with this certificate (PEM)"},
    {"--ssl-keyfile", "FILE", Group::Uvicorn, "The certificate's private key (PEM)"},
    {"--ssl-keyfile-password", "PASSWORD", Group::Uvicorn,
     "Password of an encrypted --ssl-keyfile (better set\n"
     "in CORRAL_SSL_KEYFILE_PASSWORD than on the command line)"},
    {"--ssl-version", "N", Group::Uvicorn, "A ssl.PROTOCOL_* number [TLS_SERVER]"},
    {"--ssl-cert-reqs", "N", Group::Uvicorn,
     "Client certificates: 0 none, 1 optional, 2 required [0]"},
    {"--ssl-ca-certs", "FILE", Group::Uvicorn, "CA certificates to verify clients with"},
    {"--ssl-ciphers", "CIPHERS", Group::Uvicorn, "OpenSSL cipher list [Python's default]"},
    {"--pidfile", "PATH", Group::Process, "Write corral's pid to PATH once bound; removed at exit"},
    {"--user", "USER", Group::Process,
     "Run the workers as USER (name or uid); corral starts as\n"
     "root, binds, then drops privileges for them"},
    {"--group", "GROUP", Group::Process, "Run the workers with GROUP [USER's primary group]"},
    {"--umask", "MODE", Group::Process,
     "Octal umask for corral and the workers, e.g. 007 for a\n"
     "unix socket shared with a group [inherited]"},
    {"--chdir", "DIR", Group::Process,
     "Run corral and the workers in DIR, as gunicorn's --chdir;\n"
     "relative paths of other options are taken from there"},
    {"--env-file", "FILE", Group::Process,
     "Add the KEY=value lines of FILE (the dotenv format\n"
     "uvicorn reads) to the workers' environment; a variable\n"
     "set in corral's environment wins"},
    {"--reload", "", Group::Development,
     "Restart the workers when the app's files change, and\n"
     "run 1 worker unless --workers says otherwise"},
    {"--reload-dir", "DIR", Group::Development,
     "Watch DIR and its subfolders instead of --app-dir;\n"
     "repeat for several"},
    {"--reload-include", "GLOB", Group::Development,
     "Files whose changes count, besides *.py; repeatable"},
    {"--reload-exclude", "GLOB", Group::Development,
     "Files and folders whose changes never count, besides\n"
     ".* (dot-files and dot-folders), __pycache__, venv,\n"
     "node_modules, *.py[cod], *~; repeatable"},
    {"--reload-delay", "DURATION", Group::Development,
     "Wait for this much quiet after a change before the\n"
     "restart, so that a save or a checkout makes one [30ms]"},
    {"--log-level", "LEVEL", Group::General,
     "critical, error, warning, info, debug or trace [info]"},
    {"--log-format", "FORMAT", Group::General,
     "text, or json: every line of corral and the workers is\n"
     "one JSON object [text]"},
    {"--log-config", "PATH", Group::General,
     "The workers' logging config, as uvicorn's option: a\n"
     "dictConfig .json or .yaml, or a fileConfig file; it\n"
     "replaces corral's format for the workers"},
    {"-c,--config", "FILE", Group::General,
     "Read settings from this TOML file, keys named as the\n"
     "long options (workers = 4); the environment and the\n"
     "command line win over it [$CORRAL_CONFIG]",
     kNotInFile},
    {"--check-config", "", Group::General,
     "Check the settings, the interpreter, its uvicorn and\n"
     "APP's module, start nothing, exit 0 or 2",
     kCommandLineOnly},
    {"--print-config", "", Group::General, "Print every setting and where it came from, then exit",
     kCommandLineOnly},
    {"--json", "", Group::General, "With --print-config: print JSON", kCommandLineOnly},
    {"-h,--help", "", Group::General, "Show this help and exit", kCommandLineOnly},
    {"--version", "", Group::General, "Show the version and exit", kCommandLineOnly},
});

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

// ---------------------------------------------------------------------------------------------
// Help

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

// ---------------------------------------------------------------------------------------------
// Reading the command line with CLI11

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
  // gunicorn's and uvicorn's names, unless the table has taken one over as an option of its own.
  for (const Synonym& synonym : synonyms()) {
    if (findOption(synonymName(synonym)) != nullptr) continue;
    app.add_option(std::string(synonym.names))
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->allow_extra_args(false);
  }
  app.add_option("APP");
}

// For flags that people bring over from gunicorn and uvicorn, why they do not apply; for a
// typo, the option meant.
std::string unknownOptionHint(std::string_view flag) {
  if (const auto reason = refusalReason(flag)) return ": " + std::string(*reason);
  const std::string advice = adviceFor(flag, Spelling::Flag);
  return advice.empty() ? "; run 'corral --help' for the list" : advice;
}

[[noreturn]] void rejectUnknownOption(const std::string& arg) {
  const std::string flag = arg.substr(0, arg.find('='));
  if (refusalReason(flag)) throw ConfigError(printable(flag) + unknownOptionHint(flag));
  throw ConfigError("unknown option '" + printable(flag) + "'" + unknownOptionHint(flag));
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
  std::vector<std::string> names = synonymSpellings();
  for (const auto& spec : kOptions) {
    for (std::string& name : spellings(spec)) names.push_back(std::move(name));
  }
  return std::any_of(names.begin(), names.end(), [&](const std::string& name) {
    return arg == name || arg.substr(0, name.size() + 1) == name + "=";
  });
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
  for (const Synonym& synonym : synonyms()) {
    const std::string name(synonymName(synonym));
    if (findOption(name) != nullptr) continue;
    for (const auto& value : app.get_option(name)->results()) {
      if (isOptionSpelling(value)) {
        std::string message = name;
        message.append(" needs a value: ").append(name).append(" ").append(synonym.metavar);
        throw ConfigError(message);
      }
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

// Copies out what CLI11 collected, so that nothing past this file depends on it.
CommandLine givenValues(const CLI::App& app) {
  CommandLine line;
  for (const auto& spec : kOptions) {
    const std::string name = primaryName(spec);
    line.values[name] = app.get_option(name)->results();
  }
  for (const Synonym& synonym : synonyms()) {
    const std::string name(synonymName(synonym));
    if (findOption(name) == nullptr) line.values[name] = app.get_option(name)->results();
  }
  line.values["APP"] = app.get_option("APP")->results();
  return line;
}

OptionInfo infoFor(const OptionSpec& spec) {
  OptionInfo info;
  info.name = primaryName(spec);
  const bool has_short = spec.names.size() > 1 && spec.names[1] != '-';
  if (has_short) info.short_name = std::string(spec.names.substr(0, 2));
  info.metavar = spec.metavar;
  info.pair = spec.names.find("[no-]") != std::string_view::npos;
  info.repeatable = (spec.traits & kRepeatable) != 0;
  info.in_environment = (spec.traits & kCommandLineOnly) == 0;
  info.in_file = (spec.traits & (kCommandLineOnly | kNotInFile)) == 0;
  return info;
}

// The help's last lines: gunicorn's and uvicorn's spellings corral accepts.
void renderSynonyms(std::ostream& out) {
  std::string line = "Also accepted, as gunicorn and uvicorn spell them:";
  std::string text;
  for (const Synonym& synonym : synonyms()) {
    if (findOption(synonymName(synonym)) != nullptr) continue;
    std::string item = " " + std::string(synonym.names);
    std::replace(item.begin(), item.end(), ',', '/');
    item += synonym.target.empty() ? "" : " (" + std::string(synonym.target) + ")";
    item += &synonym == &synonyms().back() ? "." : ",";
    if (line.size() + item.size() > 92) {
      text += line + '\n';
      line = " ";
    }
    line += item;
  }
  out << text << line << '\n';
}

}  // namespace

const std::vector<OptionInfo>& optionTable() {
  static const std::vector<OptionInfo> table = [] {
    std::vector<OptionInfo> out;
    out.reserve(kOptions.size());
    for (const auto& spec : kOptions) out.push_back(infoFor(spec));
    return out;
  }();
  return table;
}

const OptionInfo* findOption(std::string_view name) {
  for (const OptionInfo& option : optionTable()) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

const std::vector<std::string>& CommandLine::given(std::string_view name) const {
  const auto found = values.find(name);
  if (found == values.end()) throw std::logic_error("no option " + std::string(name));
  return found->second;
}

CommandLine readCommandLine(int argc, const char* const* argv) {
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
  CommandLine line = givenValues(app);
  // --help and --version win over mistakes elsewhere on the line.
  if (!line.given("--help").empty()) {
    line.request = CommandLine::Request::Help;
    return line;
  }
  if (!line.given("--version").empty()) {
    line.request = CommandLine::Request::Version;
    return line;
  }
  if (parse_error) throw *parse_error;
  rejectSwallowedOptions(app);
  rejectExtras(app.remaining(), app);
  return line;
}

std::string envNameFor(std::string_view name) {
  while (!name.empty() && name.front() == '-') name.remove_prefix(1);
  std::string out = "CORRAL_";
  for (const char c : name) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string helpText() {
  constexpr std::array<std::pair<Group, std::string_view>, 7> kHeadings = {{
      {Group::Binding, "Binding:"},
      {Group::Workers, "Workers:"},
      {Group::Timeouts, "Timeouts (DURATION: 30 and 0.5 are seconds; also 500ms, 30s, 2m, 1h):"},
      {Group::Uvicorn, "Passed to uvicorn (same names and meanings as uvicorn's options):"},
      {Group::Process, "Process:"},
      {Group::Development, "Development (inotify; see the README):"},
      {Group::General, "General:"},
  }};
  std::ostringstream out;
  out << "Usage: corral [OPTIONS] APP\n"
         "  or:  corral COMMAND [ARGS...]   (see Commands below)\n\n"
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
         "are ignored. CORRAL_BIND may hold several addresses separated by commas or spaces,\n"
         "CORRAL_HEADER several headers on lines of their own. A --config file has the same\n"
         "settings as keys (app = \"main:app\", workers = 4, bind = [\"0.0.0.0:8000\"]); the\n"
         "environment wins over it. --print-config shows what came from where.\n"
         "\n";
  renderSynonyms(out);
  out << "\n"
      << "Exit codes: " << kExitOk << " stopped cleanly, " << kExitFailure << " runtime failure, "
      << kExitUsage << " bad usage or configuration,\n"
      << kExitBootFailure << " APP failed to import or start, " << kExitInterrupted
      << " interrupted (Ctrl-C).\n"
      << "\n"
         "Commands (each has --help):\n"
         "  probe [--admin ADDR] [ready|healthz]\n"
         "                     Ask a running corral's admin server for /ready or /healthz;\n"
         "                     exit 0 on 200, else 1 (a HEALTHCHECK without curl)\n"
         "  run [--group-signals] -- CMD [ARGS...]\n"
         "                     Run one command as PID 1, as tini would: signals passed on,\n"
         "                     orphans reaped, CMD's exit code (a migration Job)\n";
  return out.str();
}

}  // namespace corral

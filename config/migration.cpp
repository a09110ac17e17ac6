#include "config/migration.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "config/config_error.hpp"
#include "config/did_you_mean.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

// gunicorn's and uvicorn's names for corral's options, where the meaning is the same. The values
// are read as corral reads its own (a DURATION takes 5 as seconds, as --keep-alive 5 means).
constexpr auto kSynonyms = std::to_array<Synonym>({
    {"--host", "HOST", "", "uvicorn"},
    {"--port", "PORT", "", "uvicorn"},
    {"--uds", "PATH", "", "uvicorn"},
    {"--fd", "N", "", "uvicorn"},
    {"--keep-alive", "SECONDS", "--timeout-keep-alive", "gunicorn"},
    // gunicorn's arbiter kills a worker silent for this long; corral's heartbeat timeout.
    {"-t", "SECONDS", "--timeout", "gunicorn"},
    {"--timeout-graceful-shutdown", "SECONDS", "--graceful-timeout", "uvicorn"},
    // uvicorn's own supervisor (--workers) kills a worker that does not answer its health check
    // within this time; corral's heartbeat timeout does that job.
    {"--timeout-worker-healthcheck", "SECONDS", "--timeout", "uvicorn"},
    {"--limit-max-requests", "N", "--max-requests", "uvicorn"},
    {"--limit-max-requests-jitter", "N", "--max-requests-jitter", "uvicorn"},
    {"--access-logfile", "-", "--access-log", "gunicorn"},
    {"--error-logfile", "-", "", "gunicorn"},
    {"--log-file", "-", "", "gunicorn"},
    {"--worker-tmp-dir", "DIR", "", "gunicorn"},
    {"-p,--pid", "FILE", "--pidfile", "gunicorn"},
    {"-u", "USER", "--user", "gunicorn"},
    {"-g", "GROUP", "--group", "gunicorn"},
    {"-m", "MODE", "--umask", "gunicorn"},
    {"--certfile", "FILE", "--ssl-certfile", "gunicorn"},
    {"--keyfile", "FILE", "--ssl-keyfile", "gunicorn"},
    {"--ca-certs", "FILE", "--ssl-ca-certs", "gunicorn"},
    {"--ciphers", "CIPHERS", "--ssl-ciphers", "gunicorn"},
    {"--cert-reqs", "N", "--ssl-cert-reqs", "gunicorn"},
});

// gunicorn's and uvicorn's options that do not apply to corral: each is refused with why, and
// what to use instead. An option the table defines (another issue may add --preload) is never
// looked up here.
struct Refusal {
  std::string_view names;  ///< every spelling, comma-separated
  bool takes_value;
  std::string_view reason;
};

constexpr auto kRefusals = std::to_array<Refusal>({
    {"-k,--worker-class", true,
     "corral always runs uvicorn workers, which is what -k uvicorn.workers.UvicornWorker asks "
     "of gunicorn; drop it"},
    {"--threads", true,
     "threads are for gunicorn's gthread workers, while corral's serve many requests at once on "
     "uvicorn's event loop; drop it, and raise --workers for more parallelism"},
    {"--worker-connections", true,
     "it sizes gunicorn's eventlet and gevent workers; uvicorn's limit per worker is "
     "--limit-concurrency N"},
    {"-D,--daemon", false,
     "corral stays in the foreground, where systemd, Docker or Kubernetes supervise it; drop it"},
    {"--statsd-host,--statsd-prefix,--dogstatsd-tags", true,
     "corral sends no statsd; it serves Prometheus metrics on its admin port (/metrics, see "
     "--admin-bind)"},
    {"--reuse-port", false,
     "corral binds each address once and shares the socket with every worker, so nothing needs "
     "SO_REUSEPORT; drop it"},
    {"--access-logformat", true, "uvicorn writes its access log in its own format; drop it"},
    {"-n,--name", true,
     "corral names its processes itself: ps shows 'corral worker N: APP'; drop it"},
    {"--capture-output", false, "the workers already write to corral's stdout and stderr; drop it"},
    {"--proxy-protocol", false,
     "neither corral nor uvicorn reads the PROXY protocol; have the load balancer send "
     "X-Forwarded-For and use --proxy-headers with --forwarded-allow-ips"},
    {"--use-colors,--no-use-colors", false,
     "uvicorn's default logging colours its lines on a terminal by itself; drop it"},
    {"-e,--env", true,
     "corral's workers inherit its environment: set the variable there (docker run -e, "
     "Environment= in systemd, env in Kubernetes)"},
    {"--pythonpath", true,
     "use --app-dir DIR, which goes first on sys.path, or PYTHONPATH in the environment"},
    {"--limit-request-line,--limit-request-fields,--limit-request-field-size", true,
     "uvicorn has no such limits; with --http h11, --h11-max-incomplete-event-size SIZE bounds "
     "a request's head"},
    {"--interface", true,
     "corral leaves uvicorn's --interface on auto, which tells ASGI 3 from ASGI 2 apps; corral "
     "runs ASGI apps only"},
    {"--sendfile,--no-sendfile", false, "uvicorn does not use sendfile; drop it"},
});

// gunicorn.conf.py's setting names that differ from gunicorn's flags, for the keys and
// variables people copy from it.
constexpr auto kGunicornSettings = std::to_array<std::pair<std::string_view, std::string_view>>({
    {"--keepalive", "--keep-alive"},
    {"--accesslog", "--access-logfile"},
    {"--errorlog", "--error-logfile"},
    {"--loglevel", "--log-level"},
    {"--preload-app", "--preload"},
    {"--proc-name", "--name"},
    {"--daemon", "--daemon"},
});

// Variables of corral's own making that are not options: the worker protocol's
// (worker/PROTOCOL.md), should a worker start corral.
constexpr auto kInternalVariables = std::to_array<std::string_view>(
    {"CORRAL_WORKER_SETTINGS", "CORRAL_CONTROL_FD", "CORRAL_WORKER_ROLE"});

bool hasSpelling(std::string_view names, std::string_view flag) {
  for (const auto name : split(names, ',')) {
    if (name == flag) return true;
  }
  return false;
}

const Synonym* findSynonym(std::string_view flag) {
  for (const Synonym& synonym : kSynonyms) {
    // A spelling the table took over for an option of its own is that option.
    if (hasSpelling(synonym.names, flag) && findOption(synonymName(synonym)) == nullptr) {
      return &synonym;
    }
  }
  return nullptr;
}

const Refusal* findRefusal(std::string_view flag) {
  const auto found = std::find_if(kRefusals.begin(), kRefusals.end(),
                                  [&](const Refusal& r) { return hasSpelling(r.names, flag); });
  return found == kRefusals.end() ? nullptr : &*found;
}

// The flag a key or variable would be: "keep_alive" and "CORRAL_KEEP_ALIVE" are --keep-alive;
// gunicorn.conf.py's "keepalive" too.
std::string asFlag(std::string_view name, Spelling spelling) {
  if (spelling == Spelling::Flag) return std::string(name);
  if (spelling == Spelling::Variable && name.starts_with("CORRAL_")) name.remove_prefix(7);
  std::string flag = "--" + lower(name);
  std::replace(flag.begin(), flag.end(), '_', '-');
  for (const auto& [setting, gunicorn_flag] : kGunicornSettings) {
    if (flag == setting) return std::string(gunicorn_flag);
  }
  return flag;
}

// What to write instead of a synonym that the config file and the environment do not take.
std::string synonymAdvice(const Synonym& synonym, Spelling spelling) {
  const std::string_view name = synonymName(synonym);
  const std::string own = std::string(synonym.origin) + "'s " + std::string(name);
  if (!synonym.target.empty()) {
    std::string advice = ": corral's name for " + own + " is " + spell(synonym.target, spelling);
    if (synonym.target == "--access-log") advice += " (true: uvicorn logs each request to stdout)";
    return advice;
  }
  const bool key = spelling == Spelling::Key;
  if (name == "--host" || name == "--port" || name == "--uds" || name == "--fd") {
    const std::string_view form = name == "--uds"  ? "unix:PATH"
                                  : name == "--fd" ? "fd://N"
                                                   : "HOST:PORT";
    return ": corral sets " + own + " with " +
           (key ? "bind = [\"" + std::string(form) + "\"]" : "CORRAL_BIND=" + std::string(form));
  }
  if (name == "--worker-tmp-dir") return ": corral needs no heartbeat files; remove it";
  return ": corral and its workers write their errors to stderr; remove it";
}

// Every name corral takes, spelled the given way, for "did you mean".
std::vector<std::string> knownNames(Spelling spelling) {
  std::vector<std::string> names;
  for (const OptionInfo& option : optionTable()) {
    if (spelling == Spelling::Flag) {
      names.push_back(option.name);
      if (!option.short_name.empty()) names.push_back(option.short_name);
      if (option.pair) names.push_back("--no-" + option.name.substr(2));
    } else if (spelling == Spelling::Key ? option.in_file : option.in_environment) {
      names.push_back(spell(option.name, spelling));
    }
  }
  if (spelling == Spelling::Flag) {
    for (auto& spelling_of_synonym : synonymSpellings()) names.push_back(spelling_of_synonym);
  } else {
    names.push_back(spell("APP", spelling));
  }
  return names;
}

std::string quoted(std::string_view value) {
  const bool plain = !value.empty() && value.find_first_of(" \t'\"$\\;&|") == std::string::npos;
  return plain ? std::string(value) : "'" + std::string(value) + "'";
}

// gunicorn's and uvicorn's options turned into CORRAL_* assignments, for the warnings about
// GUNICORN_CMD_ARGS and UVICORN_*.
class Translation {
 public:
  void option(const std::string& flag, const std::optional<std::string>& value) {
    const std::string text = value.value_or("true");
    if (flag == "--host") {
      host_ = text;
    } else if (flag == "--port") {
      port_ = text;
    } else if (flag == "--uds") {
      binds_.push_back("unix:" + text);
    } else if (flag == "--fd") {
      binds_.push_back("fd://" + text);
    } else if (flag == "--error-logfile" || flag == "--log-file" || flag == "--worker-tmp-dir") {
      // Nothing to set.
    } else if (const Synonym* synonym = findSynonym(flag); synonym && !synonym->target.empty()) {
      set(std::string(synonym->target), synonym->target == "--access-log" ? "true" : text);
    } else if (const OptionInfo* option = tableOption(flag)) {
      if (option->name == "--bind") {
        binds_.push_back(text);
      } else if (option->in_environment) {
        set(option->name, option->flag() && flag.starts_with("--no-") ? "false" : text);
      } else {
        missing_.push_back(flag);
      }
    } else {
      missing_.push_back(flag);
    }
  }

  void app(const std::string& text) { set("APP", text); }

  std::string text() {
    if (host_ || port_) {
      binds_.push_back(host_.value_or("127.0.0.1") + ":" + port_.value_or("8000"));
    }
    if (!binds_.empty()) set("--bind", join(binds_, ","));
    std::string out = join(assignments_, " ");
    if (!missing_.empty()) {
      out += std::string(out.empty() ? "" : "; ") + "nothing for " + join(missing_, ", ") +
             " (corral " + missing_.front() + " says why)";
    }
    return out;
  }

 private:
  static const OptionInfo* tableOption(const std::string& flag) {
    for (const OptionInfo& option : optionTable()) {
      if (flag == option.name || flag == option.short_name ||
          (option.pair && flag == "--no-" + option.name.substr(2))) {
        return &option;
      }
    }
    return nullptr;
  }

  void set(const std::string& option, const std::string& value) {
    assignments_.push_back(envNameFor(option) + "=" + quoted(value));
  }

  std::optional<std::string> host_;
  std::optional<std::string> port_;
  std::vector<std::string> binds_;
  std::vector<std::string> assignments_;
  std::vector<std::string> missing_;
};

bool takesValue(const std::string& flag) {
  if (findSynonym(flag) != nullptr) return true;
  if (const Refusal* refusal = findRefusal(flag)) return refusal->takes_value;
  for (const OptionInfo& option : optionTable()) {
    if (flag == option.name || flag == option.short_name) return !option.flag();
  }
  return false;
}

// Words as a POSIX shell would split them (gunicorn reads GUNICORN_CMD_ARGS with shlex.split):
// quotes group, a backslash escapes the next character.
std::vector<std::string> shellWords(std::string_view text) {
  std::vector<std::string> words;
  std::optional<std::string> word;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word->push_back(c);
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      if (!word) word.emplace();
    } else if (c == '\\' && i + 1 < text.size()) {
      if (!word) word.emplace();
      word->push_back(text[++i]);
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (word) words.push_back(std::move(*word));
      word.reset();
    } else {
      if (!word) word.emplace();
      word->push_back(c);
    }
  }
  if (word) words.push_back(std::move(*word));
  return words;
}

std::string translateArguments(std::string_view text) {
  Translation translation;
  const std::vector<std::string> words = shellWords(text);
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word.size() < 2 || word.front() != '-') {
      translation.app(word);
      continue;
    }
    const auto equals = word.find('=');
    const std::string flag = word.substr(0, equals);
    std::optional<std::string> value;
    if (equals != std::string::npos) {
      value = word.substr(equals + 1);
    } else if (takesValue(flag) && i + 1 < words.size()) {
      value = words[++i];
    }
    translation.option(flag, value);
  }
  return translation.text();
}

// UVICORN_HOST and UVICORN_PORT make one address, so each is translated with the other.
std::string translateUvicornVariable(const std::string& name, const EnvLookup& env) {
  std::string option = name.substr(8);
  if (option == "APP") {
    Translation translation;
    translation.app(env(name).value_or(""));
    return translation.text();
  }
  std::string arguments;
  for (const std::string_view address_part : {"HOST", "PORT"}) {
    if (option != address_part && (option == "HOST" || option == "PORT")) {
      if (const auto other = env("UVICORN_" + std::string(address_part))) {
        arguments += " --" + lower(address_part) + "=" + *other;
      }
    }
  }
  option = lower(option);
  std::replace(option.begin(), option.end(), '_', '-');
  return translateArguments("'--" + option + "=" + env(name).value_or("") + "'" + arguments);
}

std::optional<Notice> corralVariableNotice(const std::string& name) {
  if (name == "CORRAL_APP" || std::find(kInternalVariables.begin(), kInternalVariables.end(),
                                        name) != kInternalVariables.end()) {
    return std::nullopt;
  }
  for (const OptionInfo& option : optionTable()) {
    if (envNameFor(option.name) != name) continue;
    if (option.in_environment) return std::nullopt;
    return Notice{Notice::Level::Warning, name + " is set, but corral does not read it: " +
                                              option.name + " is a command-line option only"};
  }
  const std::string flag = asFlag(name, Spelling::Variable);
  if (const Refusal* refusal = findRefusal(flag)) {
    return Notice{Notice::Level::Warning, name + " is set, but corral has no " + flag + ": " +
                                              std::string(refusal->reason)};
  }
  std::string advice = adviceFor(name, Spelling::Variable);
  if (advice.empty()) advice = "; run 'corral --help' for the options";
  return Notice{Notice::Level::Warning,
                name + " is set, but names no corral option, so it changes nothing" + advice};
}

}  // namespace

std::optional<std::string_view> refusalReason(std::string_view flag) {
  const Refusal* refusal = findRefusal(flag);
  if (refusal == nullptr) return std::nullopt;
  return refusal->reason;
}

std::span<const Synonym> synonyms() {
  return kSynonyms;
}

std::string_view synonymName(const Synonym& synonym) {
  const auto comma = synonym.names.rfind(',');
  return comma == std::string_view::npos ? synonym.names : synonym.names.substr(comma + 1);
}

std::vector<std::string> synonymSpellings() {
  std::vector<std::string> out;
  for (const Synonym& synonym : kSynonyms) {
    if (findOption(synonymName(synonym)) != nullptr) continue;
    for (const auto name : split(synonym.names, ',')) out.emplace_back(name);
  }
  return out;
}

Input synonymInput(const Synonym& synonym, const std::string& value) {
  const std::string name(synonymName(synonym));
  if (synonym.target == "--access-log") {
    if (value != "-" && value != "/dev/stdout") {
      failInput(name, value,
                "corral's workers write the access log to stdout (uvicorn's access logger): "
                "pass '-' and redirect stdout, or let the container runtime or journald "
                "collect it");
    }
    return {name, "true", Origin::CommandLine};
  }
  return {name, value, Origin::CommandLine};
}

std::vector<Input> synonymBinds(const CommandLine& line) {
  const auto last = [&](const std::string& name) -> std::optional<std::string> {
    const auto found = line.values.find(name);
    if (found == line.values.end() || found->second.empty() || findOption(name) != nullptr) {
      return std::nullopt;
    }
    return found->second.back();
  };
  std::vector<Input> binds;
  const auto host = last("--host");
  const auto port = last("--port");
  if (host || port) {
    if (port && !parseInt<std::uint16_t>(*port)) {
      failInput("--port", *port, "expected a port number from 0 to 65535");
    }
    // uvicorn's defaults for the half that is missing.
    const std::string host_text = host.value_or("127.0.0.1");
    const bool ipv6 = host_text.find(':') != std::string::npos && host_text.front() != '[';
    const std::string address =
        (ipv6 ? "[" + host_text + "]" : host_text) + ":" + port.value_or("8000");
    binds.push_back({host ? "--host" : "--port", address, Origin::CommandLine});
  }
  if (const auto uds = last("--uds")) {
    binds.push_back({"--uds", "unix:" + *uds, Origin::CommandLine});
  }
  if (const auto fd = last("--fd")) {
    if (!parseInt<unsigned>(*fd)) failInput("--fd", *fd, "expected a file descriptor number");
    binds.push_back({"--fd", "fd://" + *fd, Origin::CommandLine});
  }
  return binds;
}

void checkInertSynonyms(const CommandLine& line, std::vector<Notice>& notices) {
  for (const std::string name : {"--error-logfile", "--log-file"}) {
    const auto found = line.values.find(name);
    if (found == line.values.end() || findOption(name) != nullptr) continue;
    for (const std::string& value : found->second) {
      if (value != "-" && value != "/dev/stderr") {
        failInput(name, value,
                  "corral and its workers write their errors to stderr: pass '-' and redirect "
                  "stderr, or let the container runtime or journald collect it");
      }
    }
  }
  const auto tmp = line.values.find("--worker-tmp-dir");
  if (tmp != line.values.end() && !tmp->second.empty() &&
      findOption("--worker-tmp-dir") == nullptr) {
    notices.push_back({Notice::Level::Info,
                       "--worker-tmp-dir " + printable(tmp->second.back()) +
                           " is not needed, and ignored: corral's workers send their heartbeats "
                           "over their control channel, not through files"});
  }
}

std::string spell(std::string_view option, Spelling spelling) {
  switch (spelling) {
    case Spelling::Flag: return std::string(option);
    case Spelling::Key: return option == "APP" ? "app" : std::string(option.substr(2));
    case Spelling::Variable: return envNameFor(option);
  }
  return std::string(option);
}

std::string adviceFor(std::string_view name, Spelling spelling) {
  const std::string flag = asFlag(name, spelling);
  if (const Refusal* refusal = findRefusal(flag)) {
    return "; " + flag + " does not apply: " + std::string(refusal->reason);
  }
  if (const Synonym* synonym = findSynonym(flag); synonym && spelling != Spelling::Flag) {
    return synonymAdvice(*synonym, spelling);
  }
  // "no-proxy-headers = true" for "proxy-headers = false".
  if (spelling != Spelling::Flag && flag.starts_with("--no-")) {
    const OptionInfo* option = findOption("--" + flag.substr(5));
    if (option != nullptr && option->pair) {
      return spelling == Spelling::Key ? "; write " + spell(option->name, spelling) + " = false"
                                       : "; set " + spell(option->name, spelling) + "=false";
    }
  }
  return didYouMean(name, knownNames(spelling));
}

std::vector<Notice> environmentNotices(const std::vector<std::string>& names,
                                       const EnvLookup& env) {
  std::vector<Notice> notices;
  for (const std::string& name : names) {
    if (name.starts_with("CORRAL_")) {
      if (auto notice = corralVariableNotice(name)) notices.push_back(std::move(*notice));
    } else if (name == "GUNICORN_CMD_ARGS") {
      const std::string equivalent = translateArguments(env(name).value_or(""));
      notices.push_back({Notice::Level::Warning,
                         "GUNICORN_CMD_ARGS is set, but corral does not read it" +
                             (equivalent.empty() ? std::string() : "; for corral: " + equivalent)});
    } else if (name.starts_with("UVICORN_") && name.size() > 8) {
      const std::string equivalent = translateUvicornVariable(name, env);
      notices.push_back({Notice::Level::Warning,
                         name + " is set, but corral does not read it (uvicorn does)" +
                             (equivalent.empty() ? std::string() : "; for corral: " + equivalent)});
    }
  }
  return notices;
}

}  // namespace corral

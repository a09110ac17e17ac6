#include "config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "config/exit_codes.hpp"

using corral::BindAddress;
using corral::Config;
using corral::Duration;
using corral::LogLevel;

namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

/// A private directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "corral-config-test-XXXXXX").string();
    const char* made = ::mkdtemp(pattern.data());
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;

  /// Creates a file (and its parent directories) with the given permission bits.
  std::string makeFile(const std::string& relative, fs::perms perms) const {
    const fs::path file = path_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << "#!/bin/sh\nexit 0\n";
    fs::permissions(file, perms);
    return file.string();
  }

  std::string makeExecutable(const std::string& relative) const {
    return makeFile(relative,
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }

  std::string path(const std::string& relative = "") const { return (path_ / relative).string(); }

 private:
  fs::path path_;
};

struct Run {
  corral::ParseOutcome outcome;
  std::string out;
  std::string err;

  const Config& config() const {
    INFO("stderr: " << err);
    REQUIRE(outcome.exit_code == 0);
    REQUIRE(outcome.config.has_value());
    return *outcome.config;
  }
};

/// Splits "-w 4 main:app" into arguments, to keep long command lines readable.
Args words(const std::string& line) {
  Args args;
  std::istringstream stream(line);
  for (std::string word; stream >> word;) args.push_back(word);
  return args;
}

Run parse(const Args& args, const Env& env) {
  std::vector<const char*> argv{"corral"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  const corral::EnvLookup lookup = [env](const std::string& name) -> std::optional<std::string> {
    const auto found = env.find(name);
    if (found == env.end()) return std::nullopt;
    return found->second;
  };
  std::ostringstream out;
  std::ostringstream err;
  Run run;
  run.outcome =
      corral::parseCommandLine(static_cast<int>(argv.size()), argv.data(), lookup, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

/// Every test gets a fake python3 on a fake PATH, so nothing depends on the machine's Python.
class ConfigFixture {
 public:
  ConfigFixture() : python_(dir_.makeExecutable("bin/python3")) {}

  Run run(const Args& args, Env env = {}) const {
    env.try_emplace("PATH", dir_.path("bin"));
    return parse(args, env);
  }

 protected:
  TempDir dir_;
  std::string python_;
};

BindAddress tcp(std::string host, std::uint16_t port) {
  BindAddress address;
  address.host = std::move(host);
  address.port = port;
  return address;
}

BindAddress unixSocket(std::string path) {
  BindAddress address;
  address.kind = BindAddress::Kind::Unix;
  address.path = std::move(path);
  return address;
}

BindAddress inheritedFd(int fd) {
  BindAddress address;
  address.kind = BindAddress::Kind::Fd;
  address.fd = fd;
  return address;
}

std::vector<std::string> bindStrings(const Config& config) {
  std::vector<std::string> out;
  for (const auto& bind : config.binds) out.push_back(bind.str());
  return out;
}

void checkUsageError(const Run& run, const std::string& message) {
  INFO("stderr: " << run.err);
  CHECK(run.outcome.exit_code == corral::kExitUsage);
  CHECK_FALSE(run.outcome.config.has_value());
  CHECK(run.out.empty());
  CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
  CHECK(run.err.back() == '\n');
  CHECK_THAT(run.err, Catch::StartsWith("corral: error: "));
  CHECK_THAT(run.err, Catch::Contains(message));
}

}  // namespace

TEST_CASE_METHOD(ConfigFixture, "parseCommandLine defaults", "[unit][config]") {
  const Run result = run({"main:app"});
  CHECK(result.out.empty());
  CHECK(result.err.empty());
  const Config& config = result.config();
  CHECK(config.app == "main:app");
  // No --workers, CORRAL_WORKERS or WEB_CONCURRENCY: auto, from this machine's CPUs.
  CHECK(config.workers >= 1);
  CHECK_THAT(config.workers_reason, Catch::StartsWith("auto: "));
  CHECK(config.binds == std::vector{tcp("127.0.0.1", 8000)});
  CHECK(config.admin_bind == tcp("127.0.0.1", 8081));
  CHECK(config.backlog == 2048);
  CHECK_FALSE(config.limit_concurrency.has_value());
  CHECK(config.timeout_keep_alive == Duration{5'000});
  CHECK(config.timeout == Duration{30'000});
  CHECK(config.graceful_timeout == Duration{30'000});
  CHECK(config.startup_timeout == Duration{60'000});
  CHECK(config.min_ready == 0);
  CHECK_FALSE(config.proxy_headers.has_value());
  CHECK_FALSE(config.forwarded_allow_ips.has_value());
  CHECK(config.root_path.empty());
  CHECK(config.lifespan == "auto");
  CHECK(config.http == "auto");
  CHECK(config.loop == "auto");
  CHECK_FALSE(config.factory);
  CHECK(config.access_log);
  CHECK(config.app_dir == ".");
  CHECK(config.python == python_);
  CHECK(config.start_method == "forkserver");
  CHECK(config.log_level == LogLevel::Info);
}

TEST_CASE_METHOD(ConfigFixture, "parseCommandLine reads every flag", "[unit][config]") {
  const Args args = words(
      "-w 4 -b 0.0.0.0:9000 --bind [::1]:9001 --bind=unix:/tmp/corral-test.sock -bfd://3 "
      "--admin-bind 127.0.0.1:9100 --backlog 128 --limit-concurrency 50 "
      "--timeout-keep-alive 65s --timeout 0 --graceful-timeout=2m --startup-timeout 1.5 "
      "--min-ready 3 --proxy-headers --forwarded-allow-ips 10.0.0.0/8,127.0.0.1 "
      "--root-path /api --lifespan on --http h11 --loop asyncio --factory --no-access-log "
      "--start-method spawn --log-level debug --app-dir " +
      dir_.path() + " pkg.server:create_app");
  const Run result = run(args);
  const Config& config = result.config();
  CHECK(config.app == "pkg.server:create_app");
  CHECK(config.workers == 4);
  CHECK(config.binds == std::vector{tcp("0.0.0.0", 9000), tcp("::1", 9001),
                                    unixSocket("/tmp/corral-test.sock"), inheritedFd(3)});
  CHECK(config.admin_bind == tcp("127.0.0.1", 9100));
  CHECK(config.backlog == 128);
  CHECK(config.limit_concurrency == 50);
  CHECK(config.timeout_keep_alive == Duration{65'000});
  CHECK(config.timeout == Duration::zero());
  CHECK(config.graceful_timeout == Duration{120'000});
  CHECK(config.startup_timeout == Duration{1'500});
  CHECK(config.min_ready == 3);
  CHECK(config.proxy_headers == true);
  CHECK(config.forwarded_allow_ips == "10.0.0.0/8,127.0.0.1");
  CHECK(config.root_path == "/api");
  CHECK(config.lifespan == "on");
  CHECK(config.http == "h11");
  CHECK(config.loop == "asyncio");
  CHECK(config.factory);
  CHECK_FALSE(config.access_log);
  CHECK(config.app_dir == dir_.path());
  CHECK(config.start_method == "spawn");
  CHECK(config.log_level == LogLevel::Debug);
}

TEST_CASE_METHOD(ConfigFixture, "parseCommandLine reads every CORRAL_ variable", "[unit][config]") {
  const Run result = run({}, {{"CORRAL_APP", "examples.app:app"},
                              {"CORRAL_WORKERS", "3"},
                              {"CORRAL_BIND", "127.0.0.1:7000"},
                              {"CORRAL_ADMIN_BIND", "unix:/tmp/corral-admin.sock"},
                              {"CORRAL_BACKLOG", "64"},
                              {"CORRAL_LIMIT_CONCURRENCY", "10"},
                              {"CORRAL_TIMEOUT_KEEP_ALIVE", "500ms"},
                              {"CORRAL_TIMEOUT", "10s"},
                              {"CORRAL_GRACEFUL_TIMEOUT", "1h"},
                              {"CORRAL_STARTUP_TIMEOUT", "2m"},
                              {"CORRAL_MIN_READY", "2"},
                              {"CORRAL_PROXY_HEADERS", "no"},
                              {"CORRAL_FORWARDED_ALLOW_IPS", "*"},
                              {"CORRAL_ROOT_PATH", "/v1"},
                              {"CORRAL_LIFESPAN", "off"},
                              {"CORRAL_HTTP", "httptools"},
                              {"CORRAL_LOOP", "uvloop"},
                              {"CORRAL_FACTORY", "yes"},
                              {"CORRAL_ACCESS_LOG", "false"},
                              {"CORRAL_APP_DIR", dir_.path()},
                              {"CORRAL_PYTHON", python_},
                              {"CORRAL_LOG_LEVEL", "WARNING"}});
  const Config& config = result.config();
  CHECK(config.app == "examples.app:app");
  CHECK(config.workers == 3);
  CHECK(config.binds == std::vector{tcp("127.0.0.1", 7000)});
  CHECK(config.admin_bind == unixSocket("/tmp/corral-admin.sock"));
  CHECK(config.backlog == 64);
  CHECK(config.limit_concurrency == 10);
  CHECK(config.timeout_keep_alive == Duration{500});
  CHECK(config.timeout == Duration{10'000});
  CHECK(config.graceful_timeout == Duration{3'600'000});
  CHECK(config.startup_timeout == Duration{120'000});
  CHECK(config.min_ready == 2);
  CHECK(config.proxy_headers == false);
  CHECK(config.forwarded_allow_ips == "*");
  CHECK(config.root_path == "/v1");
  CHECK(config.lifespan == "off");
  CHECK(config.http == "httptools");
  CHECK(config.loop == "uvloop");
  CHECK(config.factory);
  CHECK_FALSE(config.access_log);
  CHECK(config.app_dir == dir_.path());
  CHECK(config.python == python_);
  CHECK(config.log_level == LogLevel::Warning);
}

TEST_CASE_METHOD(ConfigFixture, "the command line wins over the environment", "[unit][config]") {
  const Env env = {{"CORRAL_APP", "env:app"},         {"CORRAL_WORKERS", "7"},
                   {"CORRAL_BIND", "127.0.0.1:7000"}, {"CORRAL_TIMEOUT", "9s"},
                   {"CORRAL_PROXY_HEADERS", "true"},  {"CORRAL_ADMIN_BIND", "127.0.0.1:7100"},
                   {"CORRAL_LOG_LEVEL", "trace"},     {"CORRAL_ACCESS_LOG", "no"}};
  const Run result =
      run({"-w", "2", "-b", "127.0.0.1:6000", "--timeout", "3s", "--no-proxy-headers",
           "--admin-bind", "none", "--log-level", "error", "--access-log", "cli:app"},
          env);
  const Config& config = result.config();
  CHECK(config.app == "cli:app");
  CHECK(config.workers == 2);
  CHECK(config.binds == std::vector{tcp("127.0.0.1", 6000)});
  CHECK(config.timeout == Duration{3'000});
  CHECK(config.proxy_headers == false);
  CHECK_FALSE(config.admin_bind.has_value());
  CHECK(config.log_level == LogLevel::Error);
  CHECK(config.access_log);
}

TEST_CASE_METHOD(ConfigFixture, "a later flag overrides an earlier one", "[unit][config]") {
  const Config config = run({"-w", "2", "--workers=5", "--proxy-headers", "--no-proxy-headers",
                             "--timeout", "1s", "--timeout", "2s", "main:app"})
                            .config();
  CHECK(config.workers == 5);
  CHECK(config.proxy_headers == false);
  CHECK(config.timeout == Duration{2'000});
}

TEST_CASE_METHOD(ConfigFixture, "worker count sources in order", "[unit][config]") {
  const auto [args, env, workers] = GENERATE(table<Args, Env, int>({
      {{"main:app"}, {{"WEB_CONCURRENCY", "6"}}, 6},
      {{"main:app"}, {{"WEB_CONCURRENCY", "6"}, {"CORRAL_WORKERS", "3"}}, 3},
      {{"-w", "2", "main:app"}, {{"WEB_CONCURRENCY", "6"}, {"CORRAL_WORKERS", "3"}}, 2},
      {{"-w2", "main:app"}, {}, 2},
      {{"-w", "1024", "main:app"}, {}, 1024},
      // Empty variables count as unset.
      {{"main:app"}, {{"WEB_CONCURRENCY", "6"}, {"CORRAL_WORKERS", ""}}, 6},
      // A bad WEB_CONCURRENCY is never read when a better source exists.
      {{"main:app"}, {{"WEB_CONCURRENCY", "lots"}, {"CORRAL_WORKERS", "3"}}, 3},
  }));
  CHECK(run(args, env).config().workers == workers);
}

TEST_CASE_METHOD(ConfigFixture, "bind sources in order", "[unit][config]") {
  using Binds = std::vector<std::string>;
  const auto [args, env, binds] = GENERATE(table<Args, Env, Binds>({
      {{"main:app"}, {}, {"127.0.0.1:8000"}},
      {{"main:app"}, {{"PORT", "5000"}}, {"0.0.0.0:5000"}},
      {{"main:app"}, {{"PORT", "0"}}, {"0.0.0.0:0"}},
      {{"main:app"}, {{"PORT", ""}}, {"127.0.0.1:8000"}},
      {{"main:app"}, {{"PORT", "5000"}, {"CORRAL_BIND", "127.0.0.1:7000"}}, {"127.0.0.1:7000"}},
      {{"-b", "[::]:80", "main:app"},
       {{"PORT", "5000"}, {"CORRAL_BIND", "127.0.0.1:7000"}},
       {"[::]:80"}},
      // PORT is not read at all when --bind is given, so a bad value there is harmless.
      {{"-b", "127.0.0.1:80", "main:app"}, {{"PORT", "http"}}, {"127.0.0.1:80"}},
      {{"main:app"},
       {{"CORRAL_BIND", "127.0.0.1:8001,127.0.0.1:8002"}},
       {"127.0.0.1:8001", "127.0.0.1:8002"}},
      {{"main:app"},
       {{"CORRAL_BIND", " 127.0.0.1:8001 ,\t[::1]:8002\nunix:/tmp/x.sock, "}},
       {"127.0.0.1:8001", "[::1]:8002", "unix:/tmp/x.sock"}},
      {{"main:app"}, {{"CORRAL_BIND", "fd://3 fd://4"}}, {"fd://3", "fd://4"}},
      // Port 0 picks a fresh port each time, so it is not a duplicate.
      {{"-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "main:app"}, {}, {"127.0.0.1:0", "127.0.0.1:0"}},
  }));
  CHECK(bindStrings(run(args, env).config()) == binds);
}

TEST_CASE_METHOD(ConfigFixture, "admin bind choices", "[unit][config]") {
  const auto [args, env, admin] = GENERATE(table<Args, Env, std::string>({
      {{"main:app"}, {}, "127.0.0.1:8081"},
      // The default follows the first bind's host, so that a pod's kubelet can reach it.
      {{"-b", "0.0.0.0:8000", "main:app"}, {}, "0.0.0.0:8081"},
      {{"-b", "[::]:8000", "-b", "127.0.0.1:9000", "main:app"}, {}, "[::]:8081"},
      {{"-b", "10.1.2.3", "main:app"}, {}, "10.1.2.3:8081"},
      {{"main:app"}, {{"PORT", "5000"}}, "0.0.0.0:8081"},
      {{"-b", "unix:/tmp/app.sock", "-b", "0.0.0.0:8000", "main:app"}, {}, "127.0.0.1:8081"},
      {{"main:app"}, {{"CORRAL_BIND", "fd://3"}}, "127.0.0.1:8081"},
      {{"--admin-bind", "none", "main:app"}, {}, "none"},
      {{"main:app"}, {{"CORRAL_ADMIN_BIND", "none"}}, "none"},
      {{"main:app"}, {{"CORRAL_ADMIN_BIND", "None"}}, "none"},
      {{"--admin-bind", "0.0.0.0:9", "main:app"}, {}, "0.0.0.0:9"},
      {{"--admin-bind", "unix:/tmp/a.sock", "main:app"}, {}, "unix:/tmp/a.sock"},
      // Tests bind both to port 0; the kernel keeps them apart.
      {{"-b", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "main:app"}, {}, "127.0.0.1:0"},
  }));
  const Config config = run(args, env).config();
  CHECK((config.admin_bind ? config.admin_bind->str() : "none") == admin);
}

TEST_CASE_METHOD(ConfigFixture, "boolean variables", "[unit][config]") {
  const auto [text, value] = GENERATE(table<std::string, bool>({
      {"true", true},
      {"TRUE", true},
      {"1", true},
      {"yes", true},
      {"on", true},
      {"false", false},
      {"False", false},
      {"0", false},
      {"no", false},
      {"off", false},
  }));
  CAPTURE(text);
  const Config config =
      run({"main:app"}, {{"CORRAL_PROXY_HEADERS", text}, {"CORRAL_FACTORY", text}}).config();
  CHECK(config.proxy_headers == value);
  CHECK(config.factory == value);
}

TEST_CASE_METHOD(ConfigFixture, "workers auto follows this machine's CPUs", "[unit][config]") {
  const Config config = run({"--workers", "auto", "main:app"}).config();
  CHECK(config.workers >= 1);
  CHECK_THAT(config.workers_reason, Catch::StartsWith("auto: "));
  CHECK(run({"main:app"}, {{"WEB_CONCURRENCY", "auto"}}).config().workers_reason ==
        config.workers_reason);
  CHECK(run({"-w", "3", "main:app"}).config().workers_reason == "--workers '3'");
}

TEST_CASE_METHOD(ConfigFixture, "process options", "[unit][config]") {
  // The app folder is / (anyone may read it): by default it would be the working directory,
  // which nobody may not be allowed to read, and corral would refuse to start.
  const Config config = run({"--pidfile", "/run/corral.pid", "--umask", "007", "--user", "nobody",
                             "--app-dir", "/", "main:app"})
                            .config();
  CHECK(config.pidfile == "/run/corral.pid");
  CHECK(config.umask == 07u);
  REQUIRE(config.user.has_value());
  CHECK(config.user->uid == 65534u);
  CHECK(config.user->name == "nobody");
  CHECK(run({"--umask", "0o022", "main:app"}).config().umask == 022u);
  CHECK(run({"--user", "65534", "--group", "0", "--app-dir", "/", "main:app"}).config().user->gid ==
        0u);
}

TEST_CASE_METHOD(ConfigFixture, "systemd's sockets become binds, 'admin' the admin one",
                 "[unit][config]") {
  const std::string pid = std::to_string(::getpid());
  const Config config =
      run({"main:app"},
          {{"LISTEN_PID", pid}, {"LISTEN_FDS", "2"}, {"LISTEN_FDNAMES", "http:admin"}})
          .config();
  REQUIRE(config.binds.size() == 1);
  CHECK(config.binds[0].kind == BindAddress::Kind::Fd);
  CHECK(config.binds[0].fd == 3);
  REQUIRE(config.admin_bind.has_value());
  CHECK(config.admin_bind->fd == 4);
  // Meant for another process: the default bind.
  CHECK(run({"main:app"}, {{"LISTEN_PID", "1"}, {"LISTEN_FDS", "1"}}).config().binds ==
        std::vector{tcp("127.0.0.1", 8000)});
}

TEST_CASE_METHOD(ConfigFixture, "min-ready may equal the worker count", "[unit][config]") {
  CHECK(run({"-w", "4", "--min-ready", "4", "main:app"}).config().min_ready == 4);
  CHECK(run({"--min-ready", "0", "main:app"}).config().min_ready == 0);
  CHECK(run({"--min-ready", "2", "main:app"}, {{"WEB_CONCURRENCY", "2"}}).config().min_ready == 2);
}

TEST_CASE_METHOD(ConfigFixture, "APP forms that uvicorn accepts", "[unit][config]") {
  const std::string app = GENERATE("main:app", "examples.app:app", "pkg.mod:create_app",
                                   "_private:_app", "a.b.c:obj.attr", "app2:App_3");
  CHECK(run({app}).config().app == app);
  // "--" ends the options, after which APP may follow.
  CHECK(run({"--", app}).config().app == app);
}

TEST_CASE_METHOD(ConfigFixture, "bad input gives one line naming the input", "[unit][config]") {
  const auto [args, env, message] = GENERATE(table<Args, Env, std::string>({
      {{"--workers", "many", "main:app"}, {}, "--workers 'many': expected a whole number"},
      {{"--worker-memory-budget", "1.5.5Gi", "main:app"}, {}, "--worker-memory-budget '1.5.5Gi'"},
      {{"--umask", "999", "main:app"}, {}, "--umask '999': expected an octal mode"},
      {{"--user", "no-such-user-here", "main:app"}, {}, "--user 'no-such-user-here': no such user"},
      {{"--user", "root", "main:app"}, {}, "--user 'root': is root"},
      {{"--group", "nogroup", "main:app"}, {}, "--group 'nogroup': needs --user too"},
      {{"--user", "nobody", "--group", "no-such-group", "main:app"},
       {},
       "--group 'no-such-group': no such group"},
      {{"main:app"}, {{"LISTEN_PID", "x"}, {"LISTEN_FDS", "1"}}, "LISTEN_PID='x'"},
      // The command line itself
      {{},
       {},
       "corral: error: missing APP (module:attribute, e.g. main:app); run 'corral --help'\n"},
      {{"--wokers", "3", "main:app"},
       {},
       "corral: error: unknown option '--wokers'; did you mean --workers?\n"},
      {{"--frobnicate", "main:app"},
       {},
       "corral: error: unknown option '--frobnicate'; run 'corral --help' for the list\n"},
      {{"--wokers=3", "main:app"}, {}, "unknown option '--wokers'"},
      {{"-x", "main:app"}, {}, "unknown option '-x'"},
      {{"--port", "http", "main:app"}, {}, "--port 'http': expected a port number from 0"},
      {{"-k", "uvicorn.workers.UvicornWorker", "main:app"},
       {},
       "corral: error: -k: corral always runs uvicorn workers"},
      {{"main:app", "other:app"},
       {},
       "unexpected argument 'other:app' after APP 'main:app'; corral runs a single app"},
      {{"--workers"}, {}, "corral: error: --workers needs a value: --workers N\n"},
      {{"main:app", "--bind"}, {}, "--bind needs a value: --bind ADDR"},
      {{"--workers", "--bind", "127.0.0.1:1", "main:app"}, {}, "--workers needs a value"},
      {{"--timeout", "-w", "2", "main:app"}, {}, "--timeout needs a value"},
      // APP
      {{"main"},
       {},
       "APP 'main': expected module:attribute, e.g. main:app or pkg.module:create_app"},
      {{"main:"}, {}, "APP 'main:'"},
      {{":app"}, {}, "APP ':app'"},
      {{"main:app:x"}, {}, "APP 'main:app:x'"},
      {{"1main:app"}, {}, "APP '1main:app'"},
      {{"main.:app"}, {}, "APP 'main.:app'"},
      {{"main:app."}, {}, "APP 'main:app.'"},
      {{"my-app:app"}, {}, "APP 'my-app:app'"},
      {{"main:create app"}, {}, "APP 'main:create app'"},
      {{"main/app.py:app"}, {}, "APP 'main/app.py:app'"},
      {{}, {{"CORRAL_APP", "app.py"}}, "CORRAL_APP='app.py': expected module:attribute"},
      // Workers
      {{"-w", "abc", "main:app"}, {}, "--workers 'abc': expected a whole number of workers >= 1"},
      {{"-w", "0", "main:app"}, {}, "--workers '0': expected a whole number of workers >= 1"},
      {{"-w", "-1", "main:app"}, {}, "--workers '-1': expected a whole number"},
      {{"-w", "1.5", "main:app"}, {}, "--workers '1.5': expected a whole number"},
      {{"-w", " 4", "main:app"}, {}, "--workers ' 4': expected a whole number"},
      {{"-w", "1025", "main:app"}, {}, "--workers '1025': at most 1024 workers are supported"},
      {{"-w", "99999999999999999999999", "main:app"}, {}, "at most 1024 workers"},
      {{"main:app"},
       {{"CORRAL_WORKERS", "abc"}},
       "corral: error: CORRAL_WORKERS='abc': expected a whole number of workers >= 1\n"},
      {{"main:app"}, {{"CORRAL_WORKERS", "4\n5"}}, "CORRAL_WORKERS='4\\x0a5'"},
      {{"-w", "1", "--min-ready", "2", "main:app"},
       {},
       "--min-ready '2': more than the 1 workers; use at most that many, or 0 for all"},
      {{"--min-ready", "-1", "main:app"}, {}, "--min-ready '-1': expected a whole number >= 0"},
      {{"main:app"}, {{"CORRAL_MIN_READY", "x"}}, "CORRAL_MIN_READY='x'"},
      // Binding
      {{"-b", "example.com:80", "main:app"},
       {},
       "--bind 'example.com:80': 'example.com' is not a numeric IP address"},
      {{"-b", "::1", "main:app"}, {}, "--bind '::1': put an IPv6 address in brackets"},
      {{"main:app"}, {{"CORRAL_BIND", "127.0.0.1:80,bad:port"}}, "CORRAL_BIND='bad:port'"},
      {{"main:app"},
       {{"CORRAL_BIND", " , "}},
       "CORRAL_BIND=' , ': expected addresses separated by commas or spaces"},
      {{"-b", "localhost:8000", "-b", "127.0.0.1:8000", "main:app"},
       {},
       "--bind '127.0.0.1:8000': duplicate of the earlier bind 127.0.0.1:8000"},
      {{"main:app"}, {{"CORRAL_BIND", "unix:/a unix:/a"}}, "CORRAL_BIND='unix:/a': duplicate"},
      {{"main:app"}, {{"PORT", "http"}}, "PORT='http': expected a port number from 0 to 65535"},
      {{"main:app"}, {{"PORT", "65536"}}, "PORT='65536': expected a port number"},
      {{"--admin-bind", "fd://3", "main:app"},
       {},
       "--admin-bind 'fd://3': expected HOST:PORT or unix:PATH"},
      {{"--admin-bind", "nowhere", "main:app"}, {}, "--admin-bind 'nowhere': "},
      {{"main:app"}, {{"CORRAL_ADMIN_BIND", "off"}}, "CORRAL_ADMIN_BIND='off': "},
      {{"-b", "127.0.0.1:9000", "--admin-bind", "127.0.0.1:9000", "main:app"},
       {},
       "--admin-bind '127.0.0.1:9000': already used by a --bind address"},
      {{"main:app"},
       {{"PORT", "8081"}},
       "bind address 0.0.0.0:8081 is also the admin server's default; pass --admin-bind"},
      {{"-b", "localhost:8081", "main:app"},
       {},
       "bind address 127.0.0.1:8081 is also the admin server's default; pass --admin-bind with "
       "another address or 'none'"},
      {{"--backlog", "0", "main:app"},
       {},
       "--backlog '0': expected a whole number from 1 to 65535"},
      {{"--backlog", "65536", "main:app"}, {}, "--backlog '65536': expected a whole number"},
      // Timeouts
      {{"--timeout", "5x", "main:app"}, {}, "--timeout '5x': unknown unit 'x'"},
      {{"main:app"}, {{"CORRAL_TIMEOUT", "-1"}}, "CORRAL_TIMEOUT='-1': must not be negative"},
      {{"--graceful-timeout", "soon", "main:app"}, {}, "--graceful-timeout 'soon': expected a"},
      {{"main:app"}, {{"CORRAL_GRACEFUL_TIMEOUT", "1y"}}, "CORRAL_GRACEFUL_TIMEOUT='1y'"},
      {{"--timeout-keep-alive", "", "main:app"}, {}, "--timeout-keep-alive '': expected a"},
      {{"--startup-timeout", "0", "main:app"}, {}, "--startup-timeout '0': must be longer than 0"},
      {{"main:app"}, {{"CORRAL_STARTUP_TIMEOUT", "0ms"}}, "CORRAL_STARTUP_TIMEOUT='0ms': must be"},
      // uvicorn pass-through
      {{"main:app"},
       {{"CORRAL_PROXY_HEADERS", "maybe"}},
       "CORRAL_PROXY_HEADERS='maybe': expected true or false (or 1/0, yes/no)"},
      {{"main:app"}, {{"CORRAL_FACTORY", "2"}}, "CORRAL_FACTORY='2': expected true or false"},
      {{"main:app"}, {{"CORRAL_ACCESS_LOG", "loud"}}, "CORRAL_ACCESS_LOG='loud'"},
      {{"--factory=please", "main:app"}, {}, "--factory 'please': expected true or false"},
      {{"--lifespan", "maybe", "main:app"}, {}, "--lifespan 'maybe': expected auto, on or off"},
      {{"main:app"},
       {{"CORRAL_START_METHOD", "fork"}},
       "CORRAL_START_METHOD='fork': expected forkserver or spawn"},
      {{"main:app"}, {{"CORRAL_LIFESPAN", "always"}}, "CORRAL_LIFESPAN='always': expected auto"},
      {{"--http", "", "main:app"}, {}, "--http '': expected auto, h11, httptools or an import"},
      {{"--loop", "", "main:app"}, {}, "--loop '': expected auto, asyncio, uvloop or an import"},
      {{"--limit-concurrency", "0", "main:app"}, {}, "--limit-concurrency '0': expected a whole"},
      {{"--app-dir", "/nonexistent/corral", "main:app"},
       {},
       "--app-dir '/nonexistent/corral': no such directory"},
      {{"--log-level", "verbose", "main:app"},
       {},
       "--log-level 'verbose': expected critical, error, warning, info, debug or trace"},
      {{"main:app"}, {{"CORRAL_LOG_LEVEL", "loud"}}, "CORRAL_LOG_LEVEL='loud': expected critical"},
      // Strange argv shapes still produce a message, not an exception.
      {{"-"}, {}, "APP '-'"},
      {{"--", "-x"}, {}, "APP '-x'"},
      {{"---x", "main:app"}, {}, "unknown option '---x'"},
      {{"-w=", "main:app"}, {}, "--workers '=': expected a whole number"},
  }));
  CAPTURE(args);
  const Run result = run(args, env);
  checkUsageError(result, message);
}

TEST_CASE("parseCommandLine finds the interpreter", "[unit][config]") {
  TempDir dir;
  const std::string first_bin = dir.path("first");
  const std::string second_bin = dir.path("second");
  fs::create_directories(first_bin);
  const std::string fake = dir.makeExecutable("second/python3");
  const std::string named = dir.makeExecutable("second/python3.11");
  const std::string venv_python = dir.makeExecutable("venv/bin/python");
  const std::string path = first_bin + ":" + second_bin;

  SECTION("python3 from PATH, skipping directories without it") {
    CHECK(parse({"main:app"}, {{"PATH", path}}).config().python == fake);
  }
  SECTION("a file without execute permission is skipped, as execvp does") {
    dir.makeFile("first/python3", fs::perms::owner_read | fs::perms::owner_write);
    CHECK(parse({"main:app"}, {{"PATH", path}}).config().python == fake);
  }
  SECTION("VIRTUAL_ENV's interpreter comes before PATH") {
    const Env env = {{"PATH", path}, {"VIRTUAL_ENV", dir.path("venv")}};
    CHECK(parse({"main:app"}, env).config().python == venv_python);
  }
  SECTION("--python and CORRAL_PYTHON come before VIRTUAL_ENV") {
    const Env env = {{"PATH", path}, {"VIRTUAL_ENV", dir.path("venv")}};
    CHECK(parse({"--python", fake, "main:app"}, env).config().python == fake);
    Env with_variable = env;
    with_variable["CORRAL_PYTHON"] = named;
    CHECK(parse({"main:app"}, with_variable).config().python == named);
  }
  SECTION("--python NAME is searched on PATH") {
    CHECK(parse({"--python", "python3.11", "main:app"}, {{"PATH", path}}).config().python == named);
  }
  SECTION("--python with a relative path becomes absolute") {
    const std::string relative = fs::relative(fake, fs::current_path()).string();
    REQUIRE(relative.front() != '/');
    CHECK(parse({"--python", relative, "main:app"}, {{"PATH", path}}).config().python == fake);
  }
  SECTION("a relative VIRTUAL_ENV becomes absolute too") {
    const std::string venv = fs::relative(dir.path("venv"), fs::current_path()).string();
    const Env env = {{"PATH", path}, {"VIRTUAL_ENV", venv}};
    CHECK(parse({"main:app"}, env).config().python == venv_python);
  }
}

TEST_CASE("parseCommandLine explains a missing interpreter", "[unit][config]") {
  // Static: the generator below is built once, so its paths must outlive each run.
  static const TempDir dir;
  const std::string bin = dir.path("bin");
  const std::string not_executable =
      dir.makeFile("bin/python3.12", fs::perms::owner_read | fs::perms::owner_write);

  const auto [args, env, message] = GENERATE_COPY(table<Args, Env, std::string>({
      {{"main:app"},
       {{"PATH", bin}},
       "corral: error: python3 not found on PATH; install Python 3 or pass --python "
       "/path/to/python\n"},
      {{"--python", "python3.99", "main:app"},
       {{"PATH", bin}},
       "corral: error: --python 'python3.99': not found on PATH; install Python 3 or pass "
       "--python /path/to/python\n"},
      {{"main:app"},
       {{"PATH", bin}, {"CORRAL_PYTHON", "python3.99"}},
       "CORRAL_PYTHON='python3.99': not found on PATH"},
      {{"--python", "python3.12", "main:app"}, {{"PATH", bin}}, "not found on PATH"},
      {{"--python", bin + "/missing", "main:app"},
       {{"PATH", bin}},
       "--python '" + bin + "/missing': no such file"},
      {{"--python", not_executable, "main:app"},
       {{"PATH", bin}},
       "--python '" + not_executable + "': not an executable file"},
      {{"--python", bin, "main:app"}, {{"PATH", bin}}, "--python '" + bin + "': is a directory"},
      {{"--python", "", "main:app"}, {{"PATH", bin}}, "--python '': expected an interpreter"},
      {{"main:app"},
       {{"PATH", bin}, {"VIRTUAL_ENV", dir.path("gone")}},
       "VIRTUAL_ENV='" + dir.path("gone") + "': " + dir.path("gone") +
           "/bin/python is missing or not executable"},
  }));
  CAPTURE(args);
  checkUsageError(parse(args, env), message);
}

TEST_CASE_METHOD(ConfigFixture, "parseCommandLine prints the version for --version",
                 "[unit][config]") {
  const auto args = GENERATE(Args{"--version"}, Args{"--version", "main:app"},
                             Args{"main:app", "--version", "--wokers"});
  const Run result = run(args);
  CHECK(result.outcome.exit_code == corral::kExitOk);
  CHECK_FALSE(result.outcome.config.has_value());
  CHECK(result.out == std::string("corral ") + CORRAL_VERSION + "\n");
  CHECK(result.err.empty());
}

TEST_CASE_METHOD(ConfigFixture, "parseCommandLine prints tidy usage for --help", "[unit][config]") {
  const auto args = GENERATE(Args{"--help"}, Args{"-h"}, Args{"-h", "--wokers", "-w", "x"});
  const Run result = run(args);
  CHECK(result.outcome.exit_code == corral::kExitOk);
  CHECK_FALSE(result.outcome.config.has_value());
  CHECK(result.err.empty());
  CHECK_THAT(result.out, Catch::StartsWith("Usage: corral [OPTIONS] APP\n"));
  for (const char* needle : {"Binding:",
                             "Workers:",
                             "Timeouts",
                             "uvicorn",
                             "General:",
                             "-b, --bind ADDR",
                             "--admin-bind ADDR",
                             "--backlog N",
                             "-w, --workers N",
                             "--min-ready N",
                             "--python PATH",
                             "--timeout DURATION",
                             "--graceful-timeout DURATION",
                             "--startup-timeout DURATION",
                             "--timeout-keep-alive DURATION",
                             "--[no-]proxy-headers",
                             "--forwarded-allow-ips",
                             "--root-path",
                             "--lifespan",
                             "--http",
                             "--loop",
                             "--limit-concurrency N",
                             "--factory",
                             "--[no-]access-log",
                             "--app-dir DIR",
                             "--log-level LEVEL",
                             "-h, --help",
                             "--version",
                             "CORRAL_<OPTION>",
                             "WEB_CONCURRENCY",
                             "Exit codes: 0"}) {
    CHECK_THAT(result.out, Catch::Contains(needle));
  }
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) {
    CAPTURE(line);
    CHECK(line.size() <= 100);
    CHECK((line.empty() || line.back() != ' '));
  }
}

TEST_CASE("parseCommandLine survives an empty argv", "[unit][config]") {
  std::ostringstream out;
  std::ostringstream err;
  const auto outcome = corral::parseCommandLine(
      0, nullptr, [](const std::string&) { return std::optional<std::string>{}; }, out, err);
  CHECK(outcome.exit_code == corral::kExitUsage);
  CHECK_THAT(err.str(), Catch::Contains("missing APP"));
}

TEST_CASE("logLevelName uses uvicorn's names", "[unit][config]") {
  CHECK(corral::logLevelName(LogLevel::Critical) == "critical");
  CHECK(corral::logLevelName(LogLevel::Error) == "error");
  CHECK(corral::logLevelName(LogLevel::Warning) == "warning");
  CHECK(corral::logLevelName(LogLevel::Info) == "info");
  CHECK(corral::logLevelName(LogLevel::Debug) == "debug");
  CHECK(corral::logLevelName(LogLevel::Trace) == "trace");
}

TEST_CASE("processEnvironment reads the real environment", "[unit][config]") {
  REQUIRE(::setenv("CORRAL_CONFIG_TEST_PROBE", "42", 1) == 0);
  const corral::EnvLookup env = corral::processEnvironment();
  CHECK(env("CORRAL_CONFIG_TEST_PROBE") == "42");
  REQUIRE(::unsetenv("CORRAL_CONFIG_TEST_PROBE") == 0);
  CHECK_FALSE(env("CORRAL_CONFIG_TEST_PROBE").has_value());
}

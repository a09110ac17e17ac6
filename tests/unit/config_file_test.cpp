// The config file (--config), precedence between the command line, the environment and the
// file, gunicorn's and uvicorn's synonyms, the warnings about variables corral does not read,
// and --print-config.

#include "config/config_file.hpp"

#include <unistd.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config.hpp"
#include "config/did_you_mean.hpp"
#include "config/exit_codes.hpp"
#include "config/migration.hpp"

namespace corral {
namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;
using namespace std::chrono_literals;

struct Run {
  ParseOutcome outcome;
  std::string out;
  std::string err;

  const Config& config() const {
    INFO("stderr: " << err);
    REQUIRE(outcome.exit_code == 0);
    REQUIRE(outcome.config.has_value());
    return *outcome.config;
  }

  /// The one error line, checked to be the last line of stderr and to start as errors do.
  std::string error() const {
    INFO("stderr: " << err << "stdout: " << out);
    CHECK(outcome.exit_code == kExitUsage);
    CHECK_FALSE(outcome.config.has_value());
    const auto start = err.rfind("corral: error: ");
    REQUIRE(start != std::string::npos);
    CHECK(err.back() == '\n');
    CHECK(err.find('\n', start) == err.size() - 1);
    return err.substr(start);
  }
};

/// A private folder with a fake python3 on PATH (nothing depends on the machine's Python) and
/// the config files a test writes.
class FileFixture {
 public:
  FileFixture() {
    std::string pattern = (fs::temp_directory_path() / "corral-file-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "bin");
    std::ofstream(dir_ / "bin/python3") << "#!/bin/sh\nexit 0\n";
    fs::permissions(dir_ / "bin/python3", fs::perms::owner_all);
  }
  ~FileFixture() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  FileFixture(const FileFixture&) = delete;
  FileFixture& operator=(const FileFixture&) = delete;

  std::string write(const std::string& text, const std::string& name = "corral.toml") const {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }

  std::string path(const std::string& relative) const { return (dir_ / relative).string(); }

  Run run(const Args& args, Env env = {}, bool with_names = true) const {
    env.try_emplace("PATH", (dir_ / "bin").string());
    std::vector<const char*> argv{"corral"};
    for (const auto& arg : args) argv.push_back(arg.c_str());
    const EnvLookup lookup = [env](const std::string& name) -> std::optional<std::string> {
      const auto found = env.find(name);
      if (found == env.end()) return std::nullopt;
      return found->second;
    };
    std::vector<std::string> names;
    if (with_names) {
      for (const auto& [name, value] : env) names.push_back(name);
    }
    std::ostringstream out;
    std::ostringstream err;
    Run result;
    result.outcome =
        parseCommandLine(static_cast<int>(argv.size()), argv.data(), lookup, out, err, names);
    result.out = out.str();
    result.err = err.str();
    return result;
  }

  /// Runs with `file_text` as the --config file.
  Run withFile(const std::string& file_text, Args args = {}, Env env = {}) const {
    const std::string file = write(file_text);
    args.insert(args.begin(), {"--config", file});
    return run(args, std::move(env));
  }

 private:
  fs::path dir_;
};

std::vector<std::string> bindStrings(const Config& config) {
  std::vector<std::string> out;
  for (const auto& bind : config.binds) out.push_back(bind.str());
  return out;
}

std::string noticeText(const std::vector<Notice>& notices) {
  std::string out;
  for (const auto& notice : notices) out += notice.text + "\n";
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading the file

TEST_CASE("ConfigFile reads every kind of value, each named by its line", "[unit][config]") {
  const ConfigFile file = ConfigFile::parse(
      "# a comment\n"
      "app = \"main:app\"\n"
      "workers = 4\n"
      "bind = [\"0.0.0.0:8000\",\n"
      "        \"unix:/run/app.sock\"]\n"
      "graceful-timeout = \"30s\"\n"
      "timeout = 2.5\n"
      "proxy-headers = true\n"
      "access-log = false\n"
      "umask = 0o027\n"
      "worker-memory-budget = 536870912\n"
      "user = 1000\n"
      "header = \"X-A: b\"\n",
      "corral.toml");
  const auto value = [&](const std::string& name) {
    const auto* values = file.find(name);
    REQUIRE(values != nullptr);
    REQUIRE(values->size() == 1);
    return values->front();
  };
  CHECK(value("APP").text == "main:app");
  CHECK(value("APP").source == "corral.toml:2: app");
  CHECK(value("APP").origin == Origin::File);
  CHECK(value("--workers").text == "4");
  CHECK(value("--workers").source == "corral.toml:3: workers");
  CHECK(value("--graceful-timeout").text == "30s");
  CHECK(value("--timeout").text == "2.5");
  CHECK(value("--proxy-headers").text == "true");
  CHECK(value("--access-log").text == "false");
  CHECK(value("--umask").text == "27");
  CHECK(value("--worker-memory-budget").text == "536870912");
  CHECK(value("--user").text == "1000");
  CHECK(value("--header").text == "X-A: b");
  const auto* binds = file.find("--bind");
  REQUIRE(binds != nullptr);
  REQUIRE(binds->size() == 2);
  CHECK(binds->at(0).text == "0.0.0.0:8000");
  CHECK(binds->at(0).source == "corral.toml:4: bind");
  CHECK(binds->at(1).text == "unix:/run/app.sock");
  CHECK(binds->at(1).source == "corral.toml:5: bind");
  CHECK(file.find("--backlog") == nullptr);
}

TEST_CASE("ConfigFile takes the characters toml++ 3.3.0 reads safely, and escapes",
          "[unit][config]") {
  const auto file = ConfigFile::parse(
      "\xEF\xBB\xBF# \xE2\x80\x94 \xE6\xBC\xA2\n"    // a byte order mark; U+2014, U+6F22
      "root-path = \"/caf\\u00e9/\xE6\xBC\xA2\"\n"   // an escape; U+6F22 as it is
      "forwarded-allow-ips = '\xF0\x9F\x98\x80'\n",  // U+1F600
      "corral.toml");
  const auto* root_path = file.find("--root-path");
  REQUIRE(root_path);
  CHECK(root_path->front().text == "/caf\xC3\xA9/\xE6\xBC\xA2");
}

TEST_CASE("ConfigFile errors name the file, the line, the key and what is expected",
          "[unit][config]") {
  const auto [text, message] = GENERATE(table<std::string, std::string>({
      {"\nworkerz = 3", "corral.toml:2: unknown key 'workerz'; did you mean workers?"},
      // toml++ 3.3.0 asserts on this header unless corral turns its asserts off (fuzz found it).
      // And is undefined on many non-ASCII characters, which corral refuses before it reads.
      {"qsl\xEF\xBB\xAF-ce = 1",
       "corral.toml:1: the character U+FEEF is one corral's TOML reader (toml++ 3.3.0) cannot "
       "take safely; in a \"string\" write it as an escape, \\uFEEF"},
      {"workers = 2\n\xC3\xA9 = 1", "corral.toml:2: the character U+00E9 is one"},
      {"root-path = \"caf\xC3\xA9\"", "write it as an escape, \\u00E9"},
      {"[&r]res\nwoers =",
       "corral.toml:1:2: not valid TOML: Error while parsing key: expected bare key"},
      {"graceful_timeout = 3",
       "corral.toml:1: unknown key 'graceful_timeout'; did you mean "
       "graceful-timeout?"},
      {"frobnicate = 1",
       "corral.toml:1: unknown key 'frobnicate'; the keys are corral's long "
       "options without their dashes, and app"},
      {"workers = true", "corral.toml:1: workers: expected a whole number, not a boolean"},
      {"workers = 2.5", "corral.toml:1: workers: expected a whole number, not a float"},
      {"proxy-headers = \"yes\"",
       "corral.toml:1: proxy-headers: expected true or false, not a "
       "string"},
      {"root-path = 5", "corral.toml:1: root-path: expected a string, not an integer"},
      {"bind = 8000",
       "corral.toml:1: bind: expected a string or an array of strings, not an "
       "integer"},
      {"bind = [\"127.0.0.1:1\",\n 2]", "corral.toml:2: bind: expected a string, not an integer"},
      {"workers = [4]", "corral.toml:1: workers: expected a whole number, not an array"},
      {"umask = 22",
       "corral.toml:1: umask: expected an octal mode: a string (\"022\") or an "
       "octal number (0o022), not an integer"},
      {"graceful-timeout = 1979-05-27", "graceful-timeout: expected a duration"},
      {"[server]\nworkers = 2", "corral.toml:1: [server]: corral's config file has no tables"},
      {"workers = = 3", "corral.toml:1:11: not valid TOML: "},
      {"workers = 3\nworkers = 4", "corral.toml:2:"},
      {"no-access-log = true",
       "corral.toml:1: unknown key 'no-access-log'; write access-log = "
       "false"},
      {"keep-alive = 5",
       "unknown key 'keep-alive': corral's name for gunicorn's --keep-alive is "
       "timeout-keep-alive"},
      {"keepalive = 5",
       "unknown key 'keepalive': corral's name for gunicorn's --keep-alive is "
       "timeout-keep-alive"},
      {"port = 8000",
       "unknown key 'port': corral sets uvicorn's --port with bind = "
       "[\"HOST:PORT\"]"},
      {"preload_app = true", "unknown key 'preload_app'; did you mean preload?"},
      {"threads = 4", "unknown key 'threads'; --threads does not apply"},
      {"config = \"other.toml\"",
       "unknown key 'config'; --config is set on the command line or "
       "as CORRAL_CONFIG, not in a config file"},
      {"print-config = true",
       "unknown key 'print-config'; --print-config is a command-line "
       "option only"},
  }));
  CAPTURE(text);
  try {
    ConfigFile::parse(text, "corral.toml");
    FAIL("no error");
  } catch (const ConfigError& error) {
    CHECK_THAT(error.what(), Catch::Contains(message));
    CHECK(std::string(error.what()).find('\n') == std::string::npos);
  }
}

TEST_CASE_METHOD(FileFixture, "A bad value in the file is named by file, line and key",
                 "[unit][config]") {
  const auto [text, message] = GENERATE(table<std::string, std::string>({
      {"app = \"main:app\"\nworkers = \"lots\"",
       "corral.toml:2: workers = 'lots': expected a whole number of workers >= 1"},
      {"app = \"main:app\"\n\ngraceful-timeout = \"5x\"",
       "corral.toml:3: graceful-timeout = '5x': unknown unit 'x'"},
      {"app = \"main\"", "corral.toml:1: app = 'main': expected module:attribute"},
      {"app = \"main:app\"\nbind = [\"127.0.0.1:1\",\n  \"example.com:80\"]",
       "corral.toml:3: bind = 'example.com:80': 'example.com' is not a numeric IP address"},
      {"app = \"main:app\"\nheader = [\"X A: b\"]",
       "corral.toml:2: header = 'X A: b': 'X A' is "
       "not a valid header name"},
  }));
  const std::string error = withFile(text).error();
  CHECK_THAT(error, Catch::Contains(fs::path(path("corral.toml")).string() + ":"));
  CHECK_THAT(error, Catch::Contains(message));
}

TEST_CASE_METHOD(FileFixture, "The config file comes from --config, -c or CORRAL_CONFIG",
                 "[unit][config]") {
  const std::string file = write("app = \"main:app\"\nworkers = 3\n");
  CHECK(run({"--config", file}).config().workers == 3);
  CHECK(run({"-c", file}).config().workers == 3);
  CHECK(run({}, {{"CORRAL_CONFIG", file}}).config().workers == 3);
  CHECK(run({"--config", file}).config().config_file == file);
  // The command line names the file when both do.
  const std::string other = write("app = \"main:app\"\nworkers = 5\n", "other.toml");
  CHECK(run({"--config", other}, {{"CORRAL_CONFIG", file}}).config().workers == 5);
  // Errors reading it name the flag or the variable.
  CHECK_THAT(run({"--config", path("missing.toml"), "main:app"}).error(),
             Catch::Contains("--config '" + path("missing.toml") + "': no such file"));
  CHECK_THAT(run({"main:app"}, {{"CORRAL_CONFIG", path("missing.toml")}}).error(),
             Catch::Contains("CORRAL_CONFIG='" + path("missing.toml") + "': no such file"));
  CHECK_THAT(run({"-c", path("bin")}).error(), Catch::Contains("is a directory"));
  CHECK_THAT(run({"-c", "gunicorn.conf.py", "main:app"}).error(),
             Catch::Contains("--config 'gunicorn.conf.py': corral reads TOML, not a "
                             "gunicorn.conf.py"));
}

// ---------------------------------------------------------------------------------------------
// Precedence: command line > environment > file > defaults

TEST_CASE_METHOD(FileFixture,
                 "The command line wins over the environment, which wins over the "
                 "file, which wins over the defaults",
                 "[unit][config]") {
  const std::string file =
      "app = \"file:app\"\nworkers = 3\ngraceful-timeout = \"10s\"\nbacklog = 100\n"
      "bind = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\nproxy-headers = true\n";
  SECTION("the file over the defaults") {
    const Run c_run = withFile(file);
    const Config& c = c_run.config();
    CHECK(c.app == "file:app");
    CHECK(c.workers == 3);
    CHECK(c.graceful_timeout == 10s);
    CHECK(c.backlog == 100);
    CHECK(bindStrings(c) == std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002"});
    CHECK(c.proxy_headers == true);
    CHECK(c.timeout == 30s);  // not in the file: the default
  }
  SECTION("the environment over the file") {
    const Run r = withFile(file, {},
                           {{"CORRAL_WORKERS", "4"},
                            {"CORRAL_GRACEFUL_TIMEOUT", "20s"},
                            {"CORRAL_BIND", "127.0.0.1:7003"},
                            {"CORRAL_PROXY_HEADERS", "false"},
                            {"CORRAL_APP", "env:app"}});
    const Run c_run = r;
    const Config& c = c_run.config();
    CHECK(c.app == "env:app");
    CHECK(c.workers == 4);
    CHECK(c.graceful_timeout == 20s);
    CHECK(c.backlog == 100);
    CHECK(bindStrings(c) == std::vector<std::string>{"127.0.0.1:7003"});
    CHECK(c.proxy_headers == false);
  }
  SECTION("the command line over both") {
    const Run c_run = withFile(file,
                               {"-w", "5", "--graceful-timeout", "30s", "-b", "127.0.0.1:7004",
                                "--no-proxy-headers", "cli:app"},
                               {{"CORRAL_WORKERS", "4"},
                                {"CORRAL_GRACEFUL_TIMEOUT", "20s"},
                                {"CORRAL_BIND", "127.0.0.1:7003"},
                                {"CORRAL_APP", "env:app"}});
    const Config& c = c_run.config();
    CHECK(c.app == "cli:app");
    CHECK(c.workers == 5);
    CHECK(c.graceful_timeout == 30s);
    CHECK(bindStrings(c) == std::vector<std::string>{"127.0.0.1:7004"});
    CHECK(c.proxy_headers == false);
  }
  SECTION("a synonym on the command line is the command line") {
    const Run c_run = withFile("app = \"a:b\"\ntimeout-keep-alive = 9\n", {"--keep-alive", "65"},
                               {{"CORRAL_TIMEOUT_KEEP_ALIVE", "30"}});
    const Config& c = c_run.config();
    CHECK(c.timeout_keep_alive == 65s);
  }
  SECTION("WEB_CONCURRENCY and PORT only change defaults, as in gunicorn: the file wins") {
    const Run c_run = withFile(file, {}, {{"WEB_CONCURRENCY", "7"}, {"PORT", "9999"}});
    const Config& c = c_run.config();
    CHECK(c.workers == 3);
    CHECK(bindStrings(c) == std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002"});
    const Run d_run = withFile("app = \"a:b\"\n", {}, {{"WEB_CONCURRENCY", "7"}});
    const Config& d = d_run.config();
    CHECK(d.workers == 7);
  }
}

TEST_CASE_METHOD(FileFixture, "A bad value in the file is an error even where it is overridden",
                 "[unit][config]") {
  const auto [line, args, env] = GENERATE(table<std::string, Args, Env>({
      {"workers = \"lots\"", {"--workers", "2"}, {}},
      {"workers = \"lots\"", {}, {{"CORRAL_WORKERS", "2"}}},
      {"graceful-timeout = \"30 s\"", {"--timeout-graceful-shutdown", "5"}, {}},
      {"bind = [\"nope:x\"]", {"--port", "9000"}, {}},
      {"bind = [\"nope:x\"]", {}, {{"CORRAL_BIND", "127.0.0.1:9000"}}},
  }));
  const std::string error = withFile("app = \"a:b\"\n" + line + "\n", args, env).error();
  CHECK_THAT(error, Catch::Contains("corral.toml:2: " + line.substr(0, line.find(' '))));
  // A good value that is overridden stays overridden, and is no error.
  const Run c_run = withFile("app = \"a:b\"\nworkers = 3\nbind = [\"127.0.0.1:7001\"]\n",
                             {"--workers", "2"}, {{"CORRAL_BIND", "127.0.0.1:7002"}});
  CHECK(c_run.config().workers == 2);
  CHECK(bindStrings(c_run.config()) == std::vector<std::string>{"127.0.0.1:7002"});
}

// ---------------------------------------------------------------------------------------------
// gunicorn's and uvicorn's names

TEST_CASE_METHOD(FileFixture, "uvicorn's --host and --port make one bind", "[unit][config]") {
  const auto [args, binds] = GENERATE(table<Args, std::vector<std::string>>({
      {{"--host", "0.0.0.0", "--port", "9000"}, {"0.0.0.0:9000"}},
      {{"--port", "9000"}, {"127.0.0.1:9000"}},  // uvicorn's default host
      {{"--host", "0.0.0.0"}, {"0.0.0.0:8000"}},
      {{"--host", "::", "--port", "9000"}, {"[::]:9000"}},
      {{"--uds", "/run/app.sock"}, {"unix:/run/app.sock"}},
      {{"--fd", "3"}, {"fd://3"}},
      {{"-b", "127.0.0.1:1", "--port", "2"}, {"127.0.0.1:1", "127.0.0.1:2"}},
  }));
  Args full = args;
  full.push_back("main:app");
  CHECK(bindStrings(run(full).config()) == binds);
  CHECK_THAT(run({"--port", "99999", "main:app"}).error(),
             Catch::Contains("--port '99999': expected a port number from 0 to 65535"));
  CHECK_THAT(run({"--host", "example.com", "main:app"}).error(),
             Catch::Contains("--host 'example.com:8000': 'example.com' is not a numeric IP"));
  CHECK_THAT(run({"--fd", "x", "main:app"}).error(), Catch::Contains("--fd 'x'"));
}

TEST_CASE_METHOD(FileFixture, "gunicorn's and uvicorn's names set corral's options",
                 "[unit][config]") {
  const Run c_run =
      run({"--keep-alive", "65", "--timeout-graceful-shutdown", "20", "--limit-max-requests",
           "1000", "--limit-max-requests-jitter", "50", "--timeout-worker-healthcheck", "10", "-p",
           path("corral.pid"), "--access-logfile", "-", "--error-logfile", "-", "main:app"});
  const Config& c = c_run.config();
  CHECK(c.timeout_keep_alive == 65s);
  CHECK(c.graceful_timeout == 20s);
  CHECK(c.max_requests == 1000);
  CHECK(c.max_requests_jitter == 50);
  CHECK(c.timeout == 10s);
  CHECK(c.pidfile == path("corral.pid"));
  CHECK(c.access_log);
  CHECK(run({"--no-access-log", "main:app"}).config().access_log == false);
  CHECK(run({"--access-logfile", "/dev/stdout", "main:app"}).config().access_log);
  CHECK(run({"--log-file", "/dev/stderr", "main:app"}).config().app == "main:app");
  CHECK(run({"-t", "90", "main:app"}).config().timeout == 90s);
  SECTION("a bad value is named by the spelling used") {
    CHECK_THAT(run({"--keep-alive", "soon", "main:app"}).error(),
               Catch::Contains("--keep-alive 'soon'"));
  }
  SECTION("a synonym and its option together are refused") {
    CHECK_THAT(run({"--keep-alive", "5", "--timeout-keep-alive", "6", "main:app"}).error(),
               Catch::Contains("--keep-alive and --timeout-keep-alive are both given, and "
                               "--keep-alive is gunicorn's name for --timeout-keep-alive: keep "
                               "one"));
  }
  SECTION("logs go to stdout and stderr only") {
    CHECK_THAT(run({"--access-logfile", "/var/log/access.log", "main:app"}).error(),
               Catch::Contains("--access-logfile '/var/log/access.log': corral's workers write "
                               "the access log to stdout"));
    CHECK_THAT(run({"--error-logfile", "err.log", "main:app"}).error(),
               Catch::Contains("--error-logfile 'err.log': corral and its workers write their "
                               "errors to stderr"));
  }
  SECTION("--worker-tmp-dir is accepted, with an info line") {
    const Run r = run({"--worker-tmp-dir", "/dev/shm", "main:app"});
    REQUIRE(r.config().app == "main:app");
    REQUIRE(r.outcome.notices.size() == 1);
    CHECK(r.outcome.notices[0].level == Notice::Level::Info);
    CHECK_THAT(r.outcome.notices[0].text,
               Catch::Contains("--worker-tmp-dir /dev/shm is not needed, and ignored"));
  }
  SECTION("a synonym needs its value") {
    CHECK_THAT(run({"--keep-alive", "--workers", "2", "main:app"}).error(),
               Catch::Contains("--keep-alive needs a value"));
  }
}

TEST_CASE_METHOD(FileFixture, "Options that do not apply get why, and what instead",
                 "[unit][config]") {
  const auto [args, message] = GENERATE(table<Args, std::string>({
      {{"-k", "uvicorn.workers.UvicornWorker"}, "-k: corral always runs uvicorn workers"},
      {{"--worker-class", "uvicorn.workers.UvicornWorker"}, "--worker-class: corral always runs"},
      {{"--threads", "4"}, "--threads: threads are for gunicorn's gthread workers"},
      {{"--worker-connections", "1000"},
       "--worker-connections: it sizes gunicorn's eventlet and "
       "gevent workers; uvicorn's limit per worker is "
       "--limit-concurrency N"},
      {{"--daemon"}, "--daemon: corral stays in the foreground"},
      {{"-D"}, "-D: corral stays in the foreground"},
      {{"--statsd-host", "localhost:8125"},
       "--statsd-host: corral sends no statsd; it serves "
       "Prometheus metrics"},
      {{"-e", "A=1"}, "-e: corral's workers inherit its environment"},
      {{"--pythonpath", "/srv"}, "--pythonpath: use --app-dir DIR"},
      {{"--limit-request-line", "8190"}, "--limit-request-line: uvicorn has no such limits"},
      {{"--interface", "asgi3"}, "--interface: corral leaves uvicorn's --interface on auto"},
      {{"--no-sendfile"}, "--no-sendfile: uvicorn does not use sendfile"},
  }));
  Args full = args;
  full.push_back("main:app");
  const std::string error = run(full).error();
  CHECK_THAT(error, Catch::StartsWith("corral: error: " + message));
}

TEST_CASE_METHOD(FileFixture, "An unknown option gets 'did you mean' for a near miss",
                 "[unit][config]") {
  const auto [flag, suggestion] = GENERATE(table<std::string, std::string>({
      {"--workerz", "--workers"},
      {"--wrokers", "--workers"},
      {"--graceful-timout", "--graceful-timeout"},
      {"--keepalive", "--keep-alive"},
      {"--proxy-header", "--proxy-headers"},
      {"--no-acess-log", "--no-access-log"},
      {"--check_config", "--check-config"},
      {"--max-request", "--max-requests"},
  }));
  CHECK_THAT(run({flag, "main:app"}).error(),
             Catch::Contains("unknown option '" + flag + "'; did you mean " + suggestion + "?"));
}

TEST_CASE("closestMatch finds typos and nothing else", "[unit][config]") {
  const std::vector<std::string> names{
      "--workers", "--timeout", "--graceful-timeout", "--timeout-keep-alive", "--bind", "--http"};
  CHECK(closestMatch("--workerz", names) == "--workers");
  CHECK(closestMatch("--WORKERS", names) == "--workers");
  CHECK(closestMatch("timeout_keep_alive", names) == "--timeout-keep-alive");
  CHECK(closestMatch("--keep-alive", names) == "--timeout-keep-alive");  // a part of it
  CHECK(closestMatch("--bnid", names) == "--bind");                      // swapped letters
  CHECK(closestMatch("--frobnicate", names) == std::nullopt);
  CHECK(closestMatch("--b", names) == std::nullopt);
  CHECK(closestMatch("", names) == std::nullopt);
  CHECK(closestMatch("--htp", names) == "--http");
  CHECK(closestMatch("--xyz", names) == std::nullopt);  // one letter of four is too far
  CHECK(didYouMean("--workerz", names) == "; did you mean --workers?");
  CHECK(didYouMean("--frobnicate", names).empty());
}

// ---------------------------------------------------------------------------------------------
// Variables corral does not read

TEST_CASE_METHOD(FileFixture, "A CORRAL_ variable that names no option is a warning",
                 "[unit][config]") {
  const Run r = run({"main:app"}, {{"CORRAL_WORKER", "3"},
                                   {"CORRAL_GRACEFUL_TIMOUT", "5"},
                                   {"CORRAL_KEEP_ALIVE", "5"},
                                   {"CORRAL_PRINT_CONFIG", "1"},
                                   {"CORRAL_NO_ACCESS_LOG", "1"},
                                   {"CORRAL_WORKERS", "2"},
                                   {"CORRAL_APP", "main:app"},
                                   {"CORRAL_CONFIG", ""},
                                   {"CORRAL_FROBNICATE", "x"}});
  CHECK(r.config().workers == 2);
  const std::string text = noticeText(r.outcome.notices);
  CAPTURE(text);
  CHECK(r.outcome.notices.size() == 6);
  for (const auto& notice : r.outcome.notices) CHECK(notice.level == Notice::Level::Warning);
  CHECK_THAT(text, Catch::Contains("CORRAL_WORKER is set, but names no corral option, so it "
                                   "changes nothing; did you mean CORRAL_WORKERS?"));
  CHECK_THAT(text, Catch::Contains("CORRAL_GRACEFUL_TIMOUT is set, but names no corral option, "
                                   "so it changes nothing; did you mean "
                                   "CORRAL_GRACEFUL_TIMEOUT?"));
  CHECK_THAT(text, Catch::Contains("CORRAL_KEEP_ALIVE is set, but names no corral option, so it "
                                   "changes nothing: corral's name for gunicorn's --keep-alive "
                                   "is CORRAL_TIMEOUT_KEEP_ALIVE"));
  CHECK_THAT(text, Catch::Contains("CORRAL_PRINT_CONFIG is set, but corral does not read it: "
                                   "--print-config is a command-line option only"));
  CHECK_THAT(text, Catch::Contains("CORRAL_NO_ACCESS_LOG is set, but names no corral option, so "
                                   "it changes nothing; set CORRAL_ACCESS_LOG=false"));
  CHECK_THAT(text, Catch::Contains("CORRAL_FROBNICATE is set, but names no corral option, so it "
                                   "changes nothing; run 'corral --help' for the options"));
  SECTION("the warnings come before an error, which may be their consequence") {
    const Run failed = run({}, {{"CORRAL_AP", "main:app"}});
    CHECK_THAT(failed.error(), Catch::Contains("missing APP"));
    CHECK_THAT(failed.err, Catch::StartsWith("corral: warning: CORRAL_AP is set, but names no "
                                             "corral option, so it changes nothing; did you "
                                             "mean CORRAL_APP?\n"));
  }
}

TEST_CASE_METHOD(FileFixture,
                 "GUNICORN_CMD_ARGS and UVICORN_* get one warning each, with "
                 "corral's equivalent",
                 "[unit][config]") {
  const Run r = run({"main:app"},
                    {{"GUNICORN_CMD_ARGS",
                      "--workers=3 --keep-alive 5 -b 0.0.0.0:80 --bind unix:/run/a.sock --preload "
                      "--graceful-timeout '30' --forwarded-allow-ips='10.0.0.1,10.0.0.2' -k "
                      "uvicorn.workers.UvicornWorker --access-logfile - --no-proxy-headers"},
                     {"UVICORN_WORKERS", "4"},
                     {"UVICORN_HOST", "0.0.0.0"},
                     {"UVICORN_PORT", "9000"},
                     {"UVICORN_RELOAD", "true"},
                     {"UVICORN_APP", "main:app"}});
  const std::string text = noticeText(r.outcome.notices);
  CAPTURE(text);
  REQUIRE(r.outcome.notices.size() == 6);
  CHECK_THAT(text, Catch::Contains(
                       "GUNICORN_CMD_ARGS is set, but corral does not read it; for corral: "
                       "CORRAL_WORKERS=3 CORRAL_TIMEOUT_KEEP_ALIVE=5 CORRAL_PRELOAD=true "
                       "CORRAL_GRACEFUL_TIMEOUT=30 CORRAL_FORWARDED_ALLOW_IPS=10.0.0.1,10.0.0.2 "
                       "CORRAL_ACCESS_LOG=true CORRAL_PROXY_HEADERS=false "
                       "CORRAL_BIND=0.0.0.0:80,unix:/run/a.sock; nothing for -k (corral -k says "
                       "why)"));
  CHECK_THAT(text, Catch::Contains("UVICORN_WORKERS is set, but corral does not read it (uvicorn "
                                   "does); for corral: CORRAL_WORKERS=4"));
  CHECK_THAT(text, Catch::Contains("UVICORN_HOST is set, but corral does not read it (uvicorn "
                                   "does); for corral: CORRAL_BIND=0.0.0.0:9000"));
  CHECK_THAT(text, Catch::Contains("UVICORN_PORT is set, but corral does not read it (uvicorn "
                                   "does); for corral: CORRAL_BIND=0.0.0.0:9000"));
  CHECK_THAT(text, Catch::Contains("UVICORN_RELOAD is set, but corral does not read it (uvicorn "
                                   "does); for corral: CORRAL_RELOAD=true"));
  CHECK_THAT(text, Catch::Contains("UVICORN_APP is set, but corral does not read it (uvicorn "
                                   "does); for corral: CORRAL_APP=main:app"));
  // They change nothing: the defaults stand.
  CHECK(r.config().workers_reason != "GUNICORN_CMD_ARGS");
}

TEST_CASE_METHOD(FileFixture, "Variables are not looked at when the caller lists none",
                 "[unit][config]") {
  const Run r = run({"main:app"}, {{"CORRAL_WORKER", "3"}}, false);
  CHECK(r.outcome.notices.empty());
}

// ---------------------------------------------------------------------------------------------
// uvicorn's options passed through

TEST_CASE_METHOD(FileFixture, "uvicorn's TLS, WebSocket and header options are read",
                 "[unit][config]") {
  const std::string cert = write("cert", "cert.pem");
  const std::string key = write("key", "key.pem");
  const Run c_run = run({"--ssl-certfile",
                         cert,
                         "--ssl-keyfile",
                         key,
                         "--ssl-keyfile-password",
                         "secret",
                         "--ssl-version",
                         "17",
                         "--ssl-cert-reqs",
                         "2",
                         "--ssl-ca-certs",
                         cert,
                         "--ssl-ciphers",
                         "ECDHE+AESGCM",
                         "--ws",
                         "wsproto",
                         "--ws-max-size",
                         "1Mi",
                         "--ws-max-queue",
                         "8",
                         "--ws-ping-interval",
                         "10s",
                         "--ws-ping-timeout",
                         "0",
                         "--no-ws-per-message-deflate",
                         "--header",
                         "X-Frame-Options: DENY",
                         "--header",
                         "X-Empty:",
                         "--no-server-header",
                         "--date-header",
                         "--h11-max-incomplete-event-size",
                         "64Ki",
                         "main:app"});
  const Config& c = c_run.config();
  CHECK(c.ssl_certfile == cert);
  CHECK(c.ssl_keyfile == key);
  CHECK(c.ssl_keyfile_password == "secret");
  CHECK(c.ssl_version == 17);
  CHECK(c.ssl_cert_reqs == 2);
  CHECK(c.ssl_ca_certs == cert);
  CHECK(c.ssl_ciphers == "ECDHE+AESGCM");
  CHECK(c.ws == "wsproto");
  CHECK(c.ws_max_size == 1024 * 1024);
  CHECK(c.ws_max_queue == 8);
  CHECK(c.ws_ping_interval == 10s);
  CHECK(c.ws_ping_timeout == 0s);
  CHECK(c.ws_per_message_deflate == false);
  CHECK(c.headers == std::vector<ResponseHeader>{{"X-Frame-Options", "DENY"}, {"X-Empty", ""}});
  CHECK(c.server_header == false);
  CHECK(c.date_header == true);
  CHECK(c.h11_max_incomplete_event_size == 64 * 1024);
  SECTION("unset, they are left to uvicorn") {
    const Run d_run = run({"main:app"});
    const Config& d = d_run.config();
    CHECK_FALSE(d.ssl_certfile);
    CHECK_FALSE(d.ws);
    CHECK_FALSE(d.server_header);
    CHECK(d.headers.empty());
  }
  SECTION("CORRAL_HEADER holds one header a line") {
    const Run d_run = run({"main:app"}, {{"CORRAL_HEADER", "X-A: 1\nX-B: two, three\n"}});
    const Config& d = d_run.config();
    CHECK(d.headers == std::vector<ResponseHeader>{{"X-A", "1"}, {"X-B", "two, three"}});
  }
  SECTION("bad values") {
    const auto [args, message] = GENERATE(table<Args, std::string>({
        {{"--ssl-certfile", "/nonexistent.pem"}, "--ssl-certfile '/nonexistent.pem': no such file"},
        {{"--ssl-keyfile", "KEY"},
         "needs --ssl-certfile too: without a certificate, there is no TLS"},
        {{"--ssl-ciphers", "x"}, "--ssl-ciphers 'x': needs --ssl-certfile too"},
        {{"--ssl-certfile", "CERT", "--ssl-cert-reqs", "3"}, "--ssl-cert-reqs '3': expected 0"},
        {{"--header", "NoColon"}, "--header 'NoColon': expected NAME:VALUE"},
        {{"--header", ": x"}, "--header ': x': expected NAME:VALUE"},
        {{"--header", "X-A: a\rb"}, "a header value cannot hold line breaks"},
        {{"--ws-max-size", "lots"}, "--ws-max-size 'lots'"},
        {{"--ws-max-queue", "0"}, "--ws-max-queue '0': expected a whole number of messages >= 1"},
        {{"--ws", ""}, "--ws '': expected auto, none, websockets, wsproto or an import string"},
    }));
    // The files are made again for each run of the section, in a new folder.
    Args full = args;
    for (auto& arg : full) arg = arg == "CERT" ? cert : arg == "KEY" ? key : arg;
    full.push_back("main:app");
    CHECK_THAT(run(full).error(), Catch::Contains(message));
  }
}

TEST_CASE_METHOD(FileFixture, "Option --chdir is where relative paths are taken from",
                 "[unit][config]") {
  std::filesystem::create_directories(path("srv/app"));
  write("#!/bin/sh\n", "srv/venv-python");
  std::filesystem::permissions(path("srv/venv-python"), fs::perms::owner_all);
  const Run c_run =
      run({"--chdir", path("srv"), "--app-dir", "app", "--python", "./venv-python", "main:app"});
  const Config& c = c_run.config();
  CHECK(c.chdir == path("srv"));
  CHECK(c.app_dir == "app");
  CHECK(c.python == path("srv/venv-python"));
  CHECK_THAT(run({"--chdir", path("nowhere"), "main:app"}).error(),
             Catch::Contains("--chdir '" + path("nowhere") + "': no such directory"));
  CHECK_THAT(run({"--chdir", path("srv"), "--app-dir", "missing", "main:app"}).error(),
             Catch::Contains("--app-dir 'missing': no such directory"));
}

// ---------------------------------------------------------------------------------------------
// --print-config

TEST_CASE_METHOD(FileFixture, "Option --print-config says where every setting came from",
                 "[unit][config]") {
  const std::string file = write(
      "app = \"main:app\"\n"
      "workers = 3\n"
      "graceful-timeout = \"45s\"\n"
      "header = [\"X-A: 1\"]\n");
  const Run r = run({"--config", file, "--print-config", "--keep-alive", "65"},
                    {{"CORRAL_BACKLOG", "512"}, {"CORRAL_WORKR", "1"}});
  INFO(r.out << r.err);
  CHECK(r.outcome.exit_code == kExitOk);
  CHECK_FALSE(r.outcome.config.has_value());
  CHECK_THAT(r.err, Catch::Contains("corral: warning: CORRAL_WORKR is set"));
  const auto line = [&](const std::string& key) {
    std::istringstream lines(r.out);
    for (std::string text; std::getline(lines, text);) {
      if (text.starts_with(key + " = ") || text.starts_with("# " + key + " ")) return text;
    }
    FAIL("no line for " << key);
    return std::string();
  };
  CHECK_THAT(line("app"), Catch::Matches("app = \"main:app\" +# file " + file + ":1"));
  CHECK_THAT(line("workers"), Catch::Matches("workers = 3 +# file " + file + ":2"));
  CHECK_THAT(line("graceful-timeout"),
             Catch::Matches("graceful-timeout = \"45s\" +# file " + file + ":3"));
  CHECK_THAT(line("header"), Catch::Matches("header = \\[\"X-A: 1\"\\] +# file " + file + ":4"));
  CHECK_THAT(line("backlog"), Catch::Matches("backlog = 512 +# environment CORRAL_BACKLOG"));
  CHECK_THAT(line("timeout-keep-alive"),
             Catch::Matches("timeout-keep-alive = \"1m5s\" +# command line --keep-alive"));
  CHECK_THAT(line("timeout"), Catch::Matches("timeout = \"30s\" +# default"));
  CHECK_THAT(line("bind"), Catch::Matches("bind = \\[\"127.0.0.1:8000\"\\] +# default"));
  CHECK_THAT(line("ws"), Catch::Matches("# ws is not set +# default"));
  CHECK_THAT(line("config"), Catch::Matches("# config = \".*\" +# command line --config"));
  // Every option of the table that is a setting is listed, once.
  for (const OptionInfo& option : optionTable()) {
    if (!option.in_environment && !option.in_file) continue;
    CAPTURE(option.name);
    line(spell(option.name, Spelling::Key));
  }
  CHECK(r.out.find("print-config") == std::string::npos);
  SECTION("what it prints is a config file that gives the same settings") {
    const Run again = run({"--config", write(r.out, "printed.toml")}, {{"CORRAL_BACKLOG", "512"}});
    const Run c_run = again;
    const Config& c = c_run.config();
    CHECK(c.app == "main:app");
    CHECK(c.workers == 3);
    CHECK(c.graceful_timeout == 45s);
    CHECK(c.timeout_keep_alive == 65s);
    CHECK(c.headers == std::vector<ResponseHeader>{{"X-A", "1"}});
  }
}

TEST_CASE_METHOD(FileFixture, "Options --print-config --json", "[unit][config]") {
  const std::string cert = write("cert", "cert.pem");
  const Run r = run({"--print-config", "--json", "-w", "2", "--ssl-certfile", cert,
                     "--ssl-keyfile-password", "hunter2", "main:app"},
                    {{"WEB_CONCURRENCY", "9"}, {"CORRAL_TIMEOUT", "5s"}, {"UVICORN_PORT", "1"}});
  INFO(r.out << r.err);
  CHECK(r.outcome.exit_code == kExitOk);
  const auto report = boost::json::parse(r.out).as_object();
  CHECK(report.at("corral") == CORRAL_VERSION);
  CHECK(report.at("config_file").is_null());
  const auto& settings = report.at("settings").as_object();
  const auto setting = [&](const char* key) { return settings.at(key).as_object(); };
  CHECK(setting("workers").at("value") == 2);
  CHECK(setting("workers").at("origin") == "command line");
  CHECK(setting("workers").at("source") == "--workers");
  CHECK(setting("timeout").at("value") == "5s");
  CHECK(setting("timeout").at("origin") == "environment");
  CHECK(setting("timeout").at("source") == "CORRAL_TIMEOUT");
  CHECK(setting("backlog").at("origin") == "default");
  CHECK(setting("backlog").at("source").is_null());
  CHECK(setting("ws").at("value").is_null());
  CHECK(setting("ssl-keyfile-password").at("value") == "********");
  CHECK(r.out.find("hunter2") == std::string::npos);
  const auto& warnings = report.at("warnings").as_array();
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(std::string(warnings[0].as_string()), Catch::StartsWith("UVICORN_PORT is set"));
  SECTION("WEB_CONCURRENCY, when it is what decided") {
    const Run w = run({"--print-config", "--json", "main:app"}, {{"WEB_CONCURRENCY", "9"}});
    const auto workers = boost::json::parse(w.out).at("settings").at("workers").as_object();
    CHECK(workers.at("value") == 9);
    CHECK(workers.at("origin") == "environment");
    CHECK(workers.at("source") == "WEB_CONCURRENCY");
  }
  SECTION("--json alone is a mistake") {
    CHECK_THAT(run({"--json", "main:app"}).error(),
               Catch::Contains("--json goes with --print-config"));
  }
}

TEST_CASE_METHOD(FileFixture, "Option --check-config asks the caller to check, and starts nothing",
                 "[unit][config]") {
  const Run r = run({"--check-config", "main:app"});
  CHECK(r.config().app == "main:app");
  CHECK(r.outcome.mode == ParseOutcome::Mode::Check);
  CHECK(run({"main:app"}).outcome.mode == ParseOutcome::Mode::Run);
  // Bad settings fail before any check.
  CHECK_THAT(run({"--check-config", "-w", "x", "main:app"}).error(),
             Catch::Contains("--workers 'x'"));
}

TEST_CASE("Every synonym names an option of the table, and none is one", "[unit][config]") {
  for (const Synonym& synonym : synonyms()) {
    CAPTURE(synonym.names);
    CHECK(findOption(synonymName(synonym)) == nullptr);
    if (!synonym.target.empty()) CHECK(findOption(synonym.target) != nullptr);
  }
}

}  // namespace corral

#include "runtime/probe.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>

#include "config/config_error.hpp"
#include "config/exit_codes.hpp"

using corral::BindAddress;
using corral::ConfigError;
using corral::ProbeRequest;

namespace {

using Args = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

ProbeRequest parse(const Args& args, const Env& env = {}) {
  return corral::parseProbeArgs(args, [&](const std::string& name) -> std::optional<std::string> {
    const auto found = env.find(name);
    if (found == env.end()) return std::nullopt;
    return found->second;
  });
}

std::string errorOf(const Args& args, const Env& env = {}) {
  try {
    parse(args, env);
  } catch (const ConfigError& error) {
    return error.what();
  }
  FAIL("no error");
  return "";
}

// A listening TCP socket on a free loopback port that never accepts; closed on destruction.
class SilentServer {
 public:
  SilentServer() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~SilentServer() { close(); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;

  std::uint16_t port() const { return port_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("probe asks what corral would serve on, with the same environment") {
  SECTION("by default /ready on 127.0.0.1:8081, within 1 s") {
    const ProbeRequest request = parse({});
    CHECK(request.address.str() == "127.0.0.1:8081");
    CHECK(request.path == "/ready");
    CHECK(request.timeout == std::chrono::seconds(1));
  }
  SECTION("CORRAL_ADMIN_BIND, as corral reads it") {
    CHECK(parse({}, {{"CORRAL_ADMIN_BIND", "127.0.0.1:9000"}}).address.str() == "127.0.0.1:9000");
    CHECK(parse({}, {{"CORRAL_ADMIN_BIND", "unix:/run/a.sock"}}).address.str() ==
          "unix:/run/a.sock");
    CHECK(parse({}, {{"CORRAL_ADMIN_BIND", ""}}).address.str() == "127.0.0.1:8081");
  }
  SECTION("without CORRAL_ADMIN_BIND, corral's own rule: port 8081 on the first bind's host") {
    CHECK(parse({}, {{"CORRAL_BIND", "10.1.2.3:8000"}}).address.str() == "10.1.2.3:8081");
    CHECK(parse({}, {{"CORRAL_BIND", "0.0.0.0:8000"}}).address.str() == "127.0.0.1:8081");
    CHECK(parse({}, {{"PORT", "5000"}}).address.str() == "127.0.0.1:8081");
    CHECK(parse({}, {{"CORRAL_BIND", "unix:/run/app.sock"}}).address.str() == "127.0.0.1:8081");
    CHECK_THROWS_WITH(parse({}, {{"CORRAL_ADMIN_BIND", "none"}}),
                      Catch::Contains("the admin server is off"));
  }
  SECTION("a wildcard address is asked on loopback") {
    CHECK(parse({}, {{"CORRAL_ADMIN_BIND", "0.0.0.0:8081"}}).address.str() == "127.0.0.1:8081");
    CHECK(parse({"--admin", "[::]:9"}).address.str() == "[::1]:9");
  }
  SECTION("--admin, or --admin-bind as corral spells it, wins over the environment") {
    const Env env{{"CORRAL_ADMIN_BIND", "127.0.0.1:9000"}};
    CHECK(parse({"--admin", "127.0.0.1:7"}, env).address.str() == "127.0.0.1:7");
    CHECK(parse({"--admin=127.0.0.1:7"}, env).address.str() == "127.0.0.1:7");
    CHECK(parse({"--admin-bind", "unix:/a"}, env).address.str() == "unix:/a");
  }
  SECTION("the endpoint and the timeout") {
    CHECK(parse({"healthz"}).path == "/healthz");
    CHECK(parse({"ready", "--timeout", "250ms"}).timeout == std::chrono::milliseconds(250));
    CHECK(parse({"--timeout=3"}).timeout == std::chrono::seconds(3));
  }
}

TEST_CASE("probe's bad input is one line naming it") {
  CHECK(errorOf({"--admin", "none"}) ==
        "--admin 'none': the admin server is off, so there is nothing to probe");
  CHECK(errorOf({}, {{"CORRAL_ADMIN_BIND", "none"}}) ==
        "CORRAL_ADMIN_BIND='none': the admin server is off, so there is nothing to probe");
  CHECK(errorOf({"--admin", "fd://3"}) == "--admin 'fd://3': expected HOST:PORT or unix:PATH");
  CHECK(errorOf({"--admin-bind", "x:y"}).starts_with("--admin-bind 'x:y': "));
  CHECK(errorOf({"--admin"}) == "--admin needs a value");
  CHECK(errorOf({"--admin", "--timeout", "1"}) == "--admin needs a value");
  CHECK(errorOf({"live"}) == "unknown endpoint 'live'; expected ready or healthz");
  CHECK(errorOf({"ready", "healthz"}) ==
        "unexpected argument 'healthz' after 'ready'; probe one endpoint at a time");
  CHECK(errorOf({"--timeout", "0"}) == "--timeout '0': must be > 0");
  CHECK(errorOf({"--timeout", "soon"}).starts_with("--timeout 'soon': "));
  CHECK(errorOf({"-v"}) == "unknown option '-v'; run 'corral probe --help'");
}

TEST_CASE("probe judges the admin server's answer") {
  const ProbeRequest ready = parse({});
  const ProbeRequest healthz = parse({"healthz"});
  SECTION("200 passes") {
    const auto outcome =
        corral::judgeAnswer(ready, "HTTP/1.1 200 OK\r\n\r\n{\"state\":\"running\"}");
    CHECK(outcome.exit_code == corral::kExitOk);
    CHECK(outcome.line == "/ready 200 at 127.0.0.1:8081");
  }
  SECTION("anything else fails with the reason corral gave") {
    const auto draining = corral::judgeAnswer(
        ready,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n"
        "{\"state\":\"draining\",\"reason\":\"draining: SIGTERM\"}\n");
    CHECK(draining.exit_code == corral::kExitFailure);
    CHECK(draining.line == "/ready 503 at 127.0.0.1:8081: draining: SIGTERM");
    const auto stopped = corral::judgeAnswer(
        healthz, "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"state\":\"stopped\"}");
    CHECK(stopped.line == "/healthz 503 at 127.0.0.1:8081: stopped");
    const auto missing =
        corral::judgeAnswer(ready, "HTTP/1.1 404 Not Found\r\n\r\nnot found: try\n");
    CHECK(missing.line == "/ready 404 at 127.0.0.1:8081: not found: try");
  }
  SECTION("something that is not HTTP") {
    const auto outcome = corral::judgeAnswer(ready, "SSH-2.0-OpenSSH_9.2\r\n");
    CHECK(outcome.exit_code == corral::kExitFailure);
    CHECK(outcome.line == "not an HTTP answer at 127.0.0.1:8081: 'SSH-2.0-OpenSSH_9.2'");
  }
}

TEST_CASE("probe fails in one line when no answer comes") {
  SilentServer server;
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  SECTION("a server that never answers: the timeout") {
    const auto outcome = corral::probe(parse({"--admin", address, "--timeout", "200ms"}));
    CHECK(outcome.exit_code == corral::kExitFailure);
    CHECK(outcome.line == "no answer within 200ms at " + address + " (waiting for the answer)");
  }
  SECTION("nothing listening") {
    server.close();
    const auto outcome = corral::probe(parse({"--admin", address}));
    CHECK(outcome.exit_code == corral::kExitFailure);
    CHECK(outcome.line == "connection refused at " + address);
  }
  SECTION("no unix socket there") {
    const auto outcome = corral::probe(parse({"--admin", "unix:/nonexistent/admin.sock"}));
    CHECK(outcome.line == "no such file or directory at unix:/nonexistent/admin.sock");
  }
}

#include "config/bind_address.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "config/config.hpp"

using corral::BindAddress;
using corral::ConfigError;
using corral::parseBindAddress;
using Kind = corral::BindAddress::Kind;

namespace {

BindAddress tcp(std::string host, std::uint16_t port) {
  BindAddress address;
  address.host = std::move(host);
  address.port = port;
  return address;
}

BindAddress unixSocket(std::string path) {
  BindAddress address;
  address.kind = Kind::Unix;
  address.path = std::move(path);
  return address;
}

BindAddress inheritedFd(int fd) {
  BindAddress address;
  address.kind = Kind::Fd;
  address.fd = fd;
  return address;
}

}  // namespace

TEST_CASE("parseBindAddress reads every address form", "[unit][bind]") {
  const auto [text, expected, canonical] = GENERATE(table<std::string, BindAddress, std::string>({
      {"127.0.0.1:8000", tcp("127.0.0.1", 8000), "127.0.0.1:8000"},
      {"0.0.0.0:80", tcp("0.0.0.0", 80), "0.0.0.0:80"},
      {"10.1.2.3", tcp("10.1.2.3", 8000), "10.1.2.3:8000"},
      {"127.0.0.1:0", tcp("127.0.0.1", 0), "127.0.0.1:0"},
      {"127.0.0.1:65535", tcp("127.0.0.1", 65535), "127.0.0.1:65535"},
      {"127.0.0.1:08080", tcp("127.0.0.1", 8080), "127.0.0.1:8080"},
      {"localhost", tcp("127.0.0.1", 8000), "127.0.0.1:8000"},
      {"localhost:9000", tcp("127.0.0.1", 9000), "127.0.0.1:9000"},
      {"tcp://127.0.0.1:8001", tcp("127.0.0.1", 8001), "127.0.0.1:8001"},
      {"[::1]:8000", tcp("::1", 8000), "[::1]:8000"},
      {"[::1]", tcp("::1", 8000), "[::1]:8000"},
      {"[::]:80", tcp("::", 80), "[::]:80"},
      {"[0:0:0:0:0:0:0:1]:8000", tcp("::1", 8000), "[::1]:8000"},
      {"[2001:DB8::1]:443", tcp("2001:db8::1", 443), "[2001:db8::1]:443"},
      {"[::ffff:127.0.0.1]:8000", tcp("::ffff:127.0.0.1", 8000), "[::ffff:127.0.0.1]:8000"},
      {"unix:/run/app.sock", unixSocket("/run/app.sock"), "unix:/run/app.sock"},
      {"unix:///run/app.sock", unixSocket("/run/app.sock"), "unix:/run/app.sock"},
      {"unix://app.sock", unixSocket("app.sock"), "unix:app.sock"},
      {"unix:app.sock", unixSocket("app.sock"), "unix:app.sock"},
      {"fd://3", inheritedFd(3), "fd://3"},
      {"fd://42", inheritedFd(42), "fd://42"},
  }));
  CAPTURE(text);
  const BindAddress address = parseBindAddress(text, "--bind");
  CHECK(address.kind == expected.kind);
  CHECK(address.host == expected.host);
  CHECK(address.port == expected.port);
  CHECK(address.path == expected.path);
  CHECK(address.fd == expected.fd);
  CHECK(address.str() == canonical);
  // str() is accepted back as input and denotes the same address.
  CHECK(parseBindAddress(address.str(), "--bind") == address);
}

TEST_CASE("parseBindAddress rejects bad addresses with a reason", "[unit][bind]") {
  const auto [text, reason] = GENERATE(table<std::string, std::string>({
      {"", "expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"},
      {"http://127.0.0.1:80", "expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"},
      {"example.com:80", "'example.com' is not a numeric IP address"},
      {"example.com", "'example.com' is not a numeric IP address"},
      {"256.0.0.1:80", "'256.0.0.1' is not a numeric IP address"},
      {"1.2.3:80", "'1.2.3' is not a numeric IP address"},
      {":8000", "missing host; use 0.0.0.0:PORT for all interfaces"},
      {"127.0.0.1:", "port '' must be a number from 0 to 65535"},
      {"127.0.0.1:65536", "port '65536' must be a number from 0 to 65535"},
      {"127.0.0.1:-1", "port '-1' must be a number"},
      {"127.0.0.1:http", "port 'http' must be a number"},
      {"127.0.0.1:80 ", "port '80 ' must be a number"},
      {"127.0.0.1:99999999999999999999", "port '99999999999999999999' must be a number"},
      {"::1", "put an IPv6 address in brackets, e.g. [::1]:8000"},
      {"::1:8000", "put an IPv6 address in brackets"},
      {"[::1", "missing ']' after the IPv6 address"},
      {"[::1]8000", "expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"},
      {"[::1]:", "port '' must be a number"},
      {"[::1]:99999", "port '99999' must be a number"},
      {"[example]:80", "'example' is not a numeric IPv6 address"},
      {"[127.0.0.1]:80", "'127.0.0.1' is not a numeric IPv6 address"},
      {"[]:80", "'' is not a numeric IPv6 address"},
      {"unix:", "missing socket path after 'unix:'"},
      {"unix://", "missing socket path after 'unix:'"},
      {"unix:/" + std::string(107, 'a'), "socket path is 108 bytes; the limit is 107"},
      {"fd://", "expected fd://N with N a file descriptor number"},
      {"fd://abc", "expected fd://N"},
      {"fd://-1", "expected fd://N"},
      {"fd://3x", "expected fd://N"},
      {"fd://99999999999", "expected fd://N"},
      {"fd://2", "file descriptors 0-2 are stdin, stdout and stderr; use 3 or above"},
      {"fd://0", "file descriptors 0-2"},
  }));
  CAPTURE(text);
  try {
    parseBindAddress(text, "--bind");
    FAIL("accepted '" << text << "'");
  } catch (const ConfigError& error) {
    CHECK_THAT(error.what(), Catch::StartsWith("--bind '" + text + "': "));
    CHECK_THAT(error.what(), Catch::Contains(reason));
  }
}

TEST_CASE("parseBindAddress accepts unix paths up to the sun_path limit", "[unit][bind]") {
  const std::string path = "/" + std::string(106, 'a');
  CHECK(parseBindAddress("unix:" + path, "--bind").path == path);
}

TEST_CASE("parseBindAddress messages name the flag or the variable", "[unit][bind]") {
  CHECK_THROWS_WITH(parseBindAddress("example.com:80", "--bind"),
                    "--bind 'example.com:80': 'example.com' is not a numeric IP address; use "
                    "e.g. 0.0.0.0, 127.0.0.1, localhost or [::]");
  CHECK_THROWS_WITH(parseBindAddress("127.0.0.1:x", "CORRAL_BIND"),
                    "CORRAL_BIND='127.0.0.1:x': port 'x' must be a number from 0 to 65535");
  CHECK_THROWS_WITH(parseBindAddress("a\tb", "CORRAL_ADMIN_BIND"),
                    Catch::StartsWith("CORRAL_ADMIN_BIND='a\\x09b': "));
}

TEST_CASE("BindAddress equality compares every field", "[unit][bind]") {
  CHECK(tcp("127.0.0.1", 8000) == tcp("127.0.0.1", 8000));
  CHECK_FALSE(tcp("127.0.0.1", 8000) == tcp("127.0.0.1", 8001));
  CHECK_FALSE(tcp("127.0.0.1", 8000) == tcp("0.0.0.0", 8000));
  CHECK_FALSE(unixSocket("/a") == unixSocket("/b"));
  CHECK_FALSE(inheritedFd(3) == inheritedFd(4));
}

TEST_CASE("A bind address error stays on one line, whatever part of it is quoted", "[unit][bind]") {
  // Found by tests/fuzz/fuzz_values: the host part was quoted raw in the reason.
  try {
    (void)corral::parseBindAddress("tcpp0.\n.2:8", "--bind");
    FAIL("no ConfigError");
  } catch (const corral::ConfigError& e) {
    CHECK(std::string_view(e.what()).find('\n') == std::string_view::npos);
    CHECK_THAT(e.what(), Catch::Contains("'tcpp0.\\x0a.2' is not a numeric IP address"));
  }
}

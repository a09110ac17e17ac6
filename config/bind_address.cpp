#include "config/bind_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <array>
#include <climits>
#include <optional>

#include "config/config.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

constexpr std::uint16_t kDefaultPort = 8000;  // gunicorn's, for a bare HOST
constexpr std::string_view kForms = "expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N";
// sun_path must hold the terminating NUL as well.
constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;

// Parsing errors carry the whole input, not the fragment that failed, so the user sees what
// they typed.
class Failer {
 public:
  Failer(std::string_view text, std::string_view what) : text_(text), what_(what) {}
  [[noreturn]] void operator()(std::string_view reason) const { failInput(what_, text_, reason); }

 private:
  std::string_view text_;
  std::string_view what_;
};

std::uint16_t parsePort(std::string_view text, const Failer& fail) {
  const auto port = parseInt<unsigned>(text);
  if (!port || *port > 65535) {
    fail("port '" + std::string(text) + "' must be a number from 0 to 65535");
  }
  return static_cast<std::uint16_t>(*port);
}

// Canonical text lets duplicate detection see that "::1" and "0:0::1" are one address.
std::optional<std::string> canonicalIp(int family, const std::string& host) {
  std::array<unsigned char, sizeof(in6_addr)> binary{};
  if (inet_pton(family, host.c_str(), binary.data()) != 1) return std::nullopt;
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (inet_ntop(family, binary.data(), text.data(), text.size()) == nullptr) return std::nullopt;
  return std::string(text.data());
}

std::string ipv4Host(std::string_view host, const Failer& fail) {
  if (host == "localhost") return "127.0.0.1";
  if (host.empty()) fail("missing host; use 0.0.0.0:PORT for all interfaces");
  if (host.find(':') != std::string_view::npos) {
    fail("put an IPv6 address in brackets, e.g. [::1]:8000");
  }
  const auto canonical = canonicalIp(AF_INET, std::string(host));
  if (!canonical) {
    // Names are not resolved: a static binary cannot rely on NSS, and a bind address that
    // depends on DNS at start-up is a trap.
    fail("'" + std::string(host) +
         "' is not a numeric IP address; use e.g. 0.0.0.0, 127.0.0.1, localhost or [::]");
  }
  return *canonical;
}

BindAddress parseBracketed(std::string_view rest, const Failer& fail) {
  const auto close = rest.find(']');
  if (close == std::string_view::npos) fail("missing ']' after the IPv6 address");
  const std::string host(rest.substr(1, close - 1));
  const auto canonical = canonicalIp(AF_INET6, host);
  if (!canonical) fail("'" + host + "' is not a numeric IPv6 address");
  BindAddress address;
  address.host = *canonical;
  const auto after = rest.substr(close + 1);
  if (after.empty()) {
    address.port = kDefaultPort;
  } else if (after.front() == ':') {
    address.port = parsePort(after.substr(1), fail);
  } else {
    fail(kForms);
  }
  return address;
}

BindAddress parseTcp(std::string_view rest, const Failer& fail) {
  if (!rest.empty() && rest.front() == '[') return parseBracketed(rest, fail);
  BindAddress address;
  const auto colon = rest.rfind(':');
  const bool several_colons = colon != std::string_view::npos && rest.find(':') != colon;
  if (colon == std::string_view::npos || several_colons) {
    address.host = ipv4Host(rest, fail);
    address.port = kDefaultPort;
  } else {
    address.host = ipv4Host(rest.substr(0, colon), fail);
    address.port = parsePort(rest.substr(colon + 1), fail);
  }
  return address;
}

BindAddress parseUnix(std::string_view path, const Failer& fail) {
  if (path.empty()) fail("missing socket path after 'unix:'");
  if (path.size() > kMaxUnixPath) {
    fail("socket path is " + std::to_string(path.size()) + " bytes; the limit is " +
         std::to_string(kMaxUnixPath));
  }
  BindAddress address;
  address.kind = BindAddress::Kind::Unix;
  address.path = std::string(path);
  return address;
}

BindAddress parseFd(std::string_view number, const Failer& fail) {
  const auto fd = parseInt<unsigned>(number);
  if (!fd || *fd > INT_MAX) fail("expected fd://N with N a file descriptor number");
  // 0-2 are the workers' stdio; a listener there would be closed or clobbered.
  if (*fd < 3) fail("file descriptors 0-2 are stdin, stdout and stderr; use 3 or above");
  BindAddress address;
  address.kind = BindAddress::Kind::Fd;
  address.fd = static_cast<int>(*fd);
  return address;
}

}  // namespace

std::string BindAddress::str() const {
  switch (kind) {
    case Kind::Tcp:
      if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
      return host + ":" + std::to_string(port);
    case Kind::Unix: return "unix:" + path;
    case Kind::Fd: return "fd://" + std::to_string(fd);
  }
  return {};
}

BindAddress parseBindAddress(std::string_view text, std::string_view what) {
  const Failer fail(text, what);
  if (text.empty()) fail(kForms);
  // unix:// before unix: so that "unix:///run/app.sock" keeps a single leading slash.
  if (text.starts_with("unix://")) return parseUnix(text.substr(7), fail);
  if (text.starts_with("unix:")) return parseUnix(text.substr(5), fail);
  if (text.starts_with("fd://")) return parseFd(text.substr(5), fail);
  if (text.starts_with("tcp://")) return parseTcp(text.substr(6), fail);
  if (text.find("://") != std::string_view::npos) fail(kForms);
  return parseTcp(text, fail);
}

}  // namespace corral

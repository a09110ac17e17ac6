#include "config/binds.hpp"

#include <unistd.h>

#include <cstdint>
#include <string_view>

#include "config/config_error.hpp"
#include "config/migration.hpp"
#include "config/option_values.hpp"
#include "config/socket_activation.hpp"

namespace corral {
namespace {

constexpr std::uint16_t kDefaultAdminPort = 8081;

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

// Port 8081 on the host of the first bind: `-b 0.0.0.0:8000` serves the probes where the
// kubelet can reach them, and a loopback app keeps a loopback admin port. Without a TCP bind
// (a unix socket, an inherited one) nothing says which interface is meant: loopback. The
// default must not take an address the user asked to serve the app on.
BindAddress defaultAdminBind(const std::vector<BindAddress>& binds) {
  BindAddress address;
  address.host = "127.0.0.1";
  address.port = kDefaultAdminPort;
  if (!binds.empty() && binds.front().kind == BindAddress::Kind::Tcp) {
    address.host = binds.front().host;
  }
  for (const auto& bind : binds) {
    if (collides(bind, address)) {
      throw ConfigError("bind address " + bind.str() + " is also the admin server's default; " +
                        "pass --admin-bind with another address or 'none'");
    }
  }
  return address;
}

}  // namespace

std::vector<Input> bindInputs(const Inputs& inputs) {
  if (inputs.prefersFile()) {
    auto in_file = inputs.fromFile("--bind");
    if (!in_file.empty()) return in_file;
  }
  auto given = inputs.all("--bind");
  for (auto& address : synonymBinds(inputs.commandLine())) given.push_back(std::move(address));
  if (!given.empty()) return given;
  if (const auto listed = inputs.variable("CORRAL_BIND")) {
    return splitInput(*listed, ", \t\n\r\f\v", "expected addresses separated by commas or spaces");
  }
  return inputs.fromFile("--bind");
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

std::optional<BindAddress> adminAddressFromEnvironment(const EnvLookup& env) {
  const char* argv[] = {"corral"};
  const CommandLine line = readCommandLine(1, argv);
  const Inputs inputs(line, env);
  auto address = parseAdminBind(inputs, parseBinds(inputs));
  if (address && address->kind == BindAddress::Kind::Tcp) {
    if (address->host == "0.0.0.0") address->host = "127.0.0.1";
    if (address->host == "::") address->host = "::1";
  }
  return address;
}

}  // namespace corral

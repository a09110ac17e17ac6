#include "runtime/probe.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <iostream>
#include <memory>

#include "config/binds.hpp"
#include "config/config_error.hpp"
#include "config/exit_codes.hpp"
#include "runtime/commands.hpp"
#include "util/text.hpp"

namespace corral {
namespace {
namespace asio = boost::asio;

constexpr std::size_t kMaxResponse = std::size_t{64} * 1024;

// A server bound to every address answers on loopback too; the probe runs beside it.
BindAddress connectable(BindAddress address) {
  if (address.kind == BindAddress::Kind::Tcp && address.host == "0.0.0.0") {
    address.host = "127.0.0.1";
  } else if (address.kind == BindAddress::Kind::Tcp && address.host == "::") {
    address.host = "::1";
  }
  return address;
}

BindAddress parseAdmin(std::string_view source, const std::string& text) {
  if (lower(text) == "none") {
    failInput(source, text, "the admin server is off, so there is nothing to probe");
  }
  const BindAddress address = parseBindAddress(text, source);
  if (address.kind == BindAddress::Kind::Fd) {
    failInput(source, text, "expected HOST:PORT or unix:PATH");
  }
  return connectable(address);
}

// "--admin=ADDR" or "--admin ADDR": the value, with `i` moved past it; nullopt if `args[i]` is
// not `name`.
std::optional<std::string> valueOf(const std::vector<std::string>& args, std::size_t& i,
                                   std::string_view name) {
  const std::string& arg = args[i];
  if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
    return arg.substr(name.size() + 1);
  }
  if (arg != name) return std::nullopt;
  if (i + 1 == args.size() || args[i + 1].starts_with("--")) {
    throw ConfigError(std::string(name) + " needs a value");
  }
  return args[++i];
}

// The reason a non-200 answer gives: /ready's "reason", /healthz's "state", else the body's
// first line.
std::string reasonIn(std::string_view body) {
  boost::system::error_code error;
  const boost::json::value value = boost::json::parse(body, error);
  if (!error && value.is_object()) {
    const auto& object = value.get_object();
    for (const std::string_view key : {"reason", "state"}) {
      if (const auto* field = object.if_contains(key); field && field->is_string()) {
        return printable(std::string_view(field->get_string()));
      }
    }
  }
  return printable(trim(body.substr(0, body.find('\n'))));
}

// What one exchange has got to; the handlers fill it in.
struct Exchange {
  std::string response;
  boost::system::error_code error;
  std::string_view stage = "connecting";
  bool done = false;
};

template <typename Protocol>
void converse(asio::io_context& io, const typename Protocol::endpoint& endpoint,
              const std::string& request, Exchange& exchange) {
  using ErrorCode = boost::system::error_code;
  auto socket = std::make_shared<typename Protocol::socket>(io);
  const auto finish = [&exchange](const ErrorCode& ec) {
    exchange.error = ec == asio::error::eof ? ErrorCode{} : ec;
    exchange.done = true;
  };
  const auto read = [socket, &exchange, finish](const ErrorCode& write_error, std::size_t) {
    if (write_error) return finish(write_error);
    asio::async_read(
        *socket, asio::dynamic_buffer(exchange.response, kMaxResponse),
        [socket, finish](const ErrorCode& read_error, std::size_t) { finish(read_error); });
  };
  socket->async_connect(
      endpoint, [socket, &request, &exchange, finish, read](const ErrorCode& connect_error) {
        if (connect_error) return finish(connect_error);
        exchange.stage = "waiting for the answer";
        asio::async_write(*socket, asio::buffer(request), read);
      });
}

}  // namespace

ProbeRequest parseProbeArgs(const std::vector<std::string>& args, const EnvLookup& env) {
  ProbeRequest request;
  std::optional<std::string> admin;
  std::string_view admin_source = "--admin";
  std::optional<std::string> endpoint;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (auto value = valueOf(args, i, "--admin")) {
      admin = std::move(value);
      admin_source = "--admin";
    } else if (auto alias = valueOf(args, i, "--admin-bind")) {
      admin = std::move(alias);
      admin_source = "--admin-bind";
    } else if (auto timeout = valueOf(args, i, "--timeout")) {
      request.timeout = parseDuration(*timeout, "--timeout");
      if (request.timeout == Duration::zero()) failInput("--timeout", *timeout, "must be > 0");
    } else if (args[i].starts_with("-")) {
      throw ConfigError("unknown option '" + printable(args[i]) + "'; run 'corral probe --help'");
    } else if (endpoint) {
      throw ConfigError("unexpected argument '" + printable(args[i]) + "' after '" + *endpoint +
                        "'; probe one endpoint at a time");
    } else if (args[i] == "ready" || args[i] == "healthz") {
      endpoint = args[i];
    } else {
      throw ConfigError("unknown endpoint '" + printable(args[i]) + "'; expected ready or healthz");
    }
  }
  request.path = "/" + endpoint.value_or("ready");
  if (admin) {
    request.address = parseAdmin(admin_source, *admin);
  } else if (auto address = adminAddressFromEnvironment(env)) {
    request.address = *address;
  } else {
    failInput("CORRAL_ADMIN_BIND", "none", "the admin server is off, so there is nothing to probe");
  }
  return request;
}

ProbeOutcome judgeAnswer(const ProbeRequest& request, std::string_view response) {
  const std::string where = " at " + request.address.str();
  const std::string_view status_line = response.substr(0, response.find("\r\n"));
  const auto words_in = words(status_line);
  const auto status = words_in.size() >= 2 && words_in[0].starts_with("HTTP/")
                          ? parseInt<int>(words_in[1])
                          : std::nullopt;
  if (!status) {
    return {kExitFailure, "not an HTTP answer" + where + ": '" + printable(status_line) + "'"};
  }
  const std::string head = request.path + " " + std::to_string(*status) + where;
  if (*status == 200) return {kExitOk, head};
  const auto body_start = response.find("\r\n\r\n");
  const std::string reason =
      body_start == std::string_view::npos ? "" : reasonIn(response.substr(body_start + 4));
  return {kExitFailure, reason.empty() ? head : head + ": " + reason};
}

ProbeOutcome probe(const ProbeRequest& request) {
  const std::string message = "GET " + request.path +
                              " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: corral-probe\r\n"
                              "Connection: close\r\n\r\n";
  Exchange exchange;
  asio::io_context io;
  const BindAddress& address = request.address;
  if (address.kind == BindAddress::Kind::Unix) {
    converse<asio::local::stream_protocol>(io, {address.path}, message, exchange);
  } else {
    converse<asio::ip::tcp>(io, {asio::ip::make_address(address.host), address.port}, message,
                            exchange);
  }
  io.run_for(request.timeout);
  const std::string where = " at " + address.str();
  if (!exchange.done) {
    return {kExitFailure, "no answer within " + formatDuration(request.timeout) + where + " (" +
                              std::string(exchange.stage) + ")"};
  }
  if (exchange.error && exchange.response.empty()) {
    return {kExitFailure, lower(exchange.error.message()) + where};
  }
  return judgeAnswer(request, exchange.response);
}

int runProbe(const std::vector<std::string>& args) {
  ProbeRequest request;
  try {
    request = parseProbeArgs(args, processEnvironment());
  } catch (const ConfigError& error) {
    return usageError("probe", error.what());
  }
  ProbeOutcome outcome;
  try {
    outcome = probe(request);
  } catch (const std::exception& error) {  // no socket to be had, say
    outcome = {kExitFailure, printable(error.what())};
  }
  (outcome.exit_code == kExitOk ? std::cout : std::cerr)
      << "corral probe: " << outcome.line << '\n';
  return outcome.exit_code;
}

}  // namespace corral

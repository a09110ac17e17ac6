#include "runtime/status_command.hpp"

#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <vector>

#include "config/bind_address.hpp"
#include "config/binds.hpp"
#include "config/config_error.hpp"
#include "config/duration.hpp"
#include "config/exit_codes.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

constexpr std::string_view kUsage =
    "Usage: corral status [--admin ADDR] [--json]\n"
    "\n"
    "Shows a running corral and its workers, from GET /status on its admin port.\n"
    "\n"
    "  --admin ADDR   the admin address: HOST:PORT or unix:PATH [$CORRAL_ADMIN_BIND, else\n"
    "                 port 8081 on $CORRAL_BIND's first host, else 127.0.0.1:8081]\n"
    "  --json         print the JSON document itself\n"
    "  -h, --help     show this help\n";

struct StatusOptions {
  std::optional<std::string> admin;  ///< --admin; else what the environment says
  bool json = false;
  bool help = false;
};

StatusOptions parseOptions(int argc, const char* const* argv) {
  StatusOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "-h" || arg == "--help") {
      options.help = true;
    } else if (arg == "--admin" && i + 1 < argc) {
      options.admin = argv[++i];
    } else if (arg.starts_with("--admin=")) {
      options.admin = std::string(arg.substr(8));
    } else if (arg == "--admin") {
      throw ConfigError("--admin needs a value: --admin HOST:PORT or unix:PATH");
    } else {
      throw ConfigError("status: unexpected argument '" + printable(arg) +
                        "'; run 'corral status --help'");
    }
  }
  return options;
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

void setTimeouts(int fd) {
  const timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);  // connect(2) too
}

// A connected socket to the admin port; throws std::runtime_error saying why not.
int connectTo(const BindAddress& address) {
  if (address.kind == BindAddress::Kind::Unix) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (address.path.size() >= sizeof sun.sun_path) throw std::runtime_error("path too long");
    std::memcpy(sun.sun_path, address.path.c_str(), address.path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::strerror(errno));
    setTimeouts(fd);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0) {
      const int error = errno;
      ::close(fd);
      throw std::runtime_error(std::strerror(error));
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error(::gai_strerror(rc));
  }
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(found);
    throw std::runtime_error(std::strerror(errno));
  }
  setTimeouts(fd);
  const int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  const int error = errno;
  ::freeaddrinfo(found);
  if (rc != 0) {
    ::close(fd);
    throw std::runtime_error(std::strerror(error));
  }
  return fd;
}

// GET /status; the body of a 200 answer. Throws std::runtime_error.
std::string fetchStatus(const BindAddress& address) {
  const Socket socket(connectTo(address));
  const std::string request = "GET /status HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n\r\n";
  if (::send(socket.fd(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    throw std::runtime_error(std::strerror(errno));
  }
  std::string answer;
  std::vector<char> buffer(std::size_t{64} * 1024);
  for (;;) {
    const ssize_t n = ::recv(socket.fd(), buffer.data(), buffer.size(), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(errno == EAGAIN ? "no answer within 5s" : std::strerror(errno));
    }
    answer.append(buffer.data(), static_cast<std::size_t>(n));
  }
  const auto head_end = answer.find("\r\n\r\n");
  if (!answer.starts_with("HTTP/1.1 ") || head_end == std::string::npos) {
    throw std::runtime_error("the answer is not HTTP; is this corral's admin port?");
  }
  if (!answer.starts_with("HTTP/1.1 200")) {
    throw std::runtime_error("answered '" + printable(answer.substr(9, answer.find('\r') - 9)) +
                             "' (a corral older than `corral status`?)");
  }
  return answer.substr(head_end + 4);
}

std::string seconds(const boost::json::value& value) {
  if (!value.is_number()) return "-";
  const double s = value.to_number<double>();
  if (s < 10) return fmt::format("{:.1f}s", s);
  return formatDuration(std::chrono::seconds(std::llround(s)));
}

std::string text(const boost::json::value& value) {
  if (value.is_string()) return std::string(value.get_string());
  if (value.is_null()) return "-";
  if (value.is_int64()) return std::to_string(value.get_int64());
  if (value.is_uint64()) return std::to_string(value.get_uint64());
  return boost::json::serialize(value);
}

const boost::json::value& member(const boost::json::object& object, std::string_view key) {
  static const boost::json::value kNull;
  const auto* found = object.if_contains(key);
  return found != nullptr ? *found : kNull;
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string renderStatusTable(const boost::json::object& status) {
  std::string out =
      fmt::format("corral {}, {}, up {}, generation {}\n", text(member(status, "version")),
                  text(member(status, "state")), seconds(member(status, "uptime_seconds")),
                  text(member(status, "generation")));
  out += fmt::format("workers: {} ({})\n", text(member(status, "workers_desired")),
                     text(member(status, "workers_reason")));
  for (const char* key : {"draining_reason", "reload_error"}) {
    if (status.contains(key)) out += fmt::format("{}: {}\n", key, text(member(status, key)));
  }
  std::vector<std::vector<std::string>> rows{{"SLOT", "PID", "GEN", "STATE", "AGE", "RESTARTS",
                                              "MEMORY", "REQUESTS", "IN FLIGHT", "HEARTBEAT",
                                              "LAST EXIT"}};
  const auto& workers = member(status, "workers");
  if (workers.is_array()) {
    for (const auto& entry : workers.get_array()) {
      if (!entry.is_object()) continue;
      const auto& w = entry.get_object();
      const auto& memory = member(w, "resident_memory_bytes");
      const auto& last = member(w, "last_exit");
      std::string last_exit = "-";
      if (last.is_object()) {
        last_exit = text(member(last.get_object(), "status")) + " (" +
                    text(member(last.get_object(), "reason")) + ")";
      }
      rows.push_back(
          {text(member(w, "slot")), text(member(w, "pid")), text(member(w, "generation")),
           text(member(w, "state")), seconds(member(w, "age_seconds")), text(member(w, "restarts")),
           memory.is_number() ? fmt::format("{:.1f}Mi", memory.to_number<double>() / (1 << 20))
                              : "-",
           text(member(w, "requests_served")), text(member(w, "requests_in_flight")),
           seconds(member(w, "heartbeat_age_seconds")), last_exit});
    }
  }
  return out + "\n" + table(rows);
}

int runStatusCommand(int argc, const char* const* argv) {
  StatusOptions options;
  BindAddress address;
  try {
    options = parseOptions(argc, argv);
    if (options.help) {
      std::cout << kUsage;
      return kExitOk;
    }
    if (options.admin) {
      address = parseBindAddress(*options.admin, "--admin");
      if (address.kind == BindAddress::Kind::Fd) {
        throw ConfigError("--admin '" + printable(*options.admin) +
                          "': expected HOST:PORT or unix:PATH");
      }
    } else if (auto from_environment = adminAddressFromEnvironment(processEnvironment())) {
      address = *from_environment;
    } else {
      throw ConfigError("CORRAL_ADMIN_BIND is 'none': the admin server is off; pass --admin");
    }
  } catch (const ConfigError& error) {
    std::cerr << "corral: error: " << error.what() << '\n';
    return kExitUsage;
  }
  try {
    const std::string body = fetchStatus(address);
    if (options.json) {
      std::cout << body;
      return kExitOk;
    }
    std::cout << renderStatusTable(boost::json::parse(body).as_object());
    return kExitOk;
  } catch (const std::exception& error) {
    std::cerr << "corral: error: status from " << address.str() << ": " << printable(error.what())
              << '\n';
    return kExitFailure;
  }
}

}  // namespace corral

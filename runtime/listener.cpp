#include "runtime/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

namespace corral {
namespace {

[[noreturn]] void fail(const BindAddress& address, int err) {
  std::string what = "cannot listen on " + address.str() + ": " + std::strerror(err);
  switch (err) {
    case EADDRINUSE:
      what += "; another process holds it (see `ss -ltnp`): stop it or pass another --bind";
      break;
    case EACCES:
    case EPERM:
      what += address.kind == BindAddress::Kind::Unix
                  ? "; check the permissions of the socket's directory or choose another path"
                  : "; ports below 1024 need root or CAP_NET_BIND_SERVICE: run as root (workers "
                    "can still drop privileges) or use a port >= 1024";
      break;
    case EADDRNOTAVAIL:
      what += "; no interface of this machine has that address: use 0.0.0.0 or a local address";
      break;
    default: break;
  }
  throw StartupError(what);
}

void setOption(int fd, int level, int name, int value) {
  ::setsockopt(fd, level, name, &value, sizeof value);
}

// Where a listening socket really is: the kernel's port when 0 was asked, and the address of
// a socket inherited as fd://N or from systemd.
std::string socketUrl(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_UNIX) {
    const auto* sun = reinterpret_cast<const sockaddr_un*>(&ss);
    return "unix:" + std::string(sun->sun_path);
  }
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "http://[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
  return "http://" + std::string(host) + ":" + std::to_string(ntohs(in4->sin_port));
}

int bindTcp(const BindAddress& address, int backlog) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(address.port);
    len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, address.host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(address.port);
    len = sizeof(sockaddr_in6);
  } else {
    fail(address, EINVAL);
  }
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) fail(address, errno);
  setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  // Linux copies TCP_NODELAY from the listener to each connection it accepts. Set here, it holds
  // whatever the worker does: asyncio sets it only on sockets it knows to be TCP, and uvicorn's
  // own fd= handling labels every inherited socket AF_UNIX.
  setOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    fail(address, err);
  }
  return fd;
}

// A socket file left by a previous run is replaced; any other file is the user's, and kept.
void removeStaleSocket(const BindAddress& address) {
  struct stat st {};
  if (::lstat(address.path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) {
    throw StartupError("cannot listen on " + address.str() +
                       ": the path exists and is not a socket; remove it or choose another path");
  }
  ::unlink(address.path.c_str());
}

int bindUnix(const BindAddress& address, int backlog) {
  sockaddr_un sun{};
  if (address.path.size() >= sizeof sun.sun_path) {
    throw StartupError("cannot listen on " + address.str() + ": the path is longer than " +
                       std::to_string(sizeof sun.sun_path - 1) + " bytes; choose a shorter one");
  }
  removeStaleSocket(address);
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, address.path.c_str(), address.path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(address, errno);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 ||
      ::listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    fail(address, err);
  }
  return fd;
}

int adoptFd(const BindAddress& address) {
  int listening = 0;
  socklen_t len = sizeof listening;
  if (::getsockopt(address.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    throw StartupError(address.str() +
                       " is not an open listening socket; pass the number of a "
                       "socket that the parent process left open and listening");
  }
  // Kept out of every child but the workers, which get it explicitly.
  ::fcntl(address.fd, F_SETFD, FD_CLOEXEC);
  return address.fd;
}

}  // namespace

Listener Listener::open(const BindAddress& address, int backlog) {
  switch (address.kind) {
    case BindAddress::Kind::Tcp: {
      const int fd = bindTcp(address, backlog);
      return Listener(fd, socketUrl(fd), "");
    }
    case BindAddress::Kind::Unix:
      return Listener(bindUnix(address, backlog), address.str(), address.path);
    case BindAddress::Kind::Fd: {
      const int fd = adoptFd(address);
      return Listener(fd, socketUrl(fd) + " (" + address.str() + ")", "");
    }
  }
  throw StartupError("unknown address kind");
}

Listener::Listener(int fd, std::string url, std::string unlink_path)
    : fd_(fd), url_(std::move(url)), unlink_path_(std::move(unlink_path)) {
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      url_(std::move(other.url_)),
      unlink_path_(std::move(other.unlink_path_)) {
}

int Listener::release() {
  unlink_path_.clear();
  return std::exchange(fd_, -1);
}

Listener::~Listener() {
  if (fd_ < 0) return;
  ::close(fd_);
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

// A classic BPF program run on every packet for the listening socket, with the packet starting
// at the TCP header (tcp_filter runs after IP processing). It drops segments with SYN set and
// ACK clear, i.e. new connection attempts; the handshakes and data of connections the kernel
// already knows pass. The client of a dropped SYN retries it, and by then the address has
// usually left the load balancer, or another instance answers.
void Listener::gateNewConnections() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    return;
  }
  constexpr std::uint8_t kTcpFlagsOffset = 13;
  constexpr std::uint32_t kSyn = 0x02;
  constexpr std::uint32_t kSynAck = 0x12;
  sock_filter program[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, kTcpFlagsOffset),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, kSynAck),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kSyn, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0),           // a new connection: drop
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),  // anything else: keep whole
  };
  const sock_fprog fprog{static_cast<unsigned short>(std::size(program)), program};
  ::setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog);
}

std::size_t Listener::queuedConnections() const {
  tcp_info info{};
  socklen_t len = sizeof info;
  // For a listening socket the kernel reports its accept queue length in tcpi_unacked.
  if (::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_state != TCP_LISTEN) {
    return 0;
  }
  return info.tcpi_unacked;
}

std::optional<std::size_t> Listener::queueLimit() const {
  tcp_info info{};
  socklen_t len = sizeof info;
  // ... and the queue's limit, the backlog as the kernel applies it, in tcpi_sacked.
  if (::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_state != TCP_LISTEN) {
    return std::nullopt;
  }
  return info.tcpi_sacked;
}

int readSomaxconn() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int value = -1;
  in >> value;
  return in ? value : -1;
}

}  // namespace corral

#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "config/bind_address.hpp"
#include "runtime/startup_error.hpp"

namespace corral {

/// One listening socket, bound once before any worker starts and kept for corral's whole
/// life. corral never accepts on it: workers inherit it and accept themselves.
class Listener {
 public:
  /// Binds and listens, or adopts an inherited fd://N. Throws StartupError.
  static Listener open(const BindAddress& address, int backlog);

  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&&) = delete;
  Listener& operator=(const Listener&) = delete;
  Listener(const Listener&) = delete;
  ~Listener();

  int fd() const { return fd_; }
  /// Gives up ownership: the caller closes the fd and removes any socket file.
  int release();

  /// Drops new connection attempts (SYNs) from now on, for every process holding the socket,
  /// while connections already in the queue, or in their handshake, go on and are served.
  /// TCP only; a no-op for unix sockets.
  void gateNewConnections() const;
  /// Connections the kernel has queued that no worker has accepted yet (TCP only).
  std::size_t queuedConnections() const;
  /// The accept queue's length as the kernel applies it (the backlog, capped by somaxconn);
  /// TCP only.
  std::optional<std::size_t> queueLimit() const;
  /// Where it listens, with the kernel's port when 0 was asked: "http://127.0.0.1:8000",
  /// "http://[::1]:8000", "unix:/run/app.sock", "fd://3".
  const std::string& url() const { return url_; }

 private:
  Listener(int fd, std::string url, std::string unlink_path);
  int fd_;
  std::string url_;
  std::string unlink_path_;  ///< unix socket file corral created and removes at exit
};

/// net.core.somaxconn, or -1 when it cannot be read.
int readSomaxconn();

}  // namespace corral

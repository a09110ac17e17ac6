#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace corral {

/// One address to listen on, as given to --bind or --admin-bind.
struct BindAddress {
  enum class Kind { Tcp, Unix, Fd };
  Kind kind = Kind::Tcp;
  std::string host;        ///< Tcp: numeric IPv4 or IPv6 address, without brackets
  std::uint16_t port = 0;  ///< Tcp: 0 lets the kernel choose
  std::string path;        ///< Unix: filesystem path of the socket
  int fd = -1;             ///< Fd: an inherited listening socket

  /// Canonical text: "127.0.0.1:8000", "[::1]:8000", "unix:/run/app.sock", "fd://3".
  std::string str() const;
  bool operator==(const BindAddress&) const = default;
};

/// Parses HOST:PORT, [IPv6]:PORT, unix:PATH, fd://N. A bare HOST means port 8000, as gunicorn.
/// Throws ConfigError naming `what` (e.g. "--bind") and the text on bad input.
BindAddress parseBindAddress(std::string_view text, std::string_view what);

}  // namespace corral

#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace corral {

/// A listening socket passed by systemd's socket activation (sd_listen_fds(3)).
struct ActivatedSocket {
  int fd = -1;
  std::string name;  ///< from LISTEN_FDNAMES; systemd's default is "unknown"
};

/// The sockets in LISTEN_FDS, starting at fd 3, when LISTEN_PID names `self_pid`; none when
/// the variables are unset or meant for another process (a parent shell, say). Throws
/// ConfigError when they are malformed or LISTEN_FDNAMES does not match LISTEN_FDS.
std::vector<ActivatedSocket> activatedSockets(const EnvLookup& env, int self_pid);

/// The name that makes an activated socket the admin endpoint rather than a public one.
inline constexpr std::string_view kAdminSocketName = "admin";

}  // namespace corral

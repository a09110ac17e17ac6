#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/supervisor.hpp"

namespace corral {

/// systemd's notify protocol (sd_notify(3)): datagrams of "KEY=value" lines to $NOTIFY_SOCKET,
/// a filesystem path or an abstract name written "@name". Without NOTIFY_SOCKET every call is
/// a no-op, so corral behaves the same under systemd, in a container and in a shell.
class Notifier {
 public:
  /// Reads NOTIFY_SOCKET, and WATCHDOG_USEC when WATCHDOG_PID is unset or names `self`.
  Notifier(const EnvLookup& env, int self_pid);
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;
  ~Notifier();

  bool enabled() const { return fd_ >= 0; }
  /// Sends what the supervisor has to say, in the protocol's words.
  void send(const ServiceNotice& notice) const;
  /// Sends WATCHDOG=1 at half the interval systemd asked for, from corral's loop: a wedged
  /// loop stops the pings, and systemd restarts corral.
  void startWatchdog(Clock& clock);

  /// The datagram for `notice`; RELOADING=1 carries `monotonic_usec` (CLOCK_MONOTONIC), as
  /// systemd's Type=notify-reload asks.
  static std::string encode(const ServiceNotice& notice, std::uint64_t monotonic_usec);

 private:
  void sendDatagram(std::string_view datagram) const;

  int fd_ = -1;
  std::string address_;  ///< sockaddr_un path bytes, a leading NUL for abstract names
  std::optional<std::chrono::microseconds> watchdog_;
  std::unique_ptr<Timer> watchdog_timer_;
};

}  // namespace corral

#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "supervisor/clock.hpp"

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
  /// How often systemd expects WATCHDOG=1, if it does.
  std::optional<std::chrono::microseconds> watchdogInterval() const { return watchdog_; }
  /// Sends one datagram; failures are ignored (systemd may be gone during shutdown).
  void send(std::string_view message) const;
  /// Sends WATCHDOG=1 at half the interval systemd asked for, from corral's loop: a wedged
  /// loop stops the pings, and systemd restarts corral.
  void startWatchdog(Clock& clock);

 private:
  int fd_ = -1;
  std::string address_;  ///< sockaddr_un path bytes, a leading NUL for abstract names
  std::optional<std::chrono::microseconds> watchdog_;
  std::unique_ptr<Timer> watchdog_timer_;
};

/// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC.
std::uint64_t monotonicMicros();

}  // namespace corral

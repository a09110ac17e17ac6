#include "supervisor/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

namespace corral {
namespace {

std::optional<std::uint64_t> parseUnsigned(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
  return value;
}

}  // namespace

Notifier::Notifier(const EnvLookup& env, int self_pid) {
  const auto socket_path = env("NOTIFY_SOCKET");
  if (socket_path && (socket_path->starts_with('/') || socket_path->starts_with('@')) &&
      socket_path->size() < sizeof(sockaddr_un::sun_path)) {
    address_ = *socket_path;
    if (address_.front() == '@') address_.front() = '\0';
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  // WATCHDOG_PID names the process systemd watches; a watchdog meant for a parent shell
  // script that exec'd nothing is not ours to feed.
  const auto watchdog_pid = parseUnsigned(env("WATCHDOG_PID"));
  const auto usec = parseUnsigned(env("WATCHDOG_USEC"));
  if (usec && *usec > 0 &&
      (!watchdog_pid || *watchdog_pid == static_cast<std::uint64_t>(self_pid))) {
    watchdog_ = std::chrono::microseconds(*usec);
  }
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

void Notifier::send(std::string_view message) const {
  if (fd_ < 0) return;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, address_.data(), address_.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sun),
           len);
}

void Notifier::startWatchdog(Clock& clock) {
  if (!enabled() || !watchdog_) return;
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog_ / 2);
  watchdog_timer_ = clock.createTimer([this, period] {
    send("WATCHDOG=1");
    watchdog_timer_->enable(period);
  });
  send("WATCHDOG=1");
  watchdog_timer_->enable(period);
}

std::uint64_t monotonicMicros() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace corral

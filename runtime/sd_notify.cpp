#include "runtime/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "util/text.hpp"

namespace corral {
namespace {

std::optional<std::uint64_t> parseUnsigned(const std::optional<std::string>& text) {
  return text ? parseInt<std::uint64_t>(*text) : std::nullopt;
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

namespace {

std::uint64_t monotonicMicros() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

std::string Notifier::encode(const ServiceNotice& notice, std::uint64_t monotonic_usec) {
  switch (notice.kind) {
    case ServiceNotice::Kind::Ready: return "READY=1";
    case ServiceNotice::Kind::Reloading:
      return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec);
    case ServiceNotice::Kind::Stopping:
      return "STOPPING=1\nEXTEND_TIMEOUT_USEC=" + std::to_string(notice.extend.count() * 1000);
    case ServiceNotice::Kind::Status: return "STATUS=" + notice.status;
  }
  return {};
}

void Notifier::send(const ServiceNotice& notice) const {
  if (fd_ < 0) return;
  sendDatagram(
      encode(notice, notice.kind == ServiceNotice::Kind::Reloading ? monotonicMicros() : 0));
}

void Notifier::sendDatagram(std::string_view message) const {
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
    sendDatagram("WATCHDOG=1");
    watchdog_timer_->enable(period);
  });
  sendDatagram("WATCHDOG=1");
  watchdog_timer_->enable(period);
}

}  // namespace corral

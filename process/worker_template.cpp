#include "process/worker_template.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>

#include "util/text.hpp"

namespace corral {
namespace {

// The template answers in a few milliseconds; corral's loop (admin endpoints included) waits
// for it, so a template slower than this is given up for a fresh interpreter.
constexpr std::chrono::milliseconds kReplyTimeout{500};
constexpr std::size_t kMaxReply = 4096;
using Buffer = std::array<char, kMaxReply>;

// One datagram from the template without waiting: empty if there is none, nullopt once the
// template has closed its end.
std::optional<std::string_view> receive(int fd, Buffer& buffer) {
  const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (n == 0) return std::nullopt;
  return std::string_view(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace

WorkerTemplate::WorkerTemplate(boost::asio::io_context& io, Clock& clock, Pid pid, int channel,
                               int generation, std::chrono::milliseconds boot_timeout)
    : channel_(io, channel),
      boot_timer_(clock.createTimer([this] { onBootTimeout(); })),
      pid_(pid),
      generation_(generation) {
  awaitReady();
  boot_timer_->enable(boot_timeout);
}

WorkerTemplate::~WorkerTemplate() = default;

void WorkerTemplate::onBootTimeout() {
  spdlog::warn("worker template (pid {}) not ready in time; workers start afresh", pid_);
  ::kill(pid_, SIGKILL);  // not reaped yet, or this template would have been dropped
  releaseWaiters();
}

void WorkerTemplate::whenReady(std::function<void()> ready) {
  waiting_.push_back(std::move(ready));
}

void WorkerTemplate::releaseWaiters() {
  for (auto& ready : waiting_) boost::asio::post(channel_.get_executor(), std::move(ready));
  waiting_.clear();
}

void WorkerTemplate::awaitReady() {
  channel_.async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [this, alive = std::weak_ptr<char>(alive_)](const boost::system::error_code& ec) {
        if (ec || alive.expired()) return;
        Buffer buffer;
        const auto message = receive(channel_.native_handle(), buffer);
        if (!message) return;  // it exited; the Reaper tells
        if (*message == "READY=1") {
          ready_ = true;
          spdlog::info("worker template ready (pid {})", pid_);
          boot_timer_->disable();
          releaseWaiters();
          return;
        }
        constexpr std::string_view kImports = "IMPORTS=";
        if (message->starts_with(kImports)) {
          for (const std::string_view path : split(message->substr(kImports.size()), '\n')) {
            if (!path.empty()) imports_.emplace(path);
          }
        } else if (constexpr std::string_view kWarning = "WARNING=";
                   message->starts_with(kWarning)) {
          spdlog::warn("worker template (pid {}): {}", pid_, message->substr(kWarning.size()));
        } else if (!message->empty()) {
          spdlog::debug("worker template (pid {}): {}", pid_, *message);
        }
        awaitReady();
      });
}

std::optional<Pid> WorkerTemplate::fork(std::string_view settings, int control_fd) {
  const int fd = channel_.native_handle();
  iovec data{const_cast<char*>(settings.data()), settings.size()};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> ancillary{};
  msghdr request{};
  request.msg_iov = &data;
  request.msg_iovlen = 1;
  request.msg_control = ancillary.data();
  request.msg_controllen = ancillary.size();
  cmsghdr* rights = CMSG_FIRSTHDR(&request);
  rights->cmsg_level = SOL_SOCKET;
  rights->cmsg_type = SCM_RIGHTS;
  rights->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(rights), &control_fd, sizeof(int));
  if (::sendmsg(fd, &request, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    spdlog::warn("worker template (pid {}) takes no request ({}); starting workers afresh", pid_,
                 std::strerror(errno));
    return std::nullopt;
  }

  const auto deadline = std::chrono::steady_clock::now() + kReplyTimeout;
  pollfd wait{fd, POLLIN, 0};
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int n = ::poll(&wait, 1, static_cast<int>(std::max<long>(left.count(), 0)));
    if (n > 0) break;
    if (n < 0 && errno == EINTR) continue;
    spdlog::warn("worker template (pid {}) did not answer within {} ms; starting workers afresh",
                 pid_, kReplyTimeout.count());
    return std::nullopt;
  }
  Buffer buffer;
  const std::string_view reply = receive(fd, buffer).value_or("");
  constexpr std::string_view kSpawned = "SPAWNED=";
  if (reply.starts_with(kSpawned)) {
    Pid pid = 0;
    const auto digits = reply.substr(kSpawned.size());
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (error == std::errc() && end == digits.data() + digits.size() && pid > 0) return pid;
  }
  spdlog::warn("worker template (pid {}) failed: {}; starting workers afresh", pid_,
               reply.empty() ? std::string_view("it exited") : reply);
  return std::nullopt;
}

}  // namespace corral

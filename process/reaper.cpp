#include "process/reaper.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace corral {

Reaper::Reaper(boost::asio::io_context& io, OnExit on_exit)
    : sigchld_(io, SIGCHLD), on_exit_(std::move(on_exit)) {
  waitForSignal();
}

void Reaper::waitForSignal() {
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    reapAll();
    waitForSignal();
  });
}

void Reaper::reapAll() {
  for (;;) {
    int status = 0;
    const Pid pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      on_exit_(pid, WIFSIGNALED(status) ? ExitStatus::signaled(WTERMSIG(status))
                                        : ExitStatus::exited(WEXITSTATUS(status)));
      continue;
    }
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0 && errno != ECHILD) spdlog::error("waitpid: {}", std::strerror(errno));
    return;
  }
}

}  // namespace corral

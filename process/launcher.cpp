#include "process/launcher.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>

namespace corral {
namespace {

std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (const auto& s : strings) result.push_back(const_cast<char*>(s.c_str()));
  result.push_back(nullptr);
  return result;
}

// Everything prepared before the fork: the child may only make async-signal-safe calls.
struct Child {
  const char* executable;
  char* const* argv;
  char* const* envp;
  const std::vector<int>& keep_fds;  ///< their close-on-exec flag is cleared
  const std::vector<int>& open_fds;  ///< sorted: keep_fds, and the error pipe
  const std::optional<WorkerUser>& user;
  const std::vector<gid_t>& groups;
  bool take_terminal;
  pid_t parent;
  int error_pipe;

  // Returns only on failure, with errno set.
  void setUpAndExec() const {
    // Ignored signals survive exec: a worker that inherited an ignored SIGTERM could never
    // drain. Every signal is still blocked (the parent blocked them before forking), so no
    // handler of corral's runs here.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int signo = 1; signo < NSIG; ++signo) ::sigaction(signo, &dfl, nullptr);
    if (::setpgid(0, 0) != 0) return;
    // Every signal is still blocked, so the background group this runs in may take the
    // terminal without being stopped by SIGTTOU.
    if (take_terminal) ::tcsetpgrp(STDIN_FILENO, ::getpgrp());
    for (const int fd : keep_fds) {
      if (::fcntl(fd, F_SETFD, 0) != 0) return;
    }
    // Groups before the uid: once the uid is dropped, changing groups is no longer allowed.
    if (user && (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(user->gid) != 0 ||
                 ::setuid(user->uid) != 0)) {
      return;
    }
    // After the uid change, which clears the parent-death signal (prctl(2)).
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return;
    // If corral died before PR_SET_PDEATHSIG took hold, no signal will come: give up now.
    if (::getppid() != parent) {
      errno = ESRCH;
      return;
    }
    closeFdsExcept(open_fds);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(executable, argv, envp);
  }

  [[noreturn]] void run() const {
    setUpAndExec();
    const int error = errno;
    [[maybe_unused]] const auto written = ::write(error_pipe, &error, sizeof error);
    ::_exit(127);
  }
};

// The child's errno if it failed before exec; 0 once exec closed the pipe.
int childError(int read_end) {
  int error = 0;
  for (;;) {
    const ssize_t n = ::read(read_end, &error, sizeof error);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(sizeof error) ? error : 0;
  }
}

}  // namespace

SpawnResult launch(const LaunchSpec& spec) {
  const auto argv = pointers(spec.argv);
  const auto envp = pointers(spec.env);
  const std::vector<gid_t> groups =
      spec.user ? std::vector<gid_t>(spec.user->groups.begin(), spec.user->groups.end())
                : std::vector<gid_t>{};
  int pipe[2];
  if (::pipe2(pipe, O_CLOEXEC) != 0) return SpawnResult::failed(errno);
  std::vector<int> open_fds = spec.keep_fds;
  open_fds.insert(open_fds.end(), {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, pipe[1]});
  std::sort(open_fds.begin(), open_fds.end());
  const Child child{
      spec.executable.c_str(), argv.data(), envp.data(), spec.keep_fds, open_fds, spec.user, groups,
      spec.take_terminal,      ::getpid(),  pipe[1]};

  sigset_t all;
  sigset_t saved;
  ::sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &saved);
  const pid_t pid = ::fork();
  if (pid == 0) child.run();
  const int fork_error = errno;
  ::sigprocmask(SIG_SETMASK, &saved, nullptr);
  ::close(pipe[1]);
  const int error = pid < 0 ? fork_error : childError(pipe[0]);
  ::close(pipe[0]);
  if (pid < 0) return SpawnResult::failed(error);
  return {pid, error, false};
}

void closeFdsExcept(const std::vector<int>& sorted_keep) {
  unsigned next = 0;
  for (const int fd : sorted_keep) {
    const auto u = static_cast<unsigned>(fd);
    if (u > next) ::close_range(next, u - 1, 0);
    next = std::max(next, u + 1);
  }
  ::close_range(next, ~0U, 0);
}

}  // namespace corral

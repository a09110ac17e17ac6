#include "supervisor/posix_spawner.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
#include <cerrno>
#include <csignal>
#include <fstream>

namespace corral {
namespace bp = boost::process::v2;

namespace {

constexpr std::size_t kMaxMessage = std::size_t{64} * 1024;

/// Boost.Process v2 initializer doing the child-side hygiene. Everything in onExecSetup runs
/// between fork and exec, so it is async-signal-safe only: no allocation, no logging.
/// It works around three bugs of Boost 1.81 (cpp-deps.md, section 1): its environment
/// initializer does not link, its fd closing skips the gaps between kept fds, and a failed exec
/// calls exit() instead of _exit().
// The hooks' names are Boost.Process's.  NOLINTBEGIN(readability-identifier-naming)
struct ChildSetup {
  const char* const* env;
  const std::vector<int>& keep_fds;  ///< stay open in the child, at the same numbers
  const std::optional<WorkerUser>& user;
  const std::vector<gid_t>& groups;
  pid_t parent = ::getpid();

  template <class Launcher>
  boost::system::error_code on_setup(Launcher& launcher, const bp::filesystem::path&,
                                     const char* const*) {
    launcher.env = env;
    launcher.fd_whitelist.insert(launcher.fd_whitelist.end(), keep_fds.begin(), keep_fds.end());
    return {};
  }

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher& launcher, const bp::filesystem::path&,
                                          const char* const*) {
    sigset_t all;
    ::sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);  // no handler of ours may run past this point
    resetDispositions();
    if (::setpgid(0, 0) != 0) return lastError();
    for (const int fd : keep_fds) {
      if (::fcntl(fd, F_SETFD, 0) != 0) return lastError();
    }
    // Groups before the uid: once the uid is dropped, changing groups is no longer allowed.
    if (user && (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(user->gid) != 0 ||
                 ::setuid(user->uid) != 0)) {
      return lastError();
    }
    // After the uid change, which clears the parent-death signal (prctl(2)).
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return lastError();
    // If corral died before PR_SET_PDEATHSIG took hold, no signal will come: give up now.
    if (::getppid() != parent) {
      return boost::system::error_code(ESRCH, boost::system::system_category());
    }
    closeOthers(launcher.fd_whitelist);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    return {};
  }

  // The hook must take any arguments: Boost 1.81 probes with five and calls with four.
  template <class... Args>
  void on_exec_error(Args&&...) {
    ::_exit(127);
  }

  static boost::system::error_code lastError() { return {errno, boost::system::system_category()}; }

  // Ignored signals survive exec; a worker that inherited an ignored SIGTERM could never drain.
  static void resetDispositions() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int signo = 1; signo < NSIG; ++signo) ::sigaction(signo, &dfl, nullptr);
  }

  // Closes every fd >= 3 not in `keep` (which Boost's error pipe is part of).
  static void closeOthers(std::vector<int>& keep) {
    std::sort(keep.begin(), keep.end());  // in place: no allocation after fork
    unsigned next = 3;
    for (const int fd : keep) {
      const auto u = static_cast<unsigned>(fd);
      if (u < next) continue;
      if (u > next) ::close_range(next, u - 1, 0);
      next = u + 1;
    }
    ::close_range(next, ~0U, 0);
  }
};
// NOLINTEND(readability-identifier-naming)

std::vector<const char*> pointers(const std::vector<std::string>& strings) {
  std::vector<const char*> result;
  result.reserve(strings.size() + 1);
  for (const auto& s : strings) result.push_back(s.c_str());
  result.push_back(nullptr);
  return result;
}

}  // namespace

PosixSpawner::PosixSpawner(boost::asio::io_context& io, std::vector<int> inherited_fds,
                           std::optional<WorkerUser> user, bool use_template)
    : io_(io),
      inherited_fds_(std::move(inherited_fds)),
      user_(std::move(user)),
      user_groups_(user_ ? std::vector<gid_t>(user_->groups.begin(), user_->groups.end())
                         : std::vector<gid_t>{}),
      use_template_(use_template),
      reaper_(io, [this](Pid pid, ExitStatus status) { onReaped(pid, status); }) {
}

PosixSpawner::~PosixSpawner() {
  // Not reaped yet, so these pids are still the templates'.
  for (const Pid pid : template_pids_) ::kill(pid, SIGKILL);
}

void PosixSpawner::setListener(ChildListener& listener) {
  listener_ = &listener;
  // A child of corral's parent that exited before corral's SIGCHLD handler existed (it stays
  // ours across exec) sent its signal into the void: collect it now.
  reaper_.reapAll();
}

SpawnResult PosixSpawner::spawn(const SpawnSpec& spec) {
  // A worker wanted while the template boots (a crash right after a reload, say) starts afresh.
  WorkerTemplate* const worker_template = templateFor(spec);
  if (worker_template != nullptr && worker_template->ready()) {
    const SpawnResult forked = withChannel([&](int child_end) {
      const auto pid = worker_template->fork(spec.settings, child_end);
      return pid ? SpawnResult{*pid, 0, true} : SpawnResult{-1, ECHILD};
    });
    if (forked.ok()) return forked;
    retireTemplate();
  }
  // A new channel: a worker the template forks after all, too late, must find its own channel
  // closed (it then drains at once), not share this one with the worker started instead.
  return withChannel([&](int child_end) { return launch(spec, child_end, {}); });
}

SpawnResult PosixSpawner::withChannel(const std::function<SpawnResult(int)>& start) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return {-1, errno};
  const int parent_end = pair[0];
  const SpawnResult result = start(pair[1]);
  ::close(pair[1]);
  if (!result.ok()) {
    ::close(parent_end);
    return result;
  }
  auto channel = std::make_unique<Channel>(Channel{next_serial_++, {io_, parent_end}});
  watch(result.pid, *channel);
  channels_[result.pid] = std::move(channel);
  return result;
}

SpawnResult PosixSpawner::launch(const SpawnSpec& spec, int child_end, std::string_view role) {
  std::vector<std::string> env = spec.env;
  env.push_back("CORRAL_WORKER_SETTINGS=" + spec.settings);
  env.push_back("CORRAL_CONTROL_FD=" + std::to_string(child_end));
  if (!role.empty()) env.emplace_back(role);
  const auto env_ptrs = pointers(env);
  std::vector<int> keep = inherited_fds_;
  keep.push_back(child_end);

  bp::posix::default_launcher launcher;
  boost::system::error_code ec;
  // The executor overload: the io_context one ignores `ec` and throws (Boost 1.81).
  auto process = launcher(io_.get_executor(), ec, spec.executable, spec.args,
                          ChildSetup{env_ptrs.data(), keep, user_, user_groups_});
  if (ec) return {-1, ec.value()};
  // Detach at once: the destructor of a live boost process SIGKILLs it and blocks in waitpid.
  const Pid pid = process.id();
  process.detach();
  return {pid, 0};
}

void PosixSpawner::prepare(const SpawnSpec& spec, std::function<void()> ready) {
  WorkerTemplate* const worker_template = templateFor(spec);
  if (worker_template != nullptr && !worker_template->ready()) {
    worker_template->whenReady(std::move(ready));
    return;
  }
  boost::asio::post(io_, std::move(ready));
}

WorkerTemplate* PosixSpawner::templateFor(const SpawnSpec& spec) {
  if (!use_template_ || spec.generation == failed_template_generation_) return nullptr;
  if (template_ && template_->generation() != spec.generation) retireTemplate();
  if (!template_) startTemplate(spec);
  return template_.get();
}

void PosixSpawner::startTemplate(const SpawnSpec& spec) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return;
  const SpawnResult result = launch(spec, pair[1], "CORRAL_WORKER_ROLE=template");
  ::close(pair[1]);
  if (!result.ok()) {
    ::close(pair[0]);
    spdlog::warn("cannot start the worker template: {}", std::strerror(result.error));
    return;
  }
  template_ = std::make_unique<WorkerTemplate>(io_, result.pid, pair[0], spec.generation);
  template_pids_.insert(result.pid);
  spdlog::debug("worker template started (pid {}) for generation {}", result.pid, spec.generation);
}

void PosixSpawner::retireTemplate() {
  ::kill(template_->pid(), SIGKILL);  // not reaped yet: the pid is still the template's
  dropTemplate();
}

void PosixSpawner::dropTemplate() {
  template_->release();
  template_.reset();
}

bool PosixSpawner::templateExited(Pid pid, ExitStatus status) {
  if (template_pids_.erase(pid) == 0) return false;
  if (template_ && template_->pid() == pid) {
    if (template_->ready()) {
      spdlog::warn("worker template (pid {}) {}; the next worker starts a new one", pid,
                   status.str());
    } else {
      // Most likely what keeps workers from booting too, which they report themselves.
      failed_template_generation_ = template_->generation();
      spdlog::debug(
          "worker template (pid {}) {} before it was ready; workers start afresh "
          "until a reload",
          pid, status.str());
    }
    dropTemplate();
  }
  return true;
}

void PosixSpawner::signal(Pid pid, int signo, bool whole_group) {
  // Safe from pid reuse: a child's pid stays ours until the Reaper collects it.
  ::kill(whole_group ? -pid : pid, signo);
}

std::optional<std::uint64_t> PosixSpawner::residentBytes(Pid pid) const {
  // statm's second field: resident pages.
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  if (!(statm >> size >> resident)) return std::nullopt;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Waits for readability and reads the datagrams itself, so an unread message never sits in
// an asio buffer when its worker is reaped (drain() then finds it in the socket).
void PosixSpawner::watch(Pid pid, Channel& channel) {
  channel.socket.async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [this, pid, serial = channel.serial](const boost::system::error_code& ec) {
        if (ec) return;
        const auto it = channels_.find(pid);
        if (it == channels_.end() || it->second->serial != serial) return;
        if (drain(pid, *it->second)) watch(pid, *it->second);
      });
}

bool PosixSpawner::drain(Pid pid, Channel& channel) {
  std::array<char, kMaxMessage> buffer;
  for (;;) {
    const ssize_t n =
        ::recv(channel.socket.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n == 0) return false;  // the worker closed its end
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (listener_ != nullptr) {
      listener_->onChildMessage(pid, std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    }
  }
}

void PosixSpawner::onReaped(Pid pid, ExitStatus status) {
  if (templateExited(pid, status)) return;
  const auto it = channels_.find(pid);
  if (it != channels_.end()) {
    drain(pid, *it->second);  // a last message (a boot error, say) comes before the exit
    channels_.erase(it);
    // What the worker started in its own process group (a subprocess, a pool) must not outlive
    // it: corral may be a plain child of a shell, where nothing else would collect it. The
    // group id is still the worker's: it was reaped a moment ago, on this same thread.
    ::kill(-pid, SIGKILL);
  }
  if (listener_ != nullptr) listener_->onChildExit(pid, status);
}

}  // namespace corral

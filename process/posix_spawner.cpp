#include "process/posix_spawner.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <utility>

#include "process/launcher.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

constexpr std::size_t kMaxMessage = std::size_t{64} * 1024;

}  // namespace

PosixSpawner::PosixSpawner(boost::asio::io_context& io, Clock& clock, WorkerSpecs specs,
                           std::vector<int> inherited_fds, std::optional<WorkerUser> user,
                           bool use_template)
    : io_(io),
      clock_(clock),
      specs_(std::move(specs)),
      inherited_fds_(std::move(inherited_fds)),
      user_(std::move(user)),
      use_template_(use_template),
      reaper_(io, [this](Pid pid, const ExitStatus& status) { onReaped(pid, status); }) {
}

PosixSpawner::~PosixSpawner() {
  // Not reaped yet, so these pids are still the templates'.
  for (const Pid pid : template_pids_) ::kill(pid, SIGKILL);
}

// A child of corral's parent that exited before corral's SIGCHLD handler existed (it stays
// ours across exec) sent its signal into the void: collect it now.
void PosixSpawner::attach(ChildEvents& events) {
  events_ = &events;
  reaper_.reapAll();
}

SpawnResult PosixSpawner::spawn(const WorkerRequest& request) {
  const SpawnSpec spec = specs_.specFor(request);
  if (auto forked = forkFromTemplate(request, spec)) return *forked;
  // A new channel: a worker the template forks after all, too late, must find its own channel
  // closed (it then drains at once), not share this one with the worker started instead.
  return withChannel([&](int child_end) { return launchSpec(spec, child_end, {}); });
}

// A worker wanted while the template boots (a crash right after a reload, say) starts afresh.
std::optional<SpawnResult> PosixSpawner::forkFromTemplate(const WorkerRequest& request,
                                                          const SpawnSpec& spec) {
  WorkerTemplate* const worker_template = templateFor(request.template_generation);
  if (worker_template == nullptr || !worker_template->ready()) return std::nullopt;
  bool template_failed = false;
  const SpawnResult forked = withChannel([&](int child_end) {
    const auto pid = worker_template->fork(spec.settings, child_end);
    template_failed = !pid;
    return pid ? SpawnResult::started(*pid, true) : SpawnResult::failed(ECHILD);
  });
  if (template_failed) {
    retireTemplate();
    return std::nullopt;
  }
  return forked;
}

SpawnResult PosixSpawner::withChannel(const std::function<SpawnResult(int)>& start) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return SpawnResult::failed(errno);
  }
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

SpawnResult PosixSpawner::launchSpec(const SpawnSpec& spec, int child_end, std::string_view role) {
  LaunchSpec launch_spec{spec.executable, {spec.executable}, spec.env, inherited_fds_, user_};
  launch_spec.argv.insert(launch_spec.argv.end(), spec.args.begin(), spec.args.end());
  launch_spec.env.push_back("CORRAL_WORKER_SETTINGS=" + spec.settings);
  launch_spec.env.push_back("CORRAL_CONTROL_FD=" + std::to_string(child_end));
  if (!role.empty()) launch_spec.env.emplace_back(role);
  launch_spec.keep_fds.push_back(child_end);
  const SpawnResult result = launch(launch_spec);
  if (!result.ok() && result.pid > 0) failed_launches_.insert(result.pid);
  return result.ok() ? result : SpawnResult::failed(result.error);
}

void PosixSpawner::prepare(int generation, std::function<void()> ready) {
  WorkerTemplate* const worker_template = templateFor(generation);
  if (worker_template != nullptr && !worker_template->ready()) {
    worker_template->whenReady(std::move(ready));
    return;
  }
  boost::asio::post(io_, std::move(ready));
}

WorkerTemplate* PosixSpawner::templateFor(int generation) {
  if (!use_template_ || generation == failed_template_generation_) return nullptr;
  if (template_ && template_->generation() != generation) {
    dropWarmTemplate();
    retireTemplate();
  }
  if (!template_) startTemplate(generation);
  return template_.get();
}

void PosixSpawner::startTemplate(int generation) {
  template_ = launchTemplate(generation);
}

std::unique_ptr<WorkerTemplate> PosixSpawner::launchTemplate(int generation) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return nullptr;
  // The template gets slot 0's settings: it imports what a worker of this generation would.
  const SpawnSpec spec = specs_.templateSpec(generation);
  const SpawnResult result = launchSpec(spec, pair[1], "CORRAL_WORKER_ROLE=template");
  ::close(pair[1]);
  if (!result.ok()) {
    ::close(pair[0]);
    spdlog::warn("cannot start the worker template: {}", std::strerror(result.error));
    return nullptr;
  }
  template_pids_.insert(result.pid);
  spdlog::debug("worker template started (pid {}) for generation {}", result.pid, generation);
  return std::make_unique<WorkerTemplate>(io_, clock_, result.pid, pair[0], generation);
}

// Libraries are worth importing in the template only once: a worker forked from it then
// imports the app's own code alone, which is what a change asks for.
void PosixSpawner::learnModules(std::string_view names) {
  const std::size_t before = preload_.size();
  for (const std::string_view name : split(names, '\n')) {
    if (!name.empty()) preload_.emplace(name);
  }
  if (preload_.size() == before || preload_failed_ || !use_template_) return;
  specs_.setPreload({preload_.begin(), preload_.end()});
  warmTemplate();
}

void PosixSpawner::warmTemplate() {
  if (!template_) return;  // the next template imports them anyway
  dropWarmTemplate();
  warm_template_ = launchTemplate(template_->generation());
  if (!warm_template_) return;
  warm_template_->whenReady([this, pid = warm_template_->pid()] {
    if (!warm_template_ || warm_template_->pid() != pid || !warm_template_->ready()) return;
    spdlog::info("worker template with the app's {} ready (pid {}); workers fork from it now",
                 plural(static_cast<long long>(preload_.size()), "library module"), pid);
    if (template_) retireTemplate();
    template_ = std::move(warm_template_);
  });
}

void PosixSpawner::dropWarmTemplate() {
  if (!warm_template_) return;
  ::kill(warm_template_->pid(), SIGKILL);  // not reaped yet: the pid is still the template's
  warm_template_.reset();
}

void PosixSpawner::retireTemplate() {
  ::kill(template_->pid(), SIGKILL);  // not reaped yet: the pid is still the template's
  dropTemplate();
}

void PosixSpawner::dropTemplate() {
  template_->releaseWaiters();
  template_.reset();
}

void PosixSpawner::stopTemplates(std::function<void()> done) {
  use_template_ = false;
  warm_template_.reset();
  if (template_) dropTemplate();
  for (const Pid pid : template_pids_) ::kill(pid, SIGKILL);
  templates_gone_ = std::move(done);
  templates_wait_ = clock_.createTimer([this] { templatesGone(); });
  templates_wait_->enable(std::chrono::seconds(1));
  if (template_pids_.empty()) templatesGone();
}

void PosixSpawner::templatesGone() {
  templates_wait_.reset();
  if (auto done = std::exchange(templates_gone_, nullptr)) done();
}

bool PosixSpawner::templateExited(Pid pid, const ExitStatus& status) {
  if (template_pids_.erase(pid) == 0) return false;
  if (template_pids_.empty() && templates_gone_) templatesGone();
  if (warm_template_ && warm_template_->pid() == pid) {
    // Importing the app's libraries beforehand did not work out (a library that starts a
    // thread, say): the plain template goes on, and later ones import nothing more either.
    spdlog::info(
        "worker template with the app's libraries (pid {}) {} before it was ready; "
        "workers fork from the plain one",
        pid, status.str());
    preload_failed_ = true;
    specs_.setPreload({});
    warm_template_.reset();
    return true;
  }
  if (template_ && template_->pid() == pid) {
    if (template_->ready()) {
      spdlog::warn("worker template (pid {}) {}; the next worker starts a new one", pid,
                   status.str());
    } else {
      // Most likely what keeps workers from booting too, which they report themselves.
      failed_template_generation_ = template_->generation();
      spdlog::debug(
          "worker template (pid {}) {} before it was ready; workers start afresh until a reload",
          pid, status.str());
    }
    dropTemplate();
  }
  return true;
}

bool PosixSpawner::templateImported(const std::vector<std::string>& paths) const {
  if (!template_) return false;
  return std::any_of(paths.begin(), paths.end(),
                     [&](const std::string& path) { return template_->imported(path); });
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

// Waits for readability and reads the datagrams itself, so that an unread message never sits
// in an asio buffer when its worker is reaped (readPending() then finds it in the socket). The
// channel is looked up again by pid and serial: it may be gone by the time the handler runs.
void PosixSpawner::watch(Pid pid, Channel& channel) {
  channel.socket.async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [this, pid, serial = channel.serial](const boost::system::error_code& ec) {
        if (ec) return;
        const auto it = channels_.find(pid);
        if (it == channels_.end() || it->second->serial != serial) return;
        if (readPending(pid, *it->second)) watch(pid, *it->second);
      });
}

bool PosixSpawner::readPending(Pid pid, Channel& channel) {
  std::array<char, kMaxMessage> buffer;
  for (;;) {
    const ssize_t n =
        ::recv(channel.socket.native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n == 0) return false;  // the worker closed its end
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    const std::string_view message(buffer.data(), static_cast<std::size_t>(n));
    constexpr std::string_view kModules = "MODULES=";
    if (message.starts_with(kModules)) {
      learnModules(message.substr(kModules.size()));  // the spawner's business, not a decision
    } else if (events_ != nullptr) {
      events_->onChildMessage(pid, std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    }
  }
}

void PosixSpawner::onReaped(Pid pid, ExitStatus status) {
  if (templateExited(pid, status) || failed_launches_.erase(pid) > 0) return;
  const auto it = channels_.find(pid);
  if (it != channels_.end()) {
    readPending(pid, *it->second);  // a last message (a boot error, say) comes before the exit
    channels_.erase(it);
    if (status.signaledBy(SIGKILL)) status.oom_killed = oom_.claim();
    // What the worker started in its own process group (a subprocess, a pool) must not outlive
    // it: corral may be a plain child of a shell, where nothing else would collect it. The
    // group id is still the worker's: it was reaped a moment ago, on this same thread.
    ::kill(-pid, SIGKILL);
    if (multiproc_) multiproc_->markDead(pid);
  }
  if (events_ != nullptr) events_->onChildExit(pid, status);
}

}  // namespace corral

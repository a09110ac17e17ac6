#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "process/multiproc_dir.hpp"
#include "process/oom_watch.hpp"
#include "process/reaper.hpp"
#include "process/worker_specs.hpp"
#include "process/worker_template.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// The real ProcessSpawner. It starts workers (forked by the worker template when there is a
/// ready one, else launched afresh, see launcher.hpp), gives each a control channel and
/// delivers its messages, owns the Reaper, and routes each exit: a template's is its own
/// business, a worker's or an orphan's goes to the Supervisor.
///
/// Destroying it SIGKILLs the templates that are left; workers are left to PR_SET_PDEATHSIG.
class PosixSpawner final : public ProcessSpawner {
 public:
  /// `inherited_fds`: the descriptors every worker gets (sockets, scoreboard), at the same numbers;
  /// `user`: the identity workers switch to before exec, if any; `use_template`: fork workers from
  /// a worker template (--start-method forkserver; corral must adopt orphans for that).
  PosixSpawner(boost::asio::io_context& io, Clock& clock, WorkerSpecs specs,
               std::vector<int> inherited_fds, std::optional<WorkerUser> user, bool use_template);
  ~PosixSpawner() override;
  PosixSpawner(const PosixSpawner&) = delete;
  PosixSpawner& operator=(const PosixSpawner&) = delete;

  void attach(ChildEvents& events) override;
  void prepare(int generation, std::function<void()> ready) override;
  SpawnResult spawn(const WorkerRequest& request) override;
  void signal(Pid pid, int signo, bool whole_group) override;
  std::optional<std::uint64_t> residentBytes(Pid pid) const override;

  /// From now on, each worker that exits is marked dead in `dir` (prometheus_client's
  /// multiprocess mode).
  void markDeadWorkersIn(MultiprocDir dir) { multiproc_ = std::move(dir); }

  /// Kills the worker templates and calls `done` once they are reaped (or a second later, if
  /// the kernel has not let them go by then), so that corral exits with no process of its own
  /// left behind for the service manager to kill.
  void stopTemplates(std::function<void()> done);

  /// Whether the worker template there is now imported any of these files (--reload).
  bool templateImported(const std::vector<std::string>& paths) const;
  /// The --env-file's entries, read again: for the workers started from now on, and for the
  /// next template.
  void setEnvFile(std::vector<std::string> entries) { specs_.setEnvFile(std::move(entries)); }

 private:
  struct Channel {
    unsigned serial;  ///< tells a channel from a later one of a reused pid
    boost::asio::posix::stream_descriptor socket;
  };

  /// Makes a control channel, has `start` start a worker with the child's end, and watches the
  /// parent's end if it did.
  SpawnResult withChannel(const std::function<SpawnResult(int child_end)>& start);
  /// Fork/exec of `spec`, with `child_end` as its control channel; `role` is its extra
  /// environment entry, if any.
  SpawnResult launchSpec(const SpawnSpec& spec, int child_end, std::string_view role);
  /// A worker forked by the ready template of the request's generation, if there is one.
  std::optional<SpawnResult> forkFromTemplate(const WorkerRequest& request, const SpawnSpec& spec);
  /// The template for `generation`, started if need be; nullptr if there is none to be had.
  WorkerTemplate* templateFor(int generation);
  void startTemplate(int generation);
  /// A template process for `generation` and its client, or nullptr (logged).
  std::unique_ptr<WorkerTemplate> launchTemplate(int generation);
  void retireTemplate();
  void dropTemplate();
  /// --reload: a worker's MODULES message. New libraries start a warm template (one that
  /// imports them beforehand), which takes over from the current one once ready.
  void learnModules(std::string_view names);
  void warmTemplate();
  void dropWarmTemplate();
  /// True if `pid` was a template, which is nothing the Supervisor needs to know about.
  bool templateExited(Pid pid, const ExitStatus& status);
  void templatesGone();

  void watch(Pid pid, Channel& channel);
  /// Delivers every message waiting on the channel; false once the worker has closed its end.
  bool readPending(Pid pid, Channel& channel);
  void onReaped(Pid pid, ExitStatus status);

  boost::asio::io_context& io_;
  Clock& clock_;
  WorkerSpecs specs_;
  std::vector<int> inherited_fds_;
  std::optional<WorkerUser> user_;
  ChildEvents* events_ = nullptr;
  std::map<Pid, std::unique_ptr<Channel>> channels_;
  unsigned next_serial_ = 0;
  bool use_template_;
  std::unique_ptr<WorkerTemplate> template_;
  std::unique_ptr<WorkerTemplate> warm_template_;  ///< --reload: the next one, warming up
  std::set<std::string, std::less<>> preload_;     ///< the app's libraries, as workers said
  bool preload_failed_ = false;    ///< a warm template gave up: templates import nothing more
  std::set<Pid> template_pids_;    ///< the template and retired ones, until reaped
  std::set<Pid> failed_launches_;  ///< children that failed before exec, until reaped
  std::optional<int> failed_template_generation_;  ///< its template never got ready
  std::function<void()> templates_gone_;           ///< stopTemplates' `done`, until then
  std::unique_ptr<Timer> templates_wait_;
  std::optional<MultiprocDir> multiproc_;
  OomWatch oom_;
  Reaper reaper_;
};

}  // namespace corral

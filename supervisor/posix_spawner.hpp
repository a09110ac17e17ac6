#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "config/config.hpp"
#include "supervisor/process_spawner.hpp"
#include "supervisor/reaper.hpp"
#include "supervisor/worker_template.hpp"

namespace corral {

/// Starts workers, gives each a control channel, and owns the Reaper. A worker is forked by
/// the worker template (WorkerTemplate) when there is a ready one, else started afresh with
/// Boost.Process v2 (used only as the fork/exec launcher and detached at once).
///
/// Each child starts the way tini starts its child: an empty signal mask, default dispositions,
/// its own process group, PR_SET_PDEATHSIG(SIGKILL) so nothing outlives corral, and no file
/// descriptors but stdio, the listening sockets and its end of the control channel.
class PosixSpawner final : public ProcessSpawner {
 public:
  /// `inherited_fds`: the listening sockets every worker gets, at the same numbers; `user`:
  /// the identity workers switch to before exec, if any; `use_template`: fork workers from a
  /// worker template (--start-method forkserver; corral must adopt orphans for that).
  PosixSpawner(boost::asio::io_context& io, std::vector<int> inherited_fds,
               std::optional<WorkerUser> user, bool use_template);
  ~PosixSpawner() override;
  PosixSpawner(const PosixSpawner&) = delete;
  PosixSpawner& operator=(const PosixSpawner&) = delete;

  void setListener(ChildListener& listener) override;
  void prepare(const SpawnSpec& spec, std::function<void()> ready) override;
  SpawnResult spawn(const SpawnSpec& spec) override;
  void signal(Pid pid, int signo, bool whole_group) override;
  std::optional<std::uint64_t> residentBytes(Pid pid) const override;

 private:
  struct Channel {
    unsigned serial;
    boost::asio::posix::stream_descriptor socket;
  };

  /// Makes a control channel, has `start` start a worker with the child's end, and watches the
  /// parent's end if it did.
  SpawnResult withChannel(const std::function<SpawnResult(int child_end)>& start);
  /// Fork/exec of `spec`, with `child_end` as its control channel; `role` is its extra
  /// environment entry, if any.
  SpawnResult launch(const SpawnSpec& spec, int child_end, std::string_view role);
  /// The template for spec's generation, started if need be; nullptr if there is none to be
  /// had.
  WorkerTemplate* templateFor(const SpawnSpec& spec);
  void startTemplate(const SpawnSpec& spec);
  void retireTemplate();
  void dropTemplate();
  /// True if `pid` was a template, which is nothing the Supervisor needs to know about.
  bool templateExited(Pid pid, ExitStatus status);

  void watch(Pid pid, Channel& channel);
  /// Delivers every pending message; false once the worker has closed its end.
  bool drain(Pid pid, Channel& channel);
  void onReaped(Pid pid, ExitStatus status);

  boost::asio::io_context& io_;
  std::vector<int> inherited_fds_;
  std::optional<WorkerUser> user_;
  std::vector<gid_t> user_groups_;
  ChildListener* listener_ = nullptr;
  std::map<Pid, std::unique_ptr<Channel>> channels_;
  unsigned next_serial_ = 0;
  bool use_template_;
  std::unique_ptr<WorkerTemplate> template_;
  std::set<Pid> template_pids_;          ///< the template and retired ones, until reaped
  int failed_template_generation_ = -1;  ///< a template of this generation never got ready
  Reaper reaper_;
};

}  // namespace corral

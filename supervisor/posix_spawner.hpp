#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "config/config.hpp"
#include "supervisor/process_spawner.hpp"
#include "supervisor/reaper.hpp"

namespace corral {

/// Starts workers with Boost.Process v2 (used only as the fork/exec launcher and detached at
/// once), gives each a control channel, and owns the Reaper.
///
/// Each child starts the way tini starts its child: an empty signal mask, default dispositions,
/// its own process group, PR_SET_PDEATHSIG(SIGKILL) so nothing outlives corral, and no file
/// descriptors but stdio, the listening sockets and its end of the control channel.
class PosixSpawner final : public ProcessSpawner {
 public:
  /// `inherited_fds`: the listening sockets every worker gets, at the same numbers; `user`:
  /// the identity workers switch to before exec, if any.
  PosixSpawner(boost::asio::io_context& io, std::vector<int> inherited_fds,
               std::optional<WorkerUser> user);

  void setListener(ChildListener& listener) override;
  SpawnResult spawn(const SpawnSpec& spec) override;
  void signal(Pid pid, int signo, bool whole_group) override;
  std::optional<std::uint64_t> residentBytes(Pid pid) const override;

 private:
  struct Channel {
    unsigned serial;
    boost::asio::posix::stream_descriptor socket;
  };

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
  Reaper reaper_;
};

}  // namespace corral

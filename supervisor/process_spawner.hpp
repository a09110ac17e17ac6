#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/exit_status.hpp"

namespace corral {

using Pid = pid_t;

/// What to run for one worker. The spawner adds the listening sockets and a control channel.
struct SpawnSpec {
  int slot = 0;
  int generation = 0;             ///< the reload generation the worker belongs to
  std::string executable;         ///< absolute path; also the child's argv[0]
  std::vector<std::string> args;  ///< arguments after argv[0]
  std::vector<std::string> env;   ///< environment, "NAME=value", but for the settings
  std::string settings;           ///< the worker's settings, JSON (worker/PROTOCOL.md)
};

/// A spawn either gives a pid or the errno of what failed (folly's SubprocessSpawnError).
struct SpawnResult {
  Pid pid = -1;
  int error = 0;
  bool forked = false;  ///< forked from the worker template rather than started afresh
  bool ok() const { return error == 0; }
};

/// Receives what happens to children. Implemented by the Supervisor.
class ChildListener {
 public:
  virtual ~ChildListener() = default;
  /// One control message from a worker (see worker/PROTOCOL.md).
  virtual void onChildMessage(Pid pid, std::string_view message) = 0;
  /// A child was reaped: a worker, or an orphan that was reparented to corral.
  virtual void onChildExit(Pid pid, ExitStatus status) = 0;
};

/// The seam between the supervisor and real processes, so the state machine runs against a
/// fake in unit tests. The real one (PosixSpawner) also owns reaping and control channels.
class ProcessSpawner {
 public:
  virtual ~ProcessSpawner() = default;
  virtual void setListener(ChildListener& listener) = 0;
  /// Gets ready to start the workers of `spec.generation` (the worker template, for the real
  /// spawner), then calls `ready`, possibly at once: the Supervisor starts a generation's
  /// workers from there. Spawning before `ready` works too, only more slowly.
  virtual void prepare(const SpawnSpec& spec, std::function<void()> ready) = 0;
  virtual SpawnResult spawn(const SpawnSpec& spec) = 0;
  /// Sends `signo` to the worker, or to its whole process group (its own children too).
  virtual void signal(Pid pid, int signo, bool whole_group) = 0;
  /// The worker's resident memory, if it can be read.
  virtual std::optional<std::uint64_t> residentBytes(Pid pid) const = 0;
};

}  // namespace corral

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "supervisor/exit_status.hpp"

namespace corral {

using Pid = pid_t;

/// What the supervisor asks for when it wants a worker. The spawner turns it into a command
/// line, an environment and settings (process/worker_specs.hpp).
struct WorkerRequest {
  int slot = 0;
  int generation = 0;    ///< the reload generation the worker belongs to
  int max_requests = 0;  ///< this worker's recycling limit, jitter included; 0 for none
  /// The generation whose worker template forks it: a SIGHUP starts a new template, a --reload
  /// change to the app's own files keeps the one there is.
  int template_generation = 0;
};

/// A spawn gives either a pid or the errno of what failed (folly's SubprocessSpawnError).
struct SpawnResult {
  Pid pid = -1;
  int error = 0;        ///< errno; 0 when `pid` is valid
  bool forked = false;  ///< forked from the worker template rather than started afresh
  bool ok() const { return error == 0; }
  static SpawnResult started(Pid pid, bool forked = false) { return {pid, 0, forked}; }
  static SpawnResult failed(int error) { return {-1, error, false}; }
};

/// What happens to children, as the spawner reports it. Implemented by the Supervisor.
class ChildEvents {
 public:
  virtual ~ChildEvents() = default;
  /// One control message from a worker (see worker/PROTOCOL.md).
  virtual void onChildMessage(Pid pid, std::string_view message) = 0;
  /// A child was reaped: a worker, or an orphan that was reparented to corral.
  virtual void onChildExit(Pid pid, const ExitStatus& status) = 0;
};

/// The seam between the supervisor and real processes, so that the state machine runs against a
/// fake in unit tests. The real one (process/posix_spawner.hpp) also owns reaping and the
/// workers' control channels.
///
/// Destroying a spawner does not stop the workers: corral returns only once they are gone, and
/// when corral dies they die with it (each has PR_SET_PDEATHSIG(SIGKILL)).
class ProcessSpawner {
 public:
  virtual ~ProcessSpawner() = default;
  /// Reports every child to `events` from now on, starting with the ones that exited before.
  virtual void attach(ChildEvents& events) = 0;
  /// Gets ready to start workers whose template_generation is `generation` (the real spawner
  /// boots a worker template, unless it has that one), then calls `ready`, never from inside
  /// this call. Spawning before `ready` works too, only more slowly.
  virtual void prepare(int generation, std::function<void()> ready) = 0;
  virtual SpawnResult spawn(const WorkerRequest& request) = 0;
  /// Sends `signo` to the worker, or to its whole process group (its own children too).
  virtual void signal(Pid pid, int signo, bool whole_group) = 0;
  /// The worker's resident memory, if it can be read.
  virtual std::optional<std::uint64_t> residentBytes(Pid pid) const = 0;
};

}  // namespace corral

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "supervisor/exit_status.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// Everything that can happen to the supervisor. Signals, workers' messages and exits, and its
/// own timers all arrive as one of these, and Supervisor::handle decides what each does in the
/// current state.
enum class EventKind : std::uint8_t {
  WorkerReady,         ///< READY from a worker: it serves
  WorkerHeartbeat,     ///< WATCHDOG from a worker: its event loop turns
  WorkerRecycle,       ///< RECYCLE from a worker: it reached its --max-requests
  WorkerOverMemory,    ///< above --max-worker-memory at two checks in a row
  WorkerDeadline,      ///< a worker's startup, heartbeat or kill-grace timer ran out
  WorkerExited,        ///< the Reaper collected a worker
  GracefulStop,        ///< SIGTERM
  QuickStop,           ///< SIGINT, SIGQUIT
  Reload,              ///< SIGHUP
  ScaleUp,             ///< SIGTTIN
  ScaleDown,           ///< SIGTTOU
  GenerationPrepared,  ///< the spawner is ready to start a generation's workers
  RespawnDue,          ///< a slot's respawn backoff ran out
  DrainDelayOver,      ///< --drain-delay has passed
  QueuesEmpty,         ///< the gated listen queues are empty, or no worker is left to serve them
  DrainDeadline,       ///< the graceful timeout, or a quick stop's grace, ran out
  CodeChanged,         ///< --reload: files of the app changed (reload/reloader.hpp)
};
inline constexpr std::size_t kEventCount = 17;

std::string_view eventName(EventKind kind);

/// One event and what it carries; the fields a kind does not use keep their defaults.
struct Event {
  explicit Event(EventKind k) : kind(k) {}

  EventKind kind;
  Pid pid = -1;                 ///< the worker, for Worker* events
  ExitStatus status{};          ///< WorkerExited
  std::string why;              ///< who asked, or the reason: "SIGTERM", "served 1000 requests"
  int exit_code = 0;            ///< QuickStop: what corral exits with
  int slot = -1;                ///< RespawnDue
  int generation = -1;          ///< GenerationPrepared
  bool fresh_template = false;  ///< CodeChanged: what the worker template imported changed too

  static Event worker(EventKind kind, Pid pid, std::string why = {});
  static Event workerExited(Pid pid, const ExitStatus& status);
  static Event signal(EventKind kind, std::string why, int exit_code = 0);
  static Event respawnDue(int slot);
  static Event generationPrepared(int generation);
  static Event timer(EventKind kind);
  /// `why`: what changed, for the log; `fresh_template`: the worker template must be started
  /// anew (a file it imported, or the workers' environment, changed).
  static Event codeChanged(std::string why, bool fresh_template);
};

}  // namespace corral

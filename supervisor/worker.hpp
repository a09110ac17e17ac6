#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "supervisor/clock.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

enum class WorkerState { Starting, Ready, Stopping };

/// Why corral ends (or ended) a worker; decides how its exit is logged and handled.
enum class StopCause {
  None,  ///< corral did not ask it to stop: its exit is a crash or a boot failure
  // Ends of one worker:
  Hung,
  StartupTimeout,
  Reload,
  Recycle,
  ScaleDown,
  Superseded,  ///< a replacement that newer code made pointless, or a booting outdated worker
  // Ends of the whole pool:
  Drain,
  Quick,
  BootFailure,
};

/// "This worker takes over from that one once READY, for this reason": one record on the
/// successor, so that the two sides can never disagree.
struct Succession {
  Pid replaces = -1;
  StopCause cause = StopCause::Recycle;  ///< what the replaced worker's exit will be logged as
};

/// One worker process, as the supervisor sees it.
struct Worker {
  int slot = 0;
  Pid pid = -1;
  int generation = 0;
  WorkerState state = WorkerState::Starting;
  StopCause cause = StopCause::None;
  TimePoint spawned_at;
  std::optional<TimePoint> ready_at;
  std::unique_ptr<Timer> deadline;  ///< startup, heartbeat, or kill grace: one at a time
  std::string error;                ///< BOOT_ERROR or CONFIG_ERROR text
  bool config_error = false;
  std::string load_error;                ///< LOAD_ERROR text (--reload): it serves a 503 with it
  std::optional<Succession> succession;  ///< set while it boots to replace another
  int memory_strikes = 0;                ///< checks in a row above --max-worker-memory
  // Facts the worker reports, for /metrics and /status; no decision depends on them.
  std::optional<TimePoint> last_heartbeat;  ///< READY, then each WATCHDOG
  std::optional<TimePoint> stop_sent_at;    ///< when corral told it to stop
  std::uint64_t requests_served = 0;        ///< from its last REQUESTS
  std::uint64_t requests_in_flight = 0;
};

}  // namespace corral

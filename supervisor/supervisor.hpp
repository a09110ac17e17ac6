#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "supervisor/backoff.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/metrics.hpp"
#include "supervisor/process_spawner.hpp"
#include "supervisor/worker_command.hpp"

namespace corral {

//          start()          all workers READY
//   (new) --------> Starting ----------------> Running <--------------+
//                      |                       |    ^                 |
//                      |                 SIGHUP|    | roll done, or   | SIGHUP again:
//                      |                       v    | new code failed | restart the roll
//                      |                     Reloading ---------------+
//                      | SIGTERM, SIGINT,        |
//                      | boot failure            | SIGTERM (graceful), SIGINT/SIGQUIT (quick)
//                      v                         v
//                   Draining <-------------------+ (also from Running)
//                      |   --drain-delay: /ready fails, workers still serve
//                      |   new connections gated; the listen queue served; workers told to stop
//                      |   a second SIGTERM, SIGINT or SIGQUIT: quick
//                      |   the graceful timeout: SIGKILL the rest
//                      v   last worker reaped
//                   Stopped  -> on_stopped(exit code)
enum class State { Starting, Running, Reloading, Draining, Stopped };

std::string_view stateName(State state);

/// What the admin endpoints show.
struct SupervisorStatus {
  State state = State::Starting;
  int target = 0;    ///< workers wanted
  int alive = 0;     ///< worker processes that exist, in any state
  int ready = 0;     ///< READY and not told to stop
  int required = 0;  ///< ready workers needed for /ready
  int generation = 0;
  std::string draining_reason;
  std::string reload_error;    ///< why the last reload was abandoned, if it was
  std::string workers_reason;  ///< how the worker count was chosen (--workers auto explains)
  std::size_t queued = 0;      ///< connections in the listen queues, not accepted yet
};

/// Keeps `config.workers` uvicorn workers serving: spawns them, respawns the ones that crash
/// (with backoff), replaces hung ones, recycles them (max requests, memory) and rolls them on
/// reload without a gap, and drains them all on request. All state lives on one thread; time
/// and processes come through the Clock and ProcessSpawner seams.
class Supervisor final : public ChildListener {
 public:
  /// How the supervisor reaches the world beyond its workers.
  struct Hooks {
    /// Called once, when the last worker is gone after a stop.
    std::function<void(int exit_code)> on_stopped;
    /// sd_notify-style messages for the service manager: READY=1, STATUS=..., STOPPING=1.
    std::function<void(std::string_view message)> notify;
    /// Stops new connections from reaching the listen queues; queued ones stay.
    std::function<void()> gate_listeners;
    /// Connections waiting in the listen queues, not yet accepted by a worker.
    std::function<std::size_t()> queued_connections;
    /// A uniform random number in [0, n], for --max-requests-jitter.
    std::function<int(int n)> random;
  };

  Supervisor(const Config& config, Clock& clock, ProcessSpawner& spawner, WorkerCommand command,
             Hooks hooks);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor() override;

  /// Spawns the workers.
  void start();
  /// SIGTERM: /ready fails at once; after --drain-delay, workers finish in-flight requests and
  /// stragglers are killed at the graceful timeout. A second request escalates to quickStop.
  void gracefulStop(std::string_view why);
  /// SIGINT, SIGQUIT: workers are stopped at once. `exit_code` is what corral exits with.
  void quickStop(std::string_view why, int exit_code);
  /// SIGHUP: replaces every worker with one running freshly imported code, --max-surge at a
  /// time, each new one READY before an old one is told to stop.
  void reload(std::string_view why);
  /// SIGTTIN / SIGTTOU: one worker more, one fewer (never below one).
  void scaleUp();
  void scaleDown();

  void onChildMessage(Pid pid, std::string_view message) override;
  void onChildExit(Pid pid, ExitStatus status) override;

  State state() const { return state_; }
  SupervisorStatus status() const;
  const Metrics& metrics() const { return metrics_; }
  Metrics& metrics() { return metrics_; }

 private:
  enum class WorkerState { Starting, Ready, Stopping };
  /// Why corral ended (or is ending) a worker; decides how its exit is logged and handled.
  enum class StopCause {
    None,
    Hung,
    StartupTimeout,
    Drain,
    Quick,
    BootFailure,  // the whole pool, or a failure
    Reload,
    Recycle,
    ScaleDown,
    Superseded  // one worker, replaced or removed
  };

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
    Pid replaces = -1;                          ///< the worker this one takes over from once READY
    StopCause replacing_for = StopCause::None;  ///< set while a successor boots for this one
    int memory_strikes = 0;
  };

  struct Slot {
    Backoff backoff;
    std::unique_ptr<Timer> respawn;
  };

  // supervisor.cpp: states, stops and the admin view
  void transitionTo(State next, std::string_view why);
  void notify(const std::string& message) const;
  void notifyStatus() const;
  void beginDrain();
  void awaitEmptyQueues();
  void stopAll(StopCause cause);
  void onDrainDeadline();
  void finishIfEmpty();
  int readyCount() const;

  // supervisor_workers.cpp: one worker's life
  void prepareGeneration(std::function<void()> then);
  void fillSlots();
  Worker* spawnWorker(int slot, Pid replaces = -1, StopCause why = StopCause::None);
  void onReady(Worker& worker);
  void onHeartbeat(Worker& worker);
  void onDeadline(Pid pid);
  void abortWorker(Worker& worker, StopCause cause, std::string_view what);
  void stopWorker(Worker& worker, StopCause cause, int signo, bool whole_group);
  void retireWorker(Worker& worker, StopCause cause);
  void handleWorkerGone(const Worker& worker, ExitStatus status);
  bool isBootFailure(const Worker& worker, ExitStatus status) const;
  void failBoot(const Worker& worker, ExitStatus status);
  bool slotNeedsWorker(int slot) const;
  void scheduleRespawn(int slot, std::optional<TimePoint> ready_at);
  void cancelRespawns();
  Worker* find(Pid pid);
  static std::string_view exitReason(const Worker& worker, ExitStatus status);

  // supervisor_roll.cpp: reload, scaling, recycling
  void continueRoll();
  void abortRoll(std::string why);
  void replaceWorker(Worker& worker, StopCause why, std::string_view what);
  void supersede(Worker& successor);
  void onSuccessorReady(Worker& successor);
  void onSuccessorFailed(const Worker& successor, ExitStatus status);
  void checkMemory();

  const Config& config_;
  Clock& clock_;
  ProcessSpawner& spawner_;
  WorkerCommand command_;
  Hooks hooks_;

  State state_ = State::Starting;
  int target_;
  int generation_ = 0;
  std::string draining_reason_;
  std::string reload_error_;
  bool quick_ = false;
  bool ever_ready_ = false;
  bool preparing_ = false;  ///< the spawner is getting ready for generation_ (prepare())
  int exit_code_ = 0;
  std::map<Pid, Worker> workers_;
  std::vector<Slot> slots_;
  std::unique_ptr<Timer> drain_deadline_;
  std::unique_ptr<Timer> drain_delay_;
  std::unique_ptr<Timer> queue_poll_;
  std::unique_ptr<Timer> memory_poll_;
  Metrics metrics_;
};

}  // namespace corral

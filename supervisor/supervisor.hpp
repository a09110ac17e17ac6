#pragma once

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
//   (new) --------> Starting ----------------> Running
//                      |                          |
//                      | SIGTERM / SIGINT / boot  | SIGTERM (graceful) or
//                      | failure                  | SIGINT, SIGQUIT (quick)
//                      v                          v
//                   Draining <--------------------+
//                      |   a second SIGTERM, SIGINT or SIGQUIT: quick
//                      |   the graceful timeout: SIGKILL the rest
//                      v   last worker reaped
//                   Stopped  -> on_stopped(exit code)
enum class State { Starting, Running, Draining, Stopped };

std::string_view stateName(State state);

/// What the admin endpoints show.
struct SupervisorStatus {
  State state = State::Starting;
  int target = 0;    ///< workers wanted
  int alive = 0;     ///< worker processes that exist, in any state
  int ready = 0;     ///< READY and not told to stop
  int required = 0;  ///< ready workers needed for /ready
  std::string draining_reason;
};

/// Keeps `config.workers` uvicorn workers serving: spawns them, respawns the ones that crash
/// (with backoff), replaces hung ones, and drains them all on request. All state lives on one
/// thread; time and processes come through the Clock and ProcessSpawner seams.
class Supervisor final : public ChildListener {
 public:
  /// How the supervisor tells the world about itself.
  struct Hooks {
    /// Called once, when the last worker is gone after a stop.
    std::function<void(int exit_code)> on_stopped;
    /// sd_notify-style messages for the service manager: READY=1, STATUS=..., STOPPING=1.
    std::function<void(std::string_view message)> notify;
  };

  Supervisor(const Config& config, Clock& clock, ProcessSpawner& spawner, WorkerCommand command,
             Hooks hooks);
  ~Supervisor() override;

  /// Spawns the workers.
  void start();
  /// SIGTERM: /ready fails at once, workers finish in-flight requests, stragglers are killed
  /// at the graceful timeout. A second request escalates to quickStop.
  void gracefulStop(std::string_view why);
  /// SIGINT, SIGQUIT: workers are stopped at once. `exit_code` is what corral exits with.
  void quickStop(std::string_view why, int exit_code);

  void onChildMessage(Pid pid, std::string_view message) override;
  void onChildExit(Pid pid, ExitStatus status) override;

  State state() const { return state_; }
  SupervisorStatus status() const;
  const Metrics& metrics() const { return metrics_; }
  Metrics& metrics() { return metrics_; }

 private:
  enum class WorkerState { Starting, Ready, Stopping };
  /// Why corral ended (or is ending) a worker; decides how its exit is logged and handled.
  enum class StopCause { None, Hung, StartupTimeout, Drain, Quick, BootFailure };

  struct Worker {
    int slot = 0;
    Pid pid = -1;
    WorkerState state = WorkerState::Starting;
    StopCause cause = StopCause::None;
    TimePoint spawned_at;
    std::optional<TimePoint> ready_at;
    std::unique_ptr<Timer> deadline;  ///< startup, heartbeat, or kill grace: one at a time
    std::string error;                ///< BOOT_ERROR or CONFIG_ERROR text
    bool config_error = false;
  };

  struct Slot {
    Backoff backoff;
    std::unique_ptr<Timer> respawn;
  };

  void transitionTo(State next, std::string_view why);
  void notify(const std::string& message) const;
  void notifyStatus() const;
  void spawnWorker(int slot);
  void onReady(Worker& worker);
  void onHeartbeat(Worker& worker);
  void onDeadline(Pid pid);
  void onDrainDeadline();
  void abortWorker(Worker& worker, StopCause cause, std::string_view what);
  void stopWorker(Worker& worker, StopCause cause, int signo, bool whole_group);
  void stopAll(StopCause cause);
  void handleWorkerGone(const Worker& worker, ExitStatus status);
  bool isBootFailure(const Worker& worker, ExitStatus status) const;
  void failBoot(const Worker& worker, ExitStatus status);
  void scheduleRespawn(int slot, std::optional<TimePoint> ready_at);
  void cancelRespawns();
  void finishIfEmpty();
  static std::string_view exitReason(const Worker& worker, ExitStatus status);
  int readyCount() const;

  const Config& config_;
  Clock& clock_;
  ProcessSpawner& spawner_;
  WorkerCommand command_;
  Hooks hooks_;

  State state_ = State::Starting;
  std::string draining_reason_;
  bool quick_ = false;
  bool ever_ready_ = false;
  int exit_code_ = 0;
  std::map<Pid, Worker> workers_;
  std::vector<Slot> slots_;
  std::unique_ptr<Timer> drain_deadline_;
  Metrics metrics_;
};

}  // namespace corral

#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "supervisor/backoff.hpp"
#include "supervisor/clock.hpp"
#include "supervisor/event.hpp"
#include "supervisor/metrics.hpp"
#include "supervisor/process_spawner.hpp"
#include "supervisor/state.hpp"
#include "supervisor/worker_pool.hpp"

namespace corral {

/// One worker, as /status and /metrics show it.
struct WorkerStatus {
  int slot = 0;
  Pid pid = -1;
  int generation = 0;
  std::string_view state;  ///< "starting", "ready" or "draining"
  double age_seconds = 0;
  int restarts = 0;       ///< workers started in its slot before it (crashes, reloads, recycling)
  std::string last_exit;  ///< how the slot's previous worker ended, if one did
  std::string last_exit_reason;  ///< and why (a corral_worker_exits_total reason)
  std::optional<std::uint64_t> resident_bytes;
  std::uint64_t requests_served = 0;
  std::uint64_t requests_in_flight = 0;
  std::optional<double> heartbeat_age_seconds;  ///< since READY or the last heartbeat
};

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
  int starting = 0;            ///< workers booting
  int draining = 0;            ///< workers told to stop
  double uptime_seconds = 0;
  std::vector<WorkerStatus> workers;  ///< in slot order
};

/// What the supervisor tells the service manager; runtime/sd_notify.cpp encodes it.
struct ServiceNotice {
  enum class Kind { Ready, Reloading, Stopping, Status };
  Kind kind = Kind::Status;
  Duration extend{0};  ///< Stopping: how long the stop may take
  std::string status;  ///< Status: one line for `systemctl status`

  static ServiceNotice ready() { return {Kind::Ready, {}, {}}; }
  static ServiceNotice reloading() { return {Kind::Reloading, {}, {}}; }
  static ServiceNotice stopping(Duration extend) { return {Kind::Stopping, extend, {}}; }
  static ServiceNotice statusLine(std::string text) { return {Kind::Status, {}, std::move(text)}; }
};

/// What the supervisor does about one event in one state (the table in supervisor.cpp).
enum class Action : std::uint8_t {
  Unset,     ///< a hole in the table: its unit test finds none
  Nop,       ///< deliberately nothing
  Ready,     ///< a worker serves: it may complete the start or move the roll on
  Beat,      ///< re-arm a worker's heartbeat deadline
  Replace,   ///< start a successor for a worker (recycling), which it serves until READY
  Expire,    ///< a worker's deadline: abort the booting or hung one, kill the stopping one
  Respawn,   ///< a worker is gone while serving: refill its slot (with backoff), or fail boot
  Bury,      ///< a worker is gone while stopping: count it
  BuryLast,  ///< as Bury, and stop once it was the last
  Drain,     ///< start a graceful drain (DrainDelay or DrainGate)
  Escalate,  ///< SIGTERM again while draining: a quick stop
  Hurry,     ///< a quick stop
  Kill,      ///< SIGKILL every worker left
  Roll,      ///< start a rolling reload to a new generation (or restart the one under way)
  Refuse,    ///< log that corral is stopping and does not do this
  Grow,      ///< one worker more
  Shrink,    ///< one worker fewer
  Fill,      ///< the generation is prepared: start its workers
  Resume,    ///< the generation is prepared: start its missing workers and move the roll on
  Revive,    ///< a slot's backoff ran out: respawn if the slot still needs a worker
  Gate,      ///< gate new connections, wait for the listen queues to empty
  Stop,      ///< tell every worker to stop and finish what is in flight
  Restart,   ///< --reload: a new generation replaces every worker at once (no overlap)
  Swap,      ///< the restart's generation is prepared: stop the outdated workers, start new
};

std::string_view actionName(Action action);

/// Keeps `config.workers` uvicorn workers serving: spawns them, respawns the ones that crash
/// (with backoff), replaces hung ones, recycles them (max requests, memory), rolls them on
/// reload without a gap, and drains them all on request.
///
/// Every event goes through handle(), which looks up what to do in one state x event table and
/// does it; only transitionTo() changes the state. All of it runs on one thread; time and
/// processes come through the Clock and ProcessSpawner seams, the rest of the world through
/// Hooks.
class Supervisor final : public ChildEvents {
 public:
  /// How the supervisor reaches the world beyond its workers.
  struct Hooks {
    /// Called once, when the last worker is gone after a stop.
    std::function<void(int exit_code)> on_stopped;
    /// For the service manager (sd_notify).
    std::function<void(const ServiceNotice& notice)> notify;
    /// Stops new connections from reaching the listen queues; queued ones stay.
    std::function<void()> gate_listeners;
    /// Connections waiting in the listen queues, not yet accepted by a worker.
    std::function<std::size_t()> queued_connections;
    /// A uniform random number in [0, n], for --max-requests-jitter.
    std::function<int(int n)> random;
  };

  Supervisor(const Config& config, Clock& clock, ProcessSpawner& spawner, Hooks hooks);
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor() override;

  /// Prepares the first generation, whose workers start once it is ready.
  void start();
  /// Does what `event` calls for in the current state.
  void handle(const Event& event);

  void onChildMessage(Pid pid, std::string_view message) override;
  void onChildExit(Pid pid, const ExitStatus& status) override;

  State state() const { return state_; }
  SupervisorStatus status() const;
  const Metrics& metrics() const { return metrics_; }

  /// The decision for `kind` in `state`: the table, for its unit test and the trace log.
  static Action decide(State state, EventKind kind);

 private:
  struct Slot {
    Backoff backoff;
    std::unique_ptr<Timer> respawn;
    int spawns = 0;         ///< workers started in it
    std::string last_exit;  ///< how its last worker to exit ended
    std::string last_reason;
  };

  // supervisor.cpp: dispatch, states, the admin view
  void perform(Action action, const Event& event);
  void transitionTo(State next, std::string_view why);
  void notify(const ServiceNotice& notice) const;
  void notifyStatus() const;
  void afterPoolChange();
  void refuse(const Event& event) const;

  // supervisor_workers.cpp: one worker's life
  void prepareGeneration();
  void fill(int generation);
  void fillSlots();
  Worker* spawnWorker(int slot, std::optional<Succession> succession = std::nullopt);
  void markReady(Pid pid);
  void heartbeat(Pid pid);
  void expire(Pid pid);
  void abortWorker(Worker& worker, StopCause cause, std::string_view what);
  void stopWorker(Worker& worker, StopCause cause, int signo, bool whole_group);
  void retireWorker(Worker& worker, StopCause cause);
  Worker collect(const Event& exit);
  WorkerStatus workerStatus(const Worker& worker, TimePoint now) const;
  void respawnAfter(const Worker& worker, const ExitStatus& status);
  bool isBootFailure(const Worker& worker, const ExitStatus& status) const;
  void failBoot(const Worker& worker, const ExitStatus& status);
  bool slotNeedsWorker(int slot) const;
  void scheduleRespawn(int slot, std::optional<TimePoint> ready_at);
  void revive(int slot);
  void cancelRespawns();

  // supervisor_drain.cpp: the ways out
  void drain(const Event& event);
  void gate();
  void pollQueues();
  void stopWorkers();
  void quickStop(std::string why, int exit_code);
  void killAll(std::string_view why);
  void finishIfEmpty();

  // supervisor_roll.cpp: reload, scaling, recycling
  void roll(const Event& event);
  void resume(int generation);
  void continueRoll();
  void abortRoll(std::string why);
  void supersede(Worker& successor);
  void replace(const Event& event);
  void onSuccessorReady(Worker& successor);
  void onSuccessorFailed(const Worker& successor, const ExitStatus& status);
  void grow();
  void shrink();
  void checkMemory();

  // supervisor_restart.cpp: --reload
  void restart(const Event& event);
  void swap(int generation);
  void finishRestart();
  void reportLoadError(const Worker& worker);

  const Config& config_;
  Clock& clock_;
  ProcessSpawner& spawner_;
  Hooks hooks_;

  State state_ = State::Starting;
  int target_;
  int generation_ = 0;
  int prepared_generation_ = -1;  ///< the newest generation the spawner is ready for
  int template_generation_ = 0;   ///< the generation whose worker template forks workers
  int load_error_shown_ = -1;     ///< the last generation whose load error was logged
  std::string draining_reason_;
  std::string reload_error_;
  bool ever_ready_ = false;
  TimePoint started_at_;
  int exit_code_ = 0;
  WorkerPool pool_;
  std::vector<Slot> slots_;
  std::unique_ptr<Timer> drain_delay_;     ///< DrainDelay's end
  std::unique_ptr<Timer> queue_poll_;      ///< DrainGate's look at the listen queues
  std::unique_ptr<Timer> drain_deadline_;  ///< DrainGate/DrainStop/DrainQuick's end
  std::unique_ptr<Timer> memory_poll_;
  Metrics metrics_;
};

}  // namespace corral

#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace corral {

/// The supervisor's states; supervisor.cpp holds what every event does in each of them.
///
///              start()           all READY          roll done, or new code failed
///     (new) ----------> Starting ----------> Running <-----------------------------+
///                          |                    | SIGHUP                          |
///                          | SIGHUP             v                                 |
///                          +-------------> Reloading ----------------------------->+
///                                            ^    | SIGHUP: the roll restarts
///                                            +----+
///
///   --reload: a change to the app's files (CodeChanged)
///     Starting, Running, Reloading, Restarting --> Restarting --(new workers READY)--> Running
///
///   Starting, Running, Reloading, Restarting:
///     SIGTERM, --drain-delay > 0 --> DrainDelay --(delay over)--> DrainGate
///     SIGTERM, no drain delay -----------------------------------> DrainGate
///     SIGINT, SIGQUIT ---------------------------------------------> DrainQuick
///     a first boot fails -------------------------------------------> DrainKill
///   DrainGate --(listen queues empty, or no worker left)--> DrainStop
///   DrainDelay, DrainGate, DrainStop --(SIGTERM, SIGINT, SIGQUIT)--> DrainQuick
///   DrainQuick --(SIGTERM, SIGINT, SIGQUIT)--> DrainKill
///   DrainGate, DrainStop, DrainQuick --(the drain's deadline)--> DrainKill
///   DrainGate, DrainStop, DrainQuick, DrainKill --(last worker reaped)--> Stopped
///     --> Hooks::on_stopped(exit code)
enum class State : std::uint8_t {
  Starting,    ///< the first workers boot (after the spawner prepares their generation)
  Running,     ///< every slot has a READY worker of the current generation
  Reloading,   ///< SIGHUP: slots move to new workers, --max-surge at a time
  Restarting,  ///< --reload saw a change: every worker is replaced at once by new code
  DrainDelay,  ///< SIGTERM: /ready fails while workers keep serving (--drain-delay)
  DrainGate,   ///< new connections are gated; the listen queues are served first
  DrainStop,   ///< workers were told to stop and finish in flight, until the graceful timeout
  DrainQuick,  ///< SIGINT/SIGQUIT: workers were interrupted and get a short grace
  DrainKill,   ///< SIGKILL was sent to the workers left; waiting to reap them
  Stopped,     ///< every worker is gone
};
inline constexpr std::size_t kStateCount = 10;

/// "Starting", "DrainGate", ...: the precise state, as transitions are logged.
std::string_view stateName(State state);

/// "starting", "running", "reloading" (Restarting too), "draining" (every Drain* state) or
/// "stopped": what the admin endpoints, metrics and the service manager show.
std::string_view publicStateName(State state);

/// True from SIGTERM (or SIGINT, SIGQUIT, a boot failure) on.
inline bool isStopping(State state) {
  return state >= State::DrainDelay;
}

}  // namespace corral

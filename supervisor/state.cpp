#include "supervisor/state.hpp"

namespace corral {

std::string_view stateName(State state) {
  switch (state) {
    case State::Starting: return "Starting";
    case State::Running: return "Running";
    case State::Reloading: return "Reloading";
    case State::Restarting: return "Restarting";
    case State::DrainDelay: return "DrainDelay";
    case State::DrainGate: return "DrainGate";
    case State::DrainStop: return "DrainStop";
    case State::DrainQuick: return "DrainQuick";
    case State::DrainKill: return "DrainKill";
    case State::Stopped: return "Stopped";
  }
  return "?";
}

std::string_view publicStateName(State state) {
  switch (state) {
    case State::Starting: return "starting";
    case State::Running: return "running";
    case State::Reloading:
    case State::Restarting: return "reloading";
    case State::Stopped: return "stopped";
    default: return "draining";
  }
}

}  // namespace corral

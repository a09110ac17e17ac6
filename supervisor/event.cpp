#include "supervisor/event.hpp"

#include <utility>

namespace corral {

std::string_view eventName(EventKind kind) {
  switch (kind) {
    case EventKind::WorkerReady: return "WorkerReady";
    case EventKind::WorkerHeartbeat: return "WorkerHeartbeat";
    case EventKind::WorkerRecycle: return "WorkerRecycle";
    case EventKind::WorkerOverMemory: return "WorkerOverMemory";
    case EventKind::WorkerDeadline: return "WorkerDeadline";
    case EventKind::WorkerExited: return "WorkerExited";
    case EventKind::GracefulStop: return "GracefulStop";
    case EventKind::QuickStop: return "QuickStop";
    case EventKind::Reload: return "Reload";
    case EventKind::ScaleUp: return "ScaleUp";
    case EventKind::ScaleDown: return "ScaleDown";
    case EventKind::GenerationPrepared: return "GenerationPrepared";
    case EventKind::RespawnDue: return "RespawnDue";
    case EventKind::DrainDelayOver: return "DrainDelayOver";
    case EventKind::QueuesEmpty: return "QueuesEmpty";
    case EventKind::DrainDeadline: return "DrainDeadline";
    case EventKind::CodeChanged: return "CodeChanged";
  }
  return "?";
}

Event Event::worker(EventKind kind, Pid pid, std::string why) {
  Event event{kind};
  event.pid = pid;
  event.why = std::move(why);
  return event;
}

Event Event::workerExited(Pid pid, const ExitStatus& status) {
  Event event{EventKind::WorkerExited};
  event.pid = pid;
  event.status = status;
  return event;
}

Event Event::signal(EventKind kind, std::string why, int exit_code) {
  Event event{kind};
  event.why = std::move(why);
  event.exit_code = exit_code;
  return event;
}

Event Event::respawnDue(int slot) {
  Event event{EventKind::RespawnDue};
  event.slot = slot;
  return event;
}

Event Event::generationPrepared(int generation) {
  Event event{EventKind::GenerationPrepared};
  event.generation = generation;
  return event;
}

Event Event::timer(EventKind kind) {
  return Event{kind};
}

Event Event::codeChanged(std::string why, bool fresh_template) {
  Event event{EventKind::CodeChanged};
  event.why = std::move(why);
  event.fresh_template = fresh_template;
  return event;
}

}  // namespace corral

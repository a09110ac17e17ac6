#include "supervisor/metrics.hpp"

#include <fmt/format.h>

#include "supervisor/supervisor.hpp"

namespace corral {
namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string renderPrometheus(const Metrics& m, const SupervisorStatus& s) {
  std::string out;
  family(out, "corral_workers", "gauge", "Worker processes by state.");
  out += fmt::format("corral_workers{{state=\"ready\"}} {}\n", s.ready);
  out += fmt::format("corral_workers{{state=\"alive\"}} {}\n", s.alive);
  out += fmt::format("corral_workers{{state=\"desired\"}} {}\n", s.target);
  family(out, "corral_listen_queue_connections", "gauge",
         "Connections in the listen queues that no worker has accepted yet.");
  out += fmt::format("corral_listen_queue_connections {}\n", s.queued);
  family(out, "corral_state", "gauge", "1 for the supervisor's current state.");
  for (const State state :
       {State::Starting, State::Running, State::Reloading, State::Draining, State::Stopped}) {
    out += fmt::format("corral_state{{state=\"{}\"}} {}\n", stateName(state),
                       state == s.state ? 1 : 0);
  }
  family(out, "corral_worker_spawns_total", "counter", "Workers started.");
  out += fmt::format("corral_worker_spawns_total {}\n", m.worker_spawns);
  family(out, "corral_worker_forks_total", "counter",
         "Workers forked from the worker template (the other spawns started afresh).");
  out += fmt::format("corral_worker_forks_total {}\n", m.worker_forks);
  family(out, "corral_worker_spawn_failures_total", "counter",
         "Workers that could not be started.");
  out += fmt::format("corral_worker_spawn_failures_total {}\n", m.spawn_failures);
  family(out, "corral_worker_exits_total", "counter", "Worker exits by reason.");
  for (const auto& [reason, count] : m.worker_exits) {
    out += fmt::format("corral_worker_exits_total{{reason=\"{}\"}} {}\n", reason, count);
  }
  family(out, "corral_orphans_reaped_total", "counter", "Reparented descendants reaped.");
  out += fmt::format("corral_orphans_reaped_total {}\n", m.orphans_reaped);
  family(out, "corral_reload_failures_total", "counter",
         "Reloads abandoned: new code did not boot.");
  out += fmt::format("corral_reload_failures_total {}\n", m.reload_failures);
  family(out, "corral_generation", "gauge", "Reloads requested since start.");
  out += fmt::format("corral_generation {}\n", s.generation);
  family(out, "corral_admin_requests_total", "counter", "Requests answered on the admin port.");
  out += fmt::format("corral_admin_requests_total {}\n", m.admin_requests);
  return out;
}

}  // namespace corral

#include "admin/prometheus.hpp"

#include <fmt/format.h>

#include <array>

namespace corral {
namespace {

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  template <typename Number>
  void sample(std::string_view name, Number value) {
    out_ += fmt::format("{} {}\n", name, value);
  }
  template <typename Number>
  void sample(std::string_view name, std::string_view label, std::string_view label_value,
              Number value) {
    out_ += fmt::format("{}{{{}=\"{}\"}} {}\n", name, label, label_value, value);
  }
  /// One family of a single sample.
  template <typename Number>
  void single(std::string_view name, std::string_view type, std::string_view help, Number value) {
    family(name, type, help);
    sample(name, value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string renderPrometheus(const Metrics& m, const SupervisorStatus& s,
                             std::uint64_t admin_requests) {
  Exposition out;
  out.family("corral_workers", "gauge", "Worker processes by state.");
  out.sample("corral_workers", "state", "ready", s.ready);
  out.sample("corral_workers", "state", "alive", s.alive);
  out.sample("corral_workers", "state", "desired", s.target);
  out.single("corral_listen_queue_connections", "gauge",
             "Connections in the listen queues that no worker has accepted yet.", s.queued);
  out.family("corral_state", "gauge", "1 for the supervisor's current state.");
  for (const std::string_view state : {"starting", "running", "reloading", "draining", "stopped"}) {
    out.sample("corral_state", "state", state, state == publicStateName(s.state) ? 1 : 0);
  }
  out.single("corral_worker_spawns_total", "counter", "Workers started.", m.worker_spawns);
  out.single("corral_worker_forks_total", "counter",
             "Workers forked from the worker template (the other spawns started afresh).",
             m.worker_forks);
  out.single("corral_worker_spawn_failures_total", "counter", "Workers that could not be started.",
             m.spawn_failures);
  out.family("corral_worker_exits_total", "counter", "Worker exits by reason.");
  for (const auto& [reason, count] : m.worker_exits) {
    out.sample("corral_worker_exits_total", "reason", reason, count);
  }
  out.single("corral_orphans_reaped_total", "counter", "Reparented descendants reaped.",
             m.orphans_reaped);
  out.single("corral_reload_failures_total", "counter", "Reloads abandoned: new code did not boot.",
             m.reload_failures);
  out.single("corral_generation", "gauge", "Reloads requested since start.", s.generation);
  out.single("corral_admin_requests_total", "counter", "Requests answered on the admin port.",
             admin_requests);
  return out.take();
}

}  // namespace corral

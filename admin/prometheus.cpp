#include "admin/prometheus.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <vector>

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
    out_ += fmt::format("{}{{{}=\"{}\"}} {}\n", name, label, escapeLabelValue(label_value), value);
  }
  /// One family of a single sample.
  template <typename Number>
  void single(std::string_view name, std::string_view type, std::string_view help, Number value) {
    family(name, type, help);
    sample(name, value);
  }
  void histogram(std::string_view name, std::string_view help, const Histogram& h) {
    family(name, "histogram", help);
    for (std::size_t i = 0; i < h.bounds.size(); ++i) {
      out_ += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds[i], h.counts[i]);
    }
    out_ += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, h.count);
    out_ += fmt::format("{}_sum {}\n{}_count {}\n", name, h.sum, name, h.count);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// A slot has one worker, or two for a moment while one replaces the other; its series add
// theirs up (a label per pid would make a new series at every replacement).
struct SlotFigures {
  std::optional<std::uint64_t> resident_bytes;
  std::optional<double> heartbeat_age;  ///< the freshest of its workers'
  std::uint64_t requests = 0;
  std::uint64_t in_flight = 0;
};

std::map<int, SlotFigures> bySlot(const AdminView& view) {
  std::map<int, SlotFigures> slots;
  for (const auto& [slot, served] : view.metrics.retired_requests) slots[slot].requests = served;
  for (const WorkerStatus& worker : view.status.workers) {
    SlotFigures& figures = slots[worker.slot];
    if (worker.resident_bytes) {
      figures.resident_bytes = figures.resident_bytes.value_or(0) + *worker.resident_bytes;
    }
    if (worker.heartbeat_age_seconds) {
      figures.heartbeat_age =
          std::min(figures.heartbeat_age.value_or(*worker.heartbeat_age_seconds),
                   *worker.heartbeat_age_seconds);
    }
    figures.requests += worker.requests_served;
    figures.in_flight += worker.requests_in_flight;
  }
  return slots;
}

void renderWorkers(Exposition& out, const AdminView& view) {
  const SupervisorStatus& s = view.status;
  out.family("corral_workers", "gauge", "Worker processes by state.");
  out.sample("corral_workers", "state", "starting", s.starting);
  out.sample("corral_workers", "state", "ready", s.ready);
  out.sample("corral_workers", "state", "draining", s.draining);
  out.single("corral_workers_desired", "gauge",
             "Workers corral keeps (--workers, SIGTTIN, SIGTTOU).", s.target);
  const auto slots = bySlot(view);
  const auto per_slot = [&](std::string_view name, std::string_view type, std::string_view help,
                            auto value_of) {
    out.family(name, type, help);
    for (const auto& [slot, figures] : slots) {
      if (const auto value = value_of(figures)) {
        out.sample(name, "worker", std::to_string(slot), *value);
      }
    }
  };
  per_slot("corral_worker_resident_memory_bytes", "gauge",
           "Resident memory of the worker in each slot.",
           [](const SlotFigures& f) { return f.resident_bytes; });
  per_slot("corral_worker_heartbeat_age_seconds", "gauge",
           "Time since the worker in each slot was last heard from its event loop.",
           [](const SlotFigures& f) { return f.heartbeat_age; });
  per_slot("corral_worker_requests_total", "counter",
           "HTTP requests answered by the workers of each slot, as they last reported.",
           [](const SlotFigures& f) { return std::optional(f.requests); });
  per_slot("corral_worker_requests_in_flight", "gauge",
           "HTTP requests the worker in each slot is answering, as it last reported.",
           [](const SlotFigures& f) { return std::optional(f.in_flight); });
}

void renderListeners(Exposition& out, const AdminView& view) {
  out.family("corral_listen_queue_connections", "gauge",
             "Connections in a listen queue that no worker has accepted yet (TCP).");
  for (const ListenerStats& listener : view.listeners) {
    out.sample("corral_listen_queue_connections", "listener", listener.name, listener.queued);
  }
  out.family("corral_listen_queue_limit", "gauge", "The listen queue's length (--backlog).");
  for (const ListenerStats& listener : view.listeners) {
    out.sample("corral_listen_queue_limit", "listener", listener.name, listener.limit);
  }
}

void renderProcess(Exposition& out, const ProcessStats& p) {
  out.single("process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.", p.cpu_seconds);
  out.single("process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds);
  out.single("process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds);
  out.single("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
             p.virtual_bytes);
  out.single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             p.resident_bytes);
  out.single("process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.", p.start_time_seconds);
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string renderPrometheus(const AdminView& view) {
  const Metrics& m = view.metrics;
  const SupervisorStatus& s = view.status;
  Exposition out;
  out.family("corral_build_info", "gauge", "corral's version, as a label; the value is 1.");
  out.sample("corral_build_info", "version", CORRAL_VERSION, 1);
  out.family("corral_state", "gauge", "1 for the supervisor's current state.");
  for (const std::string_view state : {"starting", "running", "reloading", "draining", "stopped"}) {
    out.sample("corral_state", "state", state, state == publicStateName(s.state) ? 1 : 0);
  }
  renderWorkers(out, view);
  renderListeners(out, view);
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
  out.histogram("corral_worker_startup_seconds", "Time from a worker's spawn to its READY.",
                m.worker_startup);
  out.histogram("corral_drain_duration_seconds",
                "Time a worker took to finish its requests and exit once told to stop "
                "(drain, reload, recycling, scaling down).",
                m.drain_duration);
  out.single("corral_orphans_reaped_total", "counter", "Reparented descendants reaped.",
             m.orphans_reaped);
  out.single("corral_reloads_total", "counter", "Reloads (SIGHUP) started.", m.reloads);
  out.single("corral_reload_failures_total", "counter", "Reloads abandoned: new code did not boot.",
             m.reload_failures);
  out.single("corral_admin_requests_total", "counter", "Requests answered on the admin port.",
             view.admin_requests);
  if (view.process) renderProcess(out, *view.process);
  return out.take();
}

}  // namespace corral

#include "admin/status.hpp"

#include <cmath>

namespace corral {
namespace {

json::Value optionalNumber(const std::optional<double>& value) {
  if (!value) return nullptr;
  return std::round(*value * 1000.0) / 1000.0;  // milliseconds are plenty
}

template <typename T>
json::Value orNull(const std::optional<T>& value) {
  if (!value) return nullptr;
  return json::Value(*value);
}

json::Object workerJson(const WorkerStatus& w) {
  json::Object last_exit;
  if (!w.last_exit.empty()) {
    last_exit = {{"status", w.last_exit}, {"reason", w.last_exit_reason}};
  }
  return {
      {"slot", w.slot},
      {"pid", w.pid},
      {"generation", w.generation},
      {"state", w.state},
      {"age_seconds", optionalNumber(w.age_seconds)},
      {"restarts", w.restarts},
      {"last_exit", last_exit.empty() ? json::Value(nullptr) : json::Value(std::move(last_exit))},
      {"resident_memory_bytes", orNull(w.resident_bytes)},
      {"requests_served", w.requests_served},
      {"requests_in_flight", w.requests_in_flight},
      {"heartbeat_age_seconds", optionalNumber(w.heartbeat_age_seconds)},
  };
}

}  // namespace

std::string statusBody(const AdminView& view) {
  const SupervisorStatus& s = view.status;
  json::Array workers;
  for (const WorkerStatus& worker : s.workers) workers.emplace_back(workerJson(worker));
  json::Object body{
      {"version", CORRAL_VERSION},
      {"state", publicStateName(s.state)},
      {"uptime_seconds", optionalNumber(s.uptime_seconds)},
      {"generation", s.generation},
      {"workers_desired", s.target},
      {"workers_reason", s.workers_reason},
  };
  if (!s.draining_reason.empty()) body["draining_reason"] = s.draining_reason;
  if (!s.reload_error.empty()) body["reload_error"] = s.reload_error;
  body["settings"] = view.settings != nullptr ? json::Value(*view.settings) : json::Value(nullptr);
  body["workers"] = std::move(workers);
  return json::write(body) + "\n";
}

}  // namespace corral

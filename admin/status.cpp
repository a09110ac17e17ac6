#include "admin/status.hpp"

#include <cmath>

#include "config/duration.hpp"
#include "config/size.hpp"

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

json::Value sizeOrNull(const std::optional<std::uint64_t>& bytes) {
  if (!bytes) return nullptr;
  return json::Value(formatSize(*bytes));
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

json::Object settingsJson(const Config& c) {
  json::Array binds;
  for (const BindAddress& bind : c.binds) binds.emplace_back(bind.str());
  return {
      {"app", c.app},
      {"workers", c.workers},
      {"bind", std::move(binds)},
      {"admin_bind", c.admin_bind ? json::Value(c.admin_bind->str()) : json::Value(nullptr)},
      {"backlog", c.backlog},
      {"worker_memory_budget", sizeOrNull(c.worker_memory_budget)},
      {"min_ready", c.min_ready},
      {"max_requests", c.max_requests},
      {"max_requests_jitter", c.max_requests_jitter},
      {"max_worker_memory", sizeOrNull(c.max_worker_memory)},
      {"max_surge", c.max_surge},
      {"python", c.python},
      {"start_method", c.start_method},
      {"timeout", formatDuration(c.timeout)},
      {"graceful_timeout", formatDuration(c.graceful_timeout)},
      {"startup_timeout", formatDuration(c.startup_timeout)},
      {"drain_delay", formatDuration(c.drain_delay)},
      {"timeout_keep_alive", formatDuration(c.timeout_keep_alive)},
      {"limit_concurrency", orNull(c.limit_concurrency)},
      {"proxy_headers", orNull(c.proxy_headers)},
      {"forwarded_allow_ips", orNull(c.forwarded_allow_ips)},
      {"root_path", c.root_path},
      {"lifespan", c.lifespan},
      {"http", c.http},
      {"loop", c.loop},
      {"factory", c.factory},
      {"access_log", c.access_log},
      {"app_dir", c.app_dir},
      {"log_level", logLevelName(c.log_level)},
      {"log_format", c.log_format == LogFormat::Json ? "json" : "text"},
      {"log_config", c.log_config.empty() ? json::Value(nullptr) : json::Value(c.log_config)},
      {"pidfile", c.pidfile.empty() ? json::Value(nullptr) : json::Value(c.pidfile)},
      {"user", c.user ? json::Value(c.user->name) : json::Value(nullptr)},
  };
}

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

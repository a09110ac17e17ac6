#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/http.hpp"
#include "admin/process_stats.hpp"
#include "supervisor/metrics.hpp"
#include "supervisor/supervisor.hpp"
#include "util/json.hpp"

namespace corral {

/// One listening socket's queue, for /metrics.
struct ListenerStats {
  std::string name;        ///< its URL, as logged: "http://127.0.0.1:8000", "unix:/run/app.sock"
  std::size_t queued = 0;  ///< connections no worker has accepted yet (TCP)
  int limit = 0;           ///< the backlog it was given
};

/// What the admin endpoints are computed from.
struct AdminView {
  const SupervisorStatus& status;
  const Metrics& metrics;
  std::uint64_t admin_requests = 0;  ///< answered by the admin server so far
  std::vector<ListenerStats> listeners;
  std::optional<ProcessStats> process;     ///< corral's own process_* figures
  const json::Object* settings = nullptr;  ///< the effective settings, for /status
};

/// Answers one admin request. Pure: the endpoints are unit-tested without sockets.
///   /healthz  200 while corral runs and a worker is alive or starting
///   /ready    200 when enough workers are READY and corral is not stopping
///   /metrics  Prometheus text
///   /status   JSON: corral, its settings and every worker
HttpResponse routeAdmin(std::string_view method, std::string_view target, const AdminView& view);

}  // namespace corral

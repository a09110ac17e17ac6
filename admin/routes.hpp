#pragma once

#include <cstdint>
#include <string_view>

#include "admin/http.hpp"
#include "supervisor/metrics.hpp"
#include "supervisor/supervisor.hpp"

namespace corral {

/// What the admin endpoints are computed from.
struct AdminView {
  const SupervisorStatus& status;
  const Metrics& metrics;
  std::uint64_t admin_requests = 0;  ///< answered by the admin server so far
};

/// Answers one admin request. Pure: the endpoints are unit-tested without sockets.
///   /healthz  200 while corral runs and a worker is alive or starting
///   /ready    200 when enough workers are READY and corral is not stopping
///   /metrics  Prometheus text
HttpResponse routeAdmin(std::string_view method, std::string_view target, const AdminView& view);

}  // namespace corral

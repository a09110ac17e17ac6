#pragma once

#include <string>
#include <string_view>

#include "supervisor/metrics.hpp"
#include "supervisor/supervisor.hpp"

namespace corral {

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

/// Answers one admin request. Pure: the endpoints are unit-tested without sockets.
///   /healthz  200 while corral runs and a worker is alive or starting
///   /ready    200 when enough workers are READY and corral is not draining
///   /metrics  Prometheus text
AdminResponse routeAdmin(std::string_view method, std::string_view target,
                         const SupervisorStatus& status, const Metrics& metrics);

/// "OK", "Not Found", ... for the status line.
std::string_view reasonPhrase(int status);

}  // namespace corral

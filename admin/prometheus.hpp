#pragma once

#include <cstdint>
#include <string>

#include "supervisor/metrics.hpp"
#include "supervisor/supervisor.hpp"

namespace corral {

/// Prometheus text exposition (version 0.0.4) of the counters and the current status.
std::string renderPrometheus(const Metrics& metrics, const SupervisorStatus& status,
                             std::uint64_t admin_requests);

}  // namespace corral

#pragma once

#include <string>

#include "admin/routes.hpp"

namespace corral {

/// Prometheus text exposition (version 0.0.4) of the counters and the current status. The
/// names are the README's: dashboards are written against them.
std::string renderPrometheus(const AdminView& view);

/// A label value with `\`, `"` and line feeds escaped, as the exposition format wants.
std::string escapeLabelValue(std::string_view value);

}  // namespace corral

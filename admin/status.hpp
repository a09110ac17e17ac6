#pragma once

#include <string>

#include "admin/routes.hpp"
#include "config/config.hpp"

namespace corral {

/// The body of GET /status: corral's version, state, uptime, how the worker count was derived,
/// the settings, and one object per worker (README, "Admin endpoints").
std::string statusBody(const AdminView& view);

}  // namespace corral

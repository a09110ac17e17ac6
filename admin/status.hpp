#pragma once

#include <string>

#include "admin/routes.hpp"
#include "config/config.hpp"

namespace corral {

/// The effective settings, for /status: every option's value, by the option's name. corral
/// takes no secret on its command line or in its variables, so none is left out; the app's
/// own environment is not shown.
json::Object settingsJson(const Config& config);

/// The body of GET /status: corral's version, state, uptime, how the worker count was derived,
/// the settings, and one object per worker (README, "Admin endpoints").
std::string statusBody(const AdminView& view);

}  // namespace corral

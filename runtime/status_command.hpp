#pragma once

#include <boost/json/object.hpp>
#include <string>

namespace corral {

/// `corral status [--admin ADDR] [--json]`: asks a running corral's admin port for GET /status
/// and prints it as an aligned table for a person, or as the JSON itself for a script. ADDR is
/// HOST:PORT or unix:PATH [$CORRAL_ADMIN_BIND, else 127.0.0.1:8081, corral's own default].
/// `argv[0]` is "status"; returns the exit code: 0, 1 when corral cannot be reached or answers
/// otherwise, 2 for bad usage.
int runStatusCommand(int argc, const char* const* argv);

/// The table `corral status` prints for a /status document.
std::string renderStatusTable(const boost::json::object& status);

}  // namespace corral

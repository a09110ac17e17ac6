#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace corral {

/// Looks up --user (a name or a uid) and --group (a name or a gid; by default the user's primary
/// group) and the user's supplementary groups. corral must run as root to switch to them.
/// Throws ConfigError naming the input (`user_source` is "--user" or "CORRAL_USER").
WorkerUser resolveWorkerUser(std::string_view user_source, const std::string& user,
                             std::string_view group_source,
                             const std::optional<std::string>& group);

}  // namespace corral

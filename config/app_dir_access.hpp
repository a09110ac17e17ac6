#pragma once

#include <optional>
#include <string>

#include "config/config.hpp"
#include "config/inputs.hpp"

namespace corral {

/// The first folder on the way to a directory that the kernel would not let a user through.
struct AccessDenial {
  std::string path;        ///< the refused folder: one on the way, or the directory itself
  bool is_target = false;  ///< true: the directory itself (read and search refused)
  unsigned mode = 0;       ///< st_mode of `path`
  unsigned owner = 0;
  unsigned group = 0;
};

/// Whether `who` (its uid, gid and supplementary groups, with no capabilities) could list the
/// directory `dir` and open files in it: search (x) on every folder the kernel walks through
/// (following symbolic links as it does), read and search on `dir` itself. Mode bits and
/// POSIX access ACLs are judged as the kernel judges them; corral's own identity is never
/// changed. `dir` must be absolute. Returns the first refusal, or nullopt when access is
/// granted or cannot be judged (a path that does not exist is reported elsewhere).
std::optional<AccessDenial> findAccessDenial(const std::string& dir, const WorkerUser& who);

/// Throws ConfigError when config.user cannot read config.app_dir (as the workers see it: made
/// absolute against corral's working directory, which they inherit), before any worker is
/// started to fail at importing the app.
void checkAppDirAccess(const Inputs& inputs, const Config& config);

}  // namespace corral

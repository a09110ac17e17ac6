#pragma once

#include <optional>
#include <string>

#include "config/config.hpp"
#include "supervisor/process_spawner.hpp"

namespace corral {

/// prometheus_client's multiprocess mode, kept right by corral as gunicorn users do it by hand
/// in their hooks. With $PROMETHEUS_MULTIPROC_DIR set, each worker's metrics live in files of
/// that folder named after its pid (counter_<pid>.db, gauge_livesum_<pid>.db, ...), and the
/// app's /metrics adds them up. corral
/// - removes the folder's *.db files as it starts, as prometheus_client's documentation asks
///   ("wiped between runs"): an earlier run's counts would otherwise be added in;
/// - when a worker exits, removes its gauge_live*_<pid>.db files, as
///   prometheus_client.multiprocess.mark_process_dead(pid) does: a dead worker's live gauges
///   (in-progress requests, say) must not count. Its counters stay, as they must.
/// Only files with those names are touched, and nothing below the folder.
class MultiprocDir {
 public:
  /// From $PROMETHEUS_MULTIPROC_DIR (or the older $prometheus_multiproc_dir, as
  /// prometheus_client reads it); nullopt when neither is set.
  static std::optional<MultiprocDir> fromEnvironment(const EnvLookup& env);
  explicit MultiprocDir(std::string path) : path_(std::move(path)) {}

  /// Removes the *.db files an earlier run left; returns how many, or nullopt if the folder
  /// cannot be read.
  std::optional<int> clear() const;
  /// mark_process_dead(pid): removes the worker's gauge_live*_<pid>.db files.
  void markDead(Pid pid) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace corral

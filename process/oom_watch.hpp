#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace corral {

/// Tells a worker the kernel's OOM killer ended from one that crashed: both die by SIGKILL, but
/// only an OOM kill raises the count in the memory cgroup's events file, which the workers
/// share with corral (cgroupOomKillFile). Each kill counted since the last look explains one
/// SIGKILL.
class OomWatch {
 public:
  /// Finds the events file under `root` and reads the count as it stands.
  explicit OomWatch(const std::filesystem::path& root = "/");

  /// For a worker that died by SIGKILL: the limit the OOM killer enforced ("cgroup memory limit
  /// 512Mi") if a kill not yet explained was counted, else nullopt.
  std::optional<std::string> claim();

 private:
  std::optional<std::uint64_t> read() const;

  std::optional<std::filesystem::path> file_;
  std::uint64_t explained_ = 0;  ///< kills counted, and explained or there before corral
  std::string limit_;
};

}  // namespace corral

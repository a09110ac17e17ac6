#include "process/multiproc_dir.hpp"

#include <cctype>
#include <filesystem>

namespace corral {
namespace {

namespace fs = std::filesystem;

// gauge_<mode>_<pid>.db with a live mode: liveall, livesum, livemax, livemin, livemostrecent
// (prometheus_client's Gauge._MULTIPROC_MODES that start with "live").
bool isLiveGaugeOf(std::string_view name, std::string_view pid) {
  constexpr std::string_view kPrefix = "gauge_live";
  const std::string suffix = "_" + std::string(pid) + ".db";
  if (name.size() <= kPrefix.size() + suffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(suffix)) {
    return false;
  }
  const std::string_view mode =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - suffix.size());
  for (const char c : mode) {
    if (std::islower(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

}  // namespace

std::optional<MultiprocDir> MultiprocDir::fromEnvironment(const EnvLookup& env) {
  for (const char* name : {"PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"}) {
    if (auto value = env(name); value && !value->empty()) return MultiprocDir(std::move(*value));
  }
  return std::nullopt;
}

std::optional<int> MultiprocDir::clear() const {
  std::error_code error;
  fs::directory_iterator it(path_, error);
  if (error) return std::nullopt;
  int removed = 0;
  for (const fs::directory_iterator end; it != end; it.increment(error)) {
    if (error) break;
    const fs::path& file = it->path();
    if (file.extension() == ".db" && it->is_regular_file(error) && fs::remove(file, error)) {
      ++removed;
    }
  }
  return removed;
}

void MultiprocDir::markDead(Pid pid) const {
  std::error_code error;
  fs::directory_iterator it(path_, error);
  const std::string pid_text = std::to_string(pid);
  for (const fs::directory_iterator end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (isLiveGaugeOf(name, pid_text)) fs::remove(it->path(), error);
  }
}

}  // namespace corral

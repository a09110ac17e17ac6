#include "process/oom_watch.hpp"

#include "config/host/cgroup.hpp"
#include "config/size.hpp"
#include "util/files.hpp"

namespace corral {

OomWatch::OomWatch(const std::filesystem::path& root) : file_(cgroupOomKillFile(root)) {
  explained_ = read().value_or(0);
  const auto memory = cgroupMemoryLimit(root);
  limit_ = memory.value ? "cgroup memory limit " + formatSize(*memory.value)
                        : "no cgroup memory limit: the host ran out of memory";
}

std::optional<std::uint64_t> OomWatch::read() const {
  if (!file_) return std::nullopt;
  const auto text = readFile(*file_);
  return text ? parseOomKills(*text) : std::nullopt;
}

std::optional<std::string> OomWatch::claim() {
  const auto counted = read();
  if (!counted || *counted <= explained_) return std::nullopt;
  ++explained_;
  return limit_;
}

}  // namespace corral

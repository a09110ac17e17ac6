#include "config/socket_activation.hpp"

#include "util/text.hpp"

namespace corral {
namespace {

constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START

std::vector<std::string> splitNames(const std::string& text) {
  std::vector<std::string> names;
  std::size_t start = 0;
  for (;;) {
    const auto colon = text.find(':', start);
    names.push_back(text.substr(start, colon - start));
    if (colon == std::string::npos) return names;
    start = colon + 1;
  }
}

}  // namespace

std::vector<ActivatedSocket> activatedSockets(const EnvLookup& env, int self_pid) {
  const auto pid_text = env("LISTEN_PID");
  const auto count_text = env("LISTEN_FDS");
  if (!pid_text || !count_text) return {};
  const auto pid = parseInt<long>(*pid_text);
  if (!pid) throw ConfigError("LISTEN_PID='" + *pid_text + "' is not a process id");
  if (*pid != self_pid) return {};  // passed to a process that exec'd corral without them
  const auto count = parseInt<long>(*count_text);
  if (!count || *count < 0 || *count > 1024) {
    throw ConfigError("LISTEN_FDS='" + *count_text + "' is not a number of sockets");
  }
  std::vector<std::string> names(static_cast<std::size_t>(*count), "unknown");
  if (const auto names_text = env("LISTEN_FDNAMES")) {
    names = splitNames(*names_text);
    if (names.size() != static_cast<std::size_t>(*count)) {
      throw ConfigError("LISTEN_FDNAMES has " + std::to_string(names.size()) + " names for " +
                        std::to_string(*count) +
                        " sockets in LISTEN_FDS; fix FileDescriptorName= "
                        "in the .socket unit");
    }
  }
  std::vector<ActivatedSocket> sockets;
  sockets.reserve(static_cast<std::size_t>(*count));
  for (int i = 0; i < *count; ++i) {
    sockets.push_back({kListenFdsStart + i, names[static_cast<std::size_t>(i)]});
  }
  return sockets;
}

}  // namespace corral

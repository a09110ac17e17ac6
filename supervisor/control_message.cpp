#include "supervisor/control_message.hpp"

#include <array>
#include <utility>

namespace corral {
namespace {

struct Prefix {
  std::string_view text;
  ControlMessage::Kind kind;
};

// Error texts may span lines, so each message owns its whole datagram rather than using
// sd_notify's newline-separated assignments.
constexpr std::array kPrefixes{
    Prefix{"READY=1", ControlMessage::Kind::Ready},
    Prefix{"WATCHDOG=1", ControlMessage::Kind::Watchdog},
    Prefix{"STATUS=", ControlMessage::Kind::Status},
    Prefix{"RECYCLE=", ControlMessage::Kind::Recycle},
    Prefix{"BOOT_ERROR=", ControlMessage::Kind::BootError},
    Prefix{"CONFIG_ERROR=", ControlMessage::Kind::ConfigError},
    Prefix{"LOAD_ERROR=", ControlMessage::Kind::LoadError},
};

}  // namespace

ControlMessage ControlMessage::parse(std::string_view datagram) {
  for (const auto& prefix : kPrefixes) {
    if (datagram.starts_with(prefix.text)) {
      auto rest = datagram.substr(prefix.text.size());
      while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);
      return {prefix.kind, std::string(rest)};
    }
  }
  return {Kind::Unknown, std::string(datagram)};
}

}  // namespace corral

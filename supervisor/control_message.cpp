#include "supervisor/control_message.hpp"

#include <array>
#include <utility>

#include "util/text.hpp"

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
    Prefix{"REQUESTS=", ControlMessage::Kind::Requests},
    Prefix{"LOAD_ERROR=", ControlMessage::Kind::LoadError},
};

// "REQUESTS=<served> <in flight>", two whole numbers; anything else is Unknown.
ControlMessage requests(std::string_view datagram, std::string_view rest) {
  const auto parts = words(rest);
  const auto served = parts.size() == 2 ? parseInt<std::uint64_t>(parts[0]) : std::nullopt;
  const auto in_flight = parts.size() == 2 ? parseInt<std::uint64_t>(parts[1]) : std::nullopt;
  if (!served || !in_flight) return {ControlMessage::Kind::Unknown, std::string(datagram)};
  ControlMessage message{ControlMessage::Kind::Requests, std::string(rest)};
  message.served = *served;
  message.in_flight = *in_flight;
  return message;
}

}  // namespace

ControlMessage ControlMessage::parse(std::string_view datagram) {
  for (const auto& prefix : kPrefixes) {
    if (datagram.starts_with(prefix.text)) {
      auto rest = datagram.substr(prefix.text.size());
      while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);
      if (prefix.kind == Kind::Requests) return requests(datagram, rest);
      return {prefix.kind, std::string(rest)};
    }
  }
  return {Kind::Unknown, std::string(datagram)};
}

}  // namespace corral

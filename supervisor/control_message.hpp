#pragma once

#include <string>
#include <string_view>

namespace corral {

/// One datagram from a worker's control channel, decoded (worker/PROTOCOL.md).
struct ControlMessage {
  enum class Kind {
    Ready,
    Watchdog,
    Status,
    Recycle,
    BootError,
    ConfigError,
    LoadError,  ///< --reload: the app failed to load; the worker serves a 503 with the text
    Unknown
  };
  Kind kind = Kind::Unknown;
  std::string text;  ///< STATUS text, error text, or the raw datagram when Unknown

  static ControlMessage parse(std::string_view datagram);
};

}  // namespace corral

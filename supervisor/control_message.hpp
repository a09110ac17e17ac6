#pragma once

#include <cstdint>
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
    Requests,
    LoadError,  ///< --reload: the app failed to load; the worker serves a 503 with the text
    Unknown
  };
  Kind kind = Kind::Unknown;
  std::string text;             ///< STATUS text, error text, or the raw datagram when Unknown
  std::uint64_t served = 0;     ///< REQUESTS: requests the worker has answered
  std::uint64_t in_flight = 0;  ///< REQUESTS: requests it is answering now

  static ControlMessage parse(std::string_view datagram);
};

}  // namespace corral

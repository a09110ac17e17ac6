// One datagram from a worker's control channel: whatever a worker (or an app that found the
// descriptor) writes there.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "supervisor/control_message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);
  const auto message = corral::ControlMessage::parse(datagram);
  if (message.text.size() > datagram.size()) __builtin_trap();
  return 0;
}

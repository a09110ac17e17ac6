#include "supervisor/control_message.hpp"

#include <catch2/catch.hpp>

namespace corral {
namespace {

using Kind = ControlMessage::Kind;

TEST_CASE("ControlMessage::parse", "[unit][control]") {
  struct Case {
    std::string datagram;
    Kind kind;
    std::string text;
  };
  const auto c = GENERATE(values<Case>({
      {"READY=1", Kind::Ready, ""},
      {"READY=1\n", Kind::Ready, ""},
      {"WATCHDOG=1", Kind::Watchdog, ""},
      {"STATUS=serving", Kind::Status, "serving"},
      {"BOOT_ERROR=Traceback:\n  line\nRuntimeError: x\n", Kind::BootError,
       "Traceback:\n  line\nRuntimeError: x"},
      {"CONFIG_ERROR=no uvicorn", Kind::ConfigError, "no uvicorn"},
      {"READY=0", Kind::Unknown, "READY=0"},
      {"", Kind::Unknown, ""},
      {"hello", Kind::Unknown, "hello"},
  }));
  const ControlMessage m = ControlMessage::parse(c.datagram);
  CHECK(m.kind == c.kind);
  CHECK(m.text == c.text);
}

}  // namespace
}  // namespace corral

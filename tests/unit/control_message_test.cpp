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
      {"REQUESTS=12 3", Kind::Requests, "12 3"},
      {"REQUESTS=12", Kind::Unknown, "REQUESTS=12"},
      {"REQUESTS=-1 0", Kind::Unknown, "REQUESTS=-1 0"},
      {"REQUESTS=1 2 3", Kind::Unknown, "REQUESTS=1 2 3"},
  }));
  const ControlMessage m = ControlMessage::parse(c.datagram);
  CHECK(m.kind == c.kind);
  CHECK(m.text == c.text);
}

TEST_CASE("REQUESTS carries two counts", "[unit][control]") {
  const ControlMessage m = ControlMessage::parse("REQUESTS=18446744073709551615 7\n");
  CHECK(m.kind == Kind::Requests);
  CHECK(m.served == 18446744073709551615ULL);
  CHECK(m.in_flight == 7);
}

}  // namespace
}  // namespace corral

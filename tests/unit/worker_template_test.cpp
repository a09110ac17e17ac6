// The worker template's client against a real io_context and a socketpair standing in for the
// template process. Run under ASan in CI: a handler that outlived its template would read freed
// memory here.

#include "process/worker_template.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <thread>

#include "process/asio_clock.hpp"

namespace corral {
namespace {

using namespace std::chrono_literals;

struct Pair {
  int corral_end = -1;
  int template_end = -1;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
    corral_end = fds[0];
    template_end = fds[1];
  }
  ~Pair() { ::close(template_end); }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  void say(std::string_view message) const {
    REQUIRE(::send(template_end, message.data(), message.size(), 0) ==
            static_cast<ssize_t>(message.size()));
  }
};

// A pid that is nobody's: the template client never signals it in these tests, but kill(2)
// on it, were it to happen, must not hit a real process.
constexpr Pid kNoProcess = 0x3fffffff;

TEST_CASE("The template is ready on READY=1, and its waiters are released", "[unit][template]") {
  boost::asio::io_context io;
  AsioClock clock(io);
  Pair pair;
  WorkerTemplate worker_template(io, clock, kNoProcess, pair.corral_end, 3);
  bool released = false;
  worker_template.whenReady([&] { released = true; });
  pair.say("READY=1");
  io.run();  // returns once nothing is pending: the READY was read, the boot timer disarmed
  CHECK(worker_template.ready());
  CHECK(released);
  CHECK(worker_template.generation() == 3);
}

TEST_CASE("A template dropped while its READY is already queued is not touched",
          "[unit][template]") {
  // The READY arrives, and in the same turn of the loop something runs first that drops the
  // template (its process was reaped, say): the wait that was pending on its channel must end
  // without touching it.
  boost::asio::io_context io;
  AsioClock clock(io);
  Pair pair;
  auto worker_template =
      std::make_unique<WorkerTemplate>(io, clock, kNoProcess, pair.corral_end, 0);
  bool released = false;
  worker_template->whenReady([&] { released = true; });
  pair.say("READY=1");
  // Queued ahead of the reactor's next completions: it runs first and drops the template.
  boost::asio::post(io, [&] {
    worker_template->releaseWaiters();
    worker_template.reset();
  });
  const std::size_t handlers = io.run();
  CHECK(worker_template == nullptr);
  CHECK(released);       // released by the drop, not by a READY seen by a dead template
  CHECK(handlers >= 3);  // the drop, the READY's completion, the released waiter
}

TEST_CASE("A template dropped while its boot timeout is already queued is not touched",
          "[unit][template]") {
  // The boot timeout and whatever drops the template expire in the same pass of the event
  // loop; the drop runs first (it was armed first), and the timeout's completion, already
  // queued, still comes.
  boost::asio::io_context io;
  AsioClock clock(io);
  Pair pair;
  std::unique_ptr<WorkerTemplate> worker_template;
  const auto drop = clock.createTimer([&] { worker_template.reset(); });
  drop->enable(0ms);
  worker_template =
      std::make_unique<WorkerTemplate>(io, clock, kNoProcess, pair.corral_end, 0, 0ms);
  std::this_thread::sleep_for(5ms);
  io.run();
  CHECK(worker_template == nullptr);
}

TEST_CASE("A template not ready in time is given up, and its waiters go on", "[unit][template]") {
  boost::asio::io_context io;
  AsioClock clock(io);
  Pair pair;
  WorkerTemplate worker_template(io, clock, kNoProcess, pair.corral_end, 0, 1ms);
  bool released = false;
  worker_template.whenReady([&] { released = true; });
  for (int turn = 0; turn < 100 && !released; ++turn) io.run_one_for(100ms);
  CHECK(released);
  CHECK_FALSE(worker_template.ready());
}

}  // namespace
}  // namespace corral

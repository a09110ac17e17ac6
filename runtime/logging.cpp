#include "runtime/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <memory>

namespace corral {
namespace {

// Writes with SIGTTOU blocked. A background job that writes to a terminal set to `stty tostop`
// is sent SIGTTOU for each write; corral's handler would read it as "one worker fewer", and
// without a handler (or with the default) corral would stop. A blocked SIGTTOU lets the write
// through, and a SIGTTOU that someone sends meanwhile is delivered once the write is done.
class TerminalSafeSink final : public spdlog::sinks::sink {
 public:
  explicit TerminalSafeSink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    const Guard guard;
    inner_->log(msg);
  }
  void flush() override {
    const Guard guard;
    inner_->flush();
  }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  struct Guard {
    sigset_t saved{};
    Guard() {
      sigset_t ttou;
      ::sigemptyset(&ttou);
      ::sigaddset(&ttou, SIGTTOU);
      ::sigprocmask(SIG_BLOCK, &ttou, &saved);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { ::sigprocmask(SIG_SETMASK, &saved, nullptr); }
  };

  spdlog::sink_ptr inner_;
};

spdlog::level::level_enum toSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return spdlog::level::critical;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Warning: return spdlog::level::warn;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Trace: return spdlog::level::trace;
  }
  return spdlog::level::info;
}

// Colours only on a terminal (spdlog's automatic mode), and never with NO_COLOR set to
// anything (https://no-color.org), which this spdlog does not read itself.
spdlog::color_mode colorMode() {
  const char* no_color = std::getenv("NO_COLOR");
  return no_color != nullptr && *no_color != '\0' ? spdlog::color_mode::never
                                                  : spdlog::color_mode::automatic;
}

}  // namespace

void setupLogging(LogLevel level) {
  auto sink = std::make_shared<TerminalSafeSink>(
      std::make_shared<spdlog::sinks::stderr_color_sink_st>(colorMode()));
  auto logger = std::make_shared<spdlog::logger>("corral", std::move(sink));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-7l%$ %v");
  logger->set_level(toSpdlog(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace corral

#include "runtime/logging.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "runtime/log_format.hpp"

namespace corral {
namespace {

LogLevel fromSpdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical: return LogLevel::Critical;
    case spdlog::level::err: return LogLevel::Error;
    case spdlog::level::warn: return LogLevel::Warning;
    case spdlog::level::debug: return LogLevel::Debug;
    case spdlog::level::trace: return LogLevel::Trace;
    default: return LogLevel::Info;
  }
}

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

// A spdlog formatter for corral's line format (runtime/log_format.hpp), text or JSON, with the
// structured fields of the LogFields in scope.
class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogStyle style) : style_(style) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line = formatLogLine(style_, msg.time, fromSpdlog(msg.level),
                                           std::string_view(msg.payload.data(), msg.payload.size()),
                                           LogFields::current());
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(style_);
  }

 private:
  LogStyle style_;
};

// Writes each line to stderr in one write(2): the workers write to the same file, and stdio's
// unbuffered stderr would send a line in pieces that their lines could come between.
//
// With SIGTTOU blocked. A background job that writes to a terminal set to `stty tostop` is sent
// SIGTTOU for each write; corral's handler would read it as "one worker fewer", and without a
// handler (or with the default) corral would stop. A blocked SIGTTOU lets the write through, and
// a SIGTTOU that someone sends meanwhile is delivered once the write is done.
class StderrSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const Guard guard;
    const char* data = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      const ssize_t n = ::write(STDERR_FILENO, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nowhere to log to: nothing better to do
      data += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  void flush_() override {}

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
};

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
}

}  // namespace

void setupLogging(LogLevel level, LogFormat format) {
  LogStyle style;
  style.format = format;
  style.journal = isJournalStream(STDERR_FILENO, variable("JOURNAL_STREAM"));
  // https://no-color.org: NO_COLOR "present and not an empty string" turns colours off.
  const auto no_color = variable("NO_COLOR");
  style.color = format == LogFormat::Text && !style.journal && ::isatty(STDERR_FILENO) == 1 &&
                (!no_color || no_color->empty());
  style.pid = static_cast<int>(::getpid());
  auto sink = std::make_shared<StderrSink>();
  sink->set_formatter(std::make_unique<LineFormatter>(style));
  auto logger = std::make_shared<spdlog::logger>("corral", std::move(sink));
  logger->set_level(toSpdlog(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace corral

#include "supervisor/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace corral {
namespace {

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

}  // namespace

void setupLogging(LogLevel level) {
  auto logger = spdlog::stderr_color_st("corral");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-7l%$ %v");
  logger->set_level(toSpdlog(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace corral

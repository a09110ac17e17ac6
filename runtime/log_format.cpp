#include "runtime/log_format.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <ctime>

#include "util/json.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

std::string_view colorOf(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return "\033[1;41m";
    case LogLevel::Error: return "\033[1;31m";
    case LogLevel::Warning: return "\033[1;33m";
    case LogLevel::Info: return "\033[32m";
    case LogLevel::Debug:
    case LogLevel::Trace: return "\033[2m";
  }
  return "";
}

json::Value jsonOf(const LogFields::Value& value) {
  if (const auto* number = std::get_if<std::int64_t>(&value)) return *number;
  return json::Value(std::get<std::string>(value));
}

}  // namespace

std::string rfc3339(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto since_epoch = time.time_since_epoch();
  const std::time_t seconds = duration_cast<std::chrono::seconds>(since_epoch).count();
  const auto millis = duration_cast<milliseconds>(since_epoch).count() % 1000;
  std::tm local{};
  ::localtime_r(&seconds, &local);
  const long offset_minutes = local.tm_gmtoff / 60;
  const long offset = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}{:02}:{:02}", local.tm_year + 1900,
                     local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
                     millis < 0 ? millis + 1000 : millis, offset_minutes < 0 ? '-' : '+',
                     offset / 60, offset % 60);
}

int syslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return 2;
    case LogLevel::Error: return 3;
    case LogLevel::Warning: return 4;
    case LogLevel::Info: return 6;
    case LogLevel::Debug:
    case LogLevel::Trace: return 7;
  }
  return 6;
}

std::string formatLogLine(const LogStyle& style, std::chrono::system_clock::time_point time,
                          LogLevel level, std::string_view message,
                          const std::vector<LogFields::Field>& fields) {
  std::string line = style.journal ? fmt::format("<{}>", syslogPriority(level)) : "";
  const std::string_view name = logLevelName(level);
  if (style.format == LogFormat::Json) {
    json::Object object{{"time", rfc3339(time)},
                        {"level", name},
                        {"logger", "corral"},
                        {"pid", style.pid},
                        {"message", message}};
    const std::size_t base = object.size();
    for (const auto& [key, value] : fields) {
      // The line's own members stay; an inner scope's field replaces an outer one's.
      const auto* existing = object.find(key);
      if (existing == object.end() || static_cast<std::size_t>(existing - object.begin()) >= base) {
        object[key] = jsonOf(value);
      }
    }
    line += json::write(object);
  } else {
    if (!style.journal) line += rfc3339(time) + ' ';
    const std::string padding(name.size() < 8 ? 8 - name.size() : 0, ' ');
    if (style.color) {
      line += fmt::format("{}{}\033[0m{} ", colorOf(level), name, padding);
    } else {
      line += fmt::format("{}{} ", name, padding);
    }
    line += fmt::format("corral[{}]: ", style.pid);
    line += message;
  }
  line += '\n';
  return line;
}

bool isJournalStream(int fd, const std::optional<std::string>& journal_stream) {
  if (!journal_stream) return false;
  const auto parts = split(*journal_stream, ':');
  if (parts.size() != 2) return false;
  const auto device = parseInt<std::uint64_t>(parts[0]);
  const auto inode = parseInt<std::uint64_t>(parts[1]);
  struct stat st {};
  if (!device || !inode || ::fstat(fd, &st) != 0) return false;
  return st.st_dev == *device && st.st_ino == *inode;
}

}  // namespace corral

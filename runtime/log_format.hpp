#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "util/log_fields.hpp"

namespace corral {

/// How corral's log lines look; runtime/logging.cpp picks it at start.
struct LogStyle {
  LogFormat format = LogFormat::Text;
  bool journal = false;  ///< stderr is the journal: sd-daemon `<N>` prefixes, no timestamp
  bool color = false;    ///< text on a terminal: the level in colour
  int pid = 0;           ///< corral's, shown as the line's author
};

/// "2026-12-03T07:14:41.292+01:00": RFC 3339 in local time, with milliseconds and the zone's
/// offset, as the workers write it too.
std::string rfc3339(std::chrono::system_clock::time_point time);

/// The sd-daemon(3) priority of a level: 2 critical, 3 error, 4 warning, 6 info, 7 debug and
/// trace.
int syslogPriority(LogLevel level);

/// One of corral's log lines, newline included:
///   text: `2026-12-03T07:14:41.292+00:00 info     corral[31510]: listening on ...`
///   json: `{"time":"...","level":"info","logger":"corral","pid":31510,"message":"...",...}`
///         with `fields` as further members.
/// On the journal both start with `<N>`, and the text drops its timestamp (journald keeps one).
std::string formatLogLine(const LogStyle& style, std::chrono::system_clock::time_point time,
                          LogLevel level, std::string_view message,
                          const std::vector<LogFields::Field>& fields);

/// True if `fd` is the stream systemd connected to the journal: $JOURNAL_STREAM holds its
/// "device:inode" (systemd.exec(5)), and a descriptor that was redirected elsewhere no longer
/// matches.
bool isJournalStream(int fd, const std::optional<std::string>& journal_stream);

}  // namespace corral

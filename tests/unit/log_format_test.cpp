#include "runtime/log_format.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <regex>

#include "admin/process_stats.hpp"

namespace corral {
namespace {

using Clock = std::chrono::system_clock;

// 2026-12-03T07:14:41.292 UTC
const Clock::time_point kTime = Clock::from_time_t(1796282081) + std::chrono::milliseconds(292);

// Sets TZ for one test and puts the old value back.
class ZoneScope {
 public:
  explicit ZoneScope(const char* zone) {
    if (const char* old = std::getenv("TZ")) saved_ = old;
    ::setenv("TZ", zone, 1);
    ::tzset();
  }
  ZoneScope(const ZoneScope&) = delete;
  ZoneScope& operator=(const ZoneScope&) = delete;
  ~ZoneScope() {
    if (saved_) {
      ::setenv("TZ", saved_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }

 private:
  std::optional<std::string> saved_;
};

TEST_CASE("rfc3339 writes local time with milliseconds and the zone's offset", "[unit][log]") {
  {
    const ZoneScope zone("UTC0");
    CHECK(rfc3339(kTime) == "2026-12-03T07:14:41.292+00:00");
  }
  {
    const ZoneScope zone("IST-5:30");
    CHECK(rfc3339(kTime) == "2026-12-03T12:44:41.292+05:30");
  }
  {
    const ZoneScope zone("NST3:30");
    CHECK(rfc3339(kTime) == "2026-12-03T03:44:41.292-03:30");
  }
}

TEST_CASE("A text line: time, level, author, message", "[unit][log]") {
  const ZoneScope zone("UTC0");
  LogStyle style;
  style.pid = 31510;
  CHECK(formatLogLine(style, kTime, LogLevel::Info, "listening on x", {}) ==
        "2026-12-03T07:14:41.292+00:00 info     corral[31510]: listening on x\n");
  CHECK(formatLogLine(style, kTime, LogLevel::Critical, "m", {}) ==
        "2026-12-03T07:14:41.292+00:00 critical corral[31510]: m\n");
  SECTION("on the journal: a priority prefix and no timestamp") {
    style.journal = true;
    CHECK(formatLogLine(style, kTime, LogLevel::Warning, "hung", {}) ==
          "<4>warning  corral[31510]: hung\n");
    CHECK(formatLogLine(style, kTime, LogLevel::Error, "x", {}).starts_with("<3>error"));
    CHECK(formatLogLine(style, kTime, LogLevel::Debug, "x", {}).starts_with("<7>debug"));
  }
  SECTION("on a terminal, the level in colour") {
    style.color = true;
    CHECK(formatLogLine(style, kTime, LogLevel::Warning, "x", {}) ==
          "2026-12-03T07:14:41.292+00:00 \033[1;33mwarning\033[0m  corral[31510]: x\n");
  }
}

TEST_CASE("A JSON line is one object, whatever the message holds", "[unit][log]") {
  const ZoneScope zone("UTC0");
  LogStyle style;
  style.format = LogFormat::Json;
  style.pid = 7;
  const std::string nasty = std::string("a \"quote\"\nnew line\ttab \x01\x1f back\\slash ") +
                            "\xff\xfe invalid \xc3\xa9 valid \xed\xa0\x80 surrogate";
  const std::vector<LogFields::Field> fields{
      {"worker", std::int64_t{3}}, {"reason", std::string("crash")}, {"pid", std::int64_t{99}}};
  const std::string line = formatLogLine(style, kTime, LogLevel::Warning, nasty, fields);
  REQUIRE(line.back() == '\n');
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);  // one line, its own newline only
  for (const char c : line.substr(0, line.size() - 1)) {
    CHECK(static_cast<unsigned char>(c) >= 0x20);  // no raw control character
  }
  const auto object = boost::json::parse(line).as_object();
  CHECK(object.at("time") == "2026-12-03T07:14:41.292+00:00");
  CHECK(object.at("level") == "warning");
  CHECK(object.at("logger") == "corral");
  CHECK(object.at("pid") == 7);  // corral's own: a field cannot replace it
  CHECK(object.at("worker") == 3);
  CHECK(object.at("reason") == "crash");
  const std::string message(object.at("message").as_string());
  CHECK(message.starts_with("a \"quote\"\nnew line\ttab \x01\x1f back\\slash "));
  CHECK_THAT(message, Catch::Contains("\xEF\xBF\xBD\xEF\xBF\xBD invalid \xc3\xa9 valid"));
  CHECK_THAT(message, !Catch::Contains("\xed\xa0\x80"));
  SECTION("on the journal: the prefix before the object") {
    style.journal = true;
    const std::string journal_line = formatLogLine(style, kTime, LogLevel::Error, "x", {});
    CHECK(journal_line.starts_with("<3>{\"time\":"));
  }
}

TEST_CASE("LogFields hold while they live, nested", "[unit][log]") {
  CHECK(LogFields::current().empty());
  {
    LogFields outer{{"worker", std::int64_t{1}}};
    {
      const LogFields inner{{"reason", std::string("hung")}};
      CHECK(LogFields::current().size() == 2);
    }
    outer.add("duration_ms", std::int64_t{5});
    REQUIRE(LogFields::current().size() == 2);
    CHECK(LogFields::current()[1].first == "duration_ms");
  }
  CHECK(LogFields::current().empty());
}

TEST_CASE("isJournalStream compares device and inode", "[unit][log]") {
  char path[] = "/tmp/corral-journal-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  CHECK(isJournalStream(fd, mine));
  CHECK_FALSE(isJournalStream(fd, std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)));
  CHECK_FALSE(isJournalStream(fd, std::nullopt));
  CHECK_FALSE(isJournalStream(fd, "garbage"));
  CHECK_FALSE(isJournalStream(fd, mine + ":1"));
  ::close(fd);
  ::unlink(path);
}

TEST_CASE("process_* figures from /proc/PID/stat", "[unit][admin]") {
  // Fields from proc(5): utime 14 = 250, stime 15 = 50, starttime 22 = 1000, vsize 23, rss 24.
  const std::string stat =
      "4242 (corral (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 1 0 1000 "
      "123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
  const auto stats = parseProcStat(stat, 1.7e9, 100, 4096);
  REQUIRE(stats);
  CHECK(stats->cpu_seconds == Approx(3.0));
  CHECK(stats->start_time_seconds == Approx(1.7e9 + 10));
  CHECK(stats->virtual_bytes == 123456789);
  CHECK(stats->resident_bytes == 300 * 4096);
  CHECK_FALSE(parseProcStat("4242 (corral) S 1 2", 0, 100, 4096));
  CHECK_FALSE(parseProcStat("no name", 0, 100, 4096));
  const auto real = readProcessStats();
  REQUIRE(real);
  CHECK(real->open_fds >= 3);
  CHECK(real->max_fds > 0);
  CHECK(real->start_time_seconds > 1.5e9);
}

}  // namespace
}  // namespace corral

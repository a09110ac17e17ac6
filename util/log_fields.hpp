#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace corral {

/// Facts about the event a log line reports, beside its message: --log-format json writes them
/// as members of the line's object ("worker", "reason", "duration_ms", "exit_code"...); the text
/// format leaves them to the message. They hold for every line logged while the LogFields that
/// set them lives (corral logs on one thread), so the code that logs keeps calling spdlog:
///
///   const LogFields fields{{"worker", slot}, {"reason", reason}};
///   spdlog::info("worker {} exited ...", slot);
class LogFields {
 public:
  using Value = std::variant<std::int64_t, std::string>;
  using Field = std::pair<std::string, Value>;

  LogFields(std::initializer_list<Field> fields);
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;
  ~LogFields();

  /// Adds one more to this scope's fields.
  void add(std::string key, Value value);

  /// The fields of every LogFields alive, oldest first.
  static const std::vector<Field>& current();

 private:
  std::size_t start_;
};

}  // namespace corral

#include "util/log_fields.hpp"

namespace corral {
namespace {

std::vector<LogFields::Field>& stack() {
  static std::vector<LogFields::Field> fields;
  return fields;
}

}  // namespace

LogFields::LogFields(std::initializer_list<Field> fields) : start_(stack().size()) {
  stack().insert(stack().end(), fields.begin(), fields.end());
}

LogFields::~LogFields() {
  // Scopes nest, so the fields above start_ are this one's (and an inner one has gone already).
  stack().resize(start_);
}

void LogFields::add(std::string key, Value value) {
  stack().emplace_back(std::move(key), std::move(value));
}

const std::vector<LogFields::Field>& LogFields::current() {
  return stack();
}

}  // namespace corral

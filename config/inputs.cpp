#include "config/inputs.hpp"

#include "config/config_error.hpp"
#include "config/config_file.hpp"
#include "config/migration.hpp"

namespace corral {

void fail(const Input& input, std::string_view reason) {
  failInput(input.source, input.text, reason);
}

std::optional<Input> Inputs::fromCommandLine(const std::string& name) const {
  std::optional<Input> found;
  const auto& given = line_.given(name);
  if (!given.empty()) found = Input{name, given.back(), Origin::CommandLine};
  for (const Synonym& synonym : synonyms()) {
    const std::string spelling(synonymName(synonym));
    // A synonym that the option table took over as an option of its own is not one any more.
    if (synonym.target != name || findOption(spelling) != nullptr) continue;
    const auto& values = line_.given(spelling);
    if (values.empty()) continue;
    if (found) {
      std::string message = spelling;
      message.append(" and ").append(found->source).append(" are both given, and ");
      message.append(spelling).append(" is ").append(synonym.origin).append("'s name for ");
      throw ConfigError(message.append(name).append(": keep one"));
    }
    found = synonymInput(synonym, values.back());
  }
  return found;
}

std::optional<Input> Inputs::get(const std::string& name) const {
  if (file_first_) {
    auto in_file = fromFile(name);
    if (!in_file.empty()) return in_file.back();
  }
  if (auto given = fromCommandLine(name)) return given;
  const OptionInfo* option = findOption(name);
  if (option == nullptr || option->in_environment) {
    if (auto set = variable(envNameFor(name))) return set;
  }
  auto in_file = fromFile(name);
  if (!in_file.empty()) return in_file.back();
  return std::nullopt;
}

std::vector<Input> Inputs::all(const std::string& name) const {
  std::vector<Input> inputs;
  for (const auto& text : line_.given(name)) inputs.push_back({name, text, Origin::CommandLine});
  return inputs;
}

std::vector<Input> Inputs::list(const std::string& name, std::string_view separators) const {
  if (file_first_) {
    auto in_file = fromFile(name);
    if (!in_file.empty()) return in_file;
  }
  auto given = all(name);
  if (!given.empty()) return given;
  if (const auto listed = variable(envNameFor(name))) {
    return splitInput(*listed, separators, "expected one or more values");
  }
  return fromFile(name);
}

std::vector<Input> Inputs::fromFile(const std::string& name) const {
  if (file_ == nullptr) return {};
  const auto* values = file_->find(name);
  return values == nullptr ? std::vector<Input>{} : *values;
}

std::optional<Input> Inputs::variable(const std::string& name) const {
  auto value = env_(name);
  // An empty variable means "not set", as `docker run -e CORRAL_WORKERS=` usually intends.
  if (!value || value->empty()) return std::nullopt;
  return Input{name, std::move(*value), Origin::Environment};
}

std::vector<Input> splitInput(const Input& input, std::string_view separators,
                              std::string_view expected) {
  std::vector<Input> items;
  std::string item;
  for (const char c : input.text + std::string(1, separators.front())) {
    if (separators.find(c) != std::string_view::npos) {
      if (!item.empty()) items.push_back({input.source, item, input.origin});
      item.clear();
    } else {
      item += c;
    }
  }
  if (items.empty()) fail(input, expected);
  return items;
}

}  // namespace corral

#include "config/inputs.hpp"

#include "config/config_error.hpp"

namespace corral {

void fail(const Input& input, std::string_view reason) {
  failInput(input.source, input.text, reason);
}

std::optional<Input> Inputs::get(const std::string& name) const {
  const auto& given = line_.given(name);
  if (!given.empty()) return Input{name, given.back()};
  return variable(envNameFor(name));
}

std::vector<Input> Inputs::all(const std::string& name) const {
  std::vector<Input> inputs;
  for (const auto& text : line_.given(name)) inputs.push_back({name, text});
  return inputs;
}

std::optional<Input> Inputs::variable(const std::string& name) const {
  auto value = env_(name);
  // An empty variable means "not set", as `docker run -e CORRAL_WORKERS=` usually intends.
  if (!value || value->empty()) return std::nullopt;
  return Input{name, std::move(*value)};
}

}  // namespace corral

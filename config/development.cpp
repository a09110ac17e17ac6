#include "config/development.hpp"

#include <filesystem>
#include <system_error>

#include "config/env_file.hpp"
#include "config/option_values.hpp"

namespace corral {
namespace {

// Every value given on the command line, else the variable's, split at `separators`.
std::vector<Input> listed(const Inputs& inputs, const std::string& name,
                          std::string_view separators) {
  auto given = inputs.all(name);
  if (!given.empty()) return given;
  const auto variable = inputs.variable(envNameFor(name));
  if (!variable) return {};
  std::vector<Input> items;
  std::string item;
  for (const char c : variable->text + std::string(1, separators.front())) {
    if (separators.find(c) != std::string_view::npos) {
      if (!item.empty()) items.push_back({variable->source, item});
      item.clear();
    } else {
      item += c;
    }
  }
  return items;
}

// Canonical, so that the watcher can tell a path under it from one beside it.
std::string watchedFolder(const Input& input) {
  std::error_code error;
  if (!std::filesystem::is_directory(input.text, error)) {
    fail(input, "no such directory; --reload watches folders that exist");
  }
  const auto canonical = std::filesystem::canonical(input.text, error);
  if (error) fail(input, error.message());
  return canonical.string();
}

std::string absoluteFile(const Input& input) {
  std::error_code error;
  const auto status = std::filesystem::status(input.text, error);
  if (!std::filesystem::exists(status)) fail(input, "no such file");
  if (std::filesystem::is_directory(status)) fail(input, "is a directory; pass the file itself");
  // The folder canonical, as the watched folders are, and the name as given: replacing the
  // file (an editor's save) is then seen, and so is a write through a link to it.
  const auto path = std::filesystem::absolute(input.text).lexically_normal();
  const auto folder = std::filesystem::canonical(path.parent_path(), error);
  return (error ? path : folder / path.filename()).string();
}

}  // namespace

bool readReloadFlag(const Inputs& inputs) {
  const auto input = inputs.get("--reload");
  return input && parseBool(*input);
}

void applyDevelopment(const Inputs& inputs, Config& config) {
  if (const auto env_file = inputs.get("--env-file")) {
    if (env_file->text.empty()) fail(*env_file, "expected a file path");
    config.env_file = absoluteFile(*env_file);
    config.env_file_entries = loadEnvFile(config.env_file, inputs.env());
  }
  const auto dirs = listed(inputs, "--reload-dir", ":");
  const auto includes = listed(inputs, "--reload-include", ", \t");
  const auto excludes = listed(inputs, "--reload-exclude", ", \t");
  const auto delay = inputs.get("--reload-delay");
  if (!config.reload) {
    for (const auto* group : {&dirs, &includes, &excludes}) {
      if (!group->empty()) fail(group->front(), "needs --reload too");
    }
    if (delay) fail(*delay, "needs --reload too");
    return;
  }
  for (const Input& dir : dirs) config.reload_dirs.push_back(watchedFolder(dir));
  if (dirs.empty()) config.reload_dirs.push_back(watchedFolder({"--app-dir", config.app_dir}));
  for (const Input& glob : includes) {
    config.reload_includes.push_back(parseNonEmpty(glob, "expected a file pattern such as *.html"));
  }
  for (const Input& glob : excludes) {
    config.reload_excludes.push_back(parseNonEmpty(glob, "expected a pattern such as tests/*"));
  }
  if (delay) config.reload_delay = parseTimeout(*delay);
}

}  // namespace corral

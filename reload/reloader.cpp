#include "reload/reloader.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "config/env_file.hpp"
#include "reload/bytecode.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

std::string currentDirectory() {
  std::error_code error;
  return std::filesystem::current_path(error).string();
}

}  // namespace

std::string describeChanges(const std::vector<std::string>& paths, const std::string& cwd) {
  if (paths.empty()) return "nothing";
  std::string first = paths.front();
  if (!cwd.empty() && first.starts_with(cwd + "/")) first.erase(0, cwd.size() + 1);
  if (paths.size() == 1) return first;
  return fmt::format("{} and {}", first,
                     plural(static_cast<long long>(paths.size() - 1), "other file"));
}

Reloader::Reloader(boost::asio::io_context& io, Clock& clock, const Config& config, Hooks hooks)
    : config_(config),
      hooks_(std::move(hooks)),
      filter_(config.reload_includes, config.reload_excludes),
      watcher_(io, clock, filter_, config.reload_delay,
               [this](const std::vector<std::string>& paths) { onChange(paths); }) {
  for (const std::string& dir : config.reload_dirs) watcher_.watchTree(dir);
  if (!config.env_file.empty()) watcher_.watchFile(config.env_file);
}

std::string Reloader::describe() const {
  std::string text = join(config_.reload_dirs, ", ");
  text += fmt::format(" ({}) for {}", plural(static_cast<long long>(watcher_.folders()), "folder"),
                      filter_.describeIncludes());
  if (!config_.env_file.empty()) text += ", and " + config_.env_file;
  return text;
}

void Reloader::onChange(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) forgetBytecode(path);
  std::vector<std::string> changed = paths;
  bool fresh_template = false;
  if (!config_.env_file.empty() &&
      std::find(paths.begin(), paths.end(), config_.env_file) != paths.end()) {
    if (reloadEnvFile()) {
      fresh_template = true;  // forked workers inherit the template's environment
    } else {
      std::erase(changed, config_.env_file);
      if (changed.empty()) return;
    }
  }
  if (!fresh_template && hooks_.template_imported && hooks_.template_imported(changed)) {
    fresh_template = true;
  }
  hooks_.handle(Event::codeChanged(describeChanges(changed, currentDirectory()) + " changed",
                                   fresh_template));
}

bool Reloader::reloadEnvFile() {
  try {
    hooks_.set_env_file(loadEnvFile(config_.env_file, processEnvironment()));
    return true;
  } catch (const ConfigError& error) {
    spdlog::error("{}; the workers keep the environment read before", error.what());
    return false;
  }
}

}  // namespace corral

#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "reload/watcher.hpp"
#include "supervisor/event.hpp"

namespace corral {

/// --reload: turns changes to the app's files into the supervisor's CodeChanged event. It
/// watches the folders of the configuration (reload_dirs, with its includes and excludes) and
/// the --env-file, which it reads again when it changes. The worker template is started anew
/// when a changed file is one it imported (uvicorn's own, say) or when the workers'
/// environment changed, since forked workers inherit both from it.
class Reloader {
 public:
  struct Hooks {
    /// The supervisor's handle().
    std::function<void(const Event& event)> handle;
    /// Whether the worker template imported any of these files.
    std::function<bool(const std::vector<std::string>& paths)> template_imported;
    /// The env file's NAME=value entries, read again.
    std::function<void(std::vector<std::string> entries)> set_env_file;
  };

  Reloader(boost::asio::io_context& io, Clock& clock, const Config& config, Hooks hooks);

  /// "/app (12 folders), for *.py": what is watched, for the banner.
  std::string describe() const;

 private:
  void onChange(const std::vector<std::string>& paths);
  /// Reads the env file again; false if it could not be read, and its old values stay.
  bool reloadEnvFile();

  const Config& config_;
  Hooks hooks_;
  FileFilter filter_;
  Watcher watcher_;
};

/// "app.py", "app.py and 2 other files": paths as the log shows them, relative to the working
/// directory when they are below it.
std::string describeChanges(const std::vector<std::string>& paths, const std::string& cwd);

}  // namespace corral

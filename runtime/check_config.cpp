#include "runtime/check_config.hpp"

#include <spdlog/spdlog.h>

#include <ostream>

#include "config/exit_codes.hpp"
#include "process/interpreter_check.hpp"
#include "util/text.hpp"

namespace corral {

int checkConfig(const Config& config, const std::vector<Notice>& notices, std::ostream& out,
                std::ostream& err) {
  for (const Notice& notice : notices) {
    err << "corral: " << (notice.level == Notice::Level::Warning ? "warning: " : "")
        << escapeControls(notice.text) << '\n';
  }
  const InterpreterCheck check = checkInterpreter(config, config.startup_timeout);
  if (!check.ok) {
    err << "corral: error: " << check.text << '\n';
    return kExitUsage;
  }
  std::vector<std::string> binds;
  for (const BindAddress& bind : config.binds) binds.push_back(bind.str());
  out << "corral: check passed: " << config.app << ": " << check.text << "; "
      << plural(config.workers, "worker") << " on " << join(binds, ", ")
      << (config.config_file.empty() ? "" : "; settings from " + config.config_file)
      << "; nothing was started\n";
  return kExitOk;
}

void logNotices(const std::vector<Notice>& notices) {
  for (const Notice& notice : notices) {
    if (notice.level == Notice::Level::Warning) {
      spdlog::warn("{}", notice.text);
    } else {
      spdlog::info("{}", notice.text);
    }
  }
}

}  // namespace corral

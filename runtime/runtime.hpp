#pragma once

#include <boost/asio/io_context.hpp>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "admin/admin_server.hpp"
#include "config/config.hpp"
#include "process/asio_clock.hpp"
#include "process/posix_spawner.hpp"
#include "reload/reloader.hpp"
#include "runtime/listener.hpp"
#include "runtime/pidfile.hpp"
#include "runtime/scoreboard.hpp"
#include "runtime/sd_notify.hpp"
#include "signals/signal_router.hpp"
#include "supervisor/supervisor.hpp"
#include "util/json.hpp"

namespace corral {

/// Everything corral runs, around its one io_context: the owner of every long-lived object
/// (Asio's `server`). Members are built in the order below and destroyed in reverse, which is
/// the order that matters: sockets are bound before any worker exists, the spawner outlives the
/// supervisor that calls it, and the loop outlives every object whose handlers it may hold.
class Runtime {
 public:
  /// Binds, writes the pidfile, and wires the pieces; throws StartupError.
  /// `settings_report` is --print-config --json's document: /status shows its settings.
  Runtime(const Config& config, std::string_view settings_report);
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Serves until the supervisor has stopped every worker; returns corral's exit code.
  int run();

 private:
  Supervisor::Hooks hooks();
  HttpResponse answer(const HttpRequest& request) const;
  void startReloader(const Config& config);

  boost::asio::io_context io_{1};
  std::vector<Listener> listeners_;
  Scoreboard scoreboard_;
  std::optional<Pidfile> pidfile_;
  bool use_template_;
  AsioClock clock_;
  PosixSpawner spawner_;
  Notifier notifier_;
  std::mt19937 rng_;
  Supervisor supervisor_;
  SignalRouter signals_;
  std::optional<AdminServer> admin_;
  json::Object settings_;  ///< for /status
  int backlog_;
  std::optional<Reloader> reloader_;  ///< --reload
  int exit_code_;
};

}  // namespace corral

#include "runtime/runtime.hpp"

#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstring>

#include "admin/routes.hpp"
#include "admin/status.hpp"
#include "config/exit_codes.hpp"
#include "process/multiproc_dir.hpp"
#include "process/worker_specs.hpp"
#include "runtime/resident_memory.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

std::vector<Listener> openListeners(const Config& config) {
  const int somaxconn = readSomaxconn();
  if (somaxconn > 0 && config.backlog > somaxconn) {
    spdlog::warn(
        "--backlog {} exceeds net.core.somaxconn {}: the kernel silently uses {}; raise "
        "the sysctl to get the backlog you asked for",
        config.backlog, somaxconn, somaxconn);
  }
  std::vector<Listener> listeners;
  listeners.reserve(config.binds.size());
  for (const BindAddress& address : config.binds) {
    listeners.push_back(Listener::open(address, config.backlog));
    // With --ssl-certfile the workers serve HTTPS on every TCP listener.
    const std::string& url = listeners.back().url();
    const bool tls = config.ssl_certfile && url.starts_with("http://");
    spdlog::info("listening on {}", tls ? "https://" + url.substr(7) : url);
  }
  return listeners;
}

std::vector<int> fdsOf(const std::vector<Listener>& listeners) {
  std::vector<int> fds;
  fds.reserve(listeners.size());
  for (const Listener& listener : listeners) fds.push_back(listener.fd());
  return fds;
}

// What every worker inherits, at the same numbers: the listening sockets and the scoreboard.
std::vector<int> inheritedFds(const std::vector<Listener>& listeners,
                              const Scoreboard& scoreboard) {
  std::vector<int> fds = fdsOf(listeners);
  if (scoreboard.fd() >= 0) fds.push_back(scoreboard.fd());
  return fds;
}

// Orphans of the workers (their double-forked children, say) come to corral rather than to
// the host's init, and the Reaper collects them. As PID 1 they come anyway. False if corral
// does not adopt orphans.
bool becomeSubreaper() {
  if (::getpid() == 1) return true;
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    spdlog::warn(
        "cannot become a child subreaper ({}): orphaned grandchildren of workers will "
        "go to the host's init, and workers start afresh instead of from the worker template",
        std::strerror(errno));
    return false;
  }
  return true;
}

// As PID 1, corral is most likely a container's entrypoint, where the CPUs it sees are the
// machine's: `docker run` without --cpus on a 64-CPU host would start 64 workers.
void warnIfSizedFromHost(const Config& config) {
  if (!config.workers_from_host_cpus || ::getpid() != 1) return;
  spdlog::warn(
      "--workers auto counted the host's CPUs ({}): this container has no CPU limit, so that is "
      "the machine's size, not the container's; give it a CPU limit (docker run --cpus, "
      "resources.limits.cpu) or set --workers N (or WEB_CONCURRENCY)",
      config.workers);
}

// From getrandom(2) rather than std::random_device, whose libstdc++ calls arc4random: the one
// symbol that made the portable binary need glibc 2.36 rather than 2.35.
std::uint32_t randomSeed() {
  std::uint32_t seed = 0;
  if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
    seed = static_cast<std::uint32_t>(::getpid());  // only --max-requests-jitter's draws
  }
  return seed;
}

// Each setting's value and where it came from (the default, a file's line, a variable, the
// command line), as --print-config --json says them.
json::Object settingsOf(std::string_view report) {
  boost::system::error_code error;
  const auto parsed = boost::json::parse(report, error);
  if (error || !parsed.is_object() || !parsed.as_object().contains("settings")) return {};
  return parsed.as_object().at("settings").as_object();
}

}  // namespace

Runtime::Runtime(const Config& config, std::string_view settings_report)
    : listeners_(openListeners(config)),
      pidfile_(config.pidfile.empty() ? std::nullopt : std::make_optional<Pidfile>(config.pidfile)),
      // Forked workers are corral's only once it adopts them.
      use_template_(becomeSubreaper() && config.start_method == "forkserver"),
      clock_(io_),
      spawner_(io_, clock_,
               WorkerSpecs(config, fdsOf(listeners_), currentEnvironment(), scoreboard_.fd()),
               inheritedFds(listeners_, scoreboard_), config.user, use_template_),
      notifier_(processEnvironment(), ::getpid()),
      rng_(randomSeed()),
      supervisor_(config, clock_, spawner_, hooks()),
      signals_(io_, supervisor_),
      settings_(settingsOf(settings_report)),
      backlog_(config.backlog),
      exit_code_(kExitFailure) {
  warnIfSizedFromHost(config);
  notifier_.startWatchdog(clock_);
  if (auto multiproc = MultiprocDir::fromEnvironment(processEnvironment())) {
    const auto removed = multiproc->clear();
    if (!removed) {
      spdlog::warn(
          "PROMETHEUS_MULTIPROC_DIR {}: cannot read the folder; prometheus_client in the "
          "workers will fail to write their metrics there",
          multiproc->path());
    } else {
      spdlog::info(
          "PROMETHEUS_MULTIPROC_DIR {}: {} of an earlier run removed; exited workers' "
          "live gauges will be removed too",
          multiproc->path(), plural(*removed, "metrics file"));
    }
    spawner_.markDeadWorkersIn(std::move(*multiproc));
  }
  if (config.admin_bind) {
    admin_.emplace(io_, *config.admin_bind,
                   [this](const HttpRequest& request) { return answer(request); });
    spdlog::info("admin on {}", admin_->url());
  }
  if (config.reload) startReloader(config);
}

void Runtime::startReloader(const Config& config) {
  reloader_.emplace(
      io_, clock_, config,
      Reloader::Hooks{
          .handle = [this](const Event& event) { supervisor_.handle(event); },
          .template_imported =
              [this](const std::vector<std::string>& paths) {
                return spawner_.templateImported(paths);
              },
          .set_env_file =
              [this](std::vector<std::string> entries) { spawner_.setEnvFile(std::move(entries)); },
      });
  // The one line a developer looks for: where to point the browser.
  spdlog::info("--reload: serving {} on {} ({}{}); watching {}; Ctrl-C stops", config.app,
               listeners_.front().url(), plural(config.workers, "worker"),
               admin_ ? ", admin on " + admin_->url() : "", reloader_->describe());
}

Supervisor::Hooks Runtime::hooks() {
  return {
      .on_stopped =
          [this](int code) {
            exit_code_ = code;
            spawner_.stopTemplates([this] { io_.stop(); });
          },
      .notify =
          [this](const ServiceNotice& notice) {
            notifier_.send(notice);
            // Every worker serves: what it took to get here (the config, the spawns, a roll's
            // new template) need not stay resident (issue 15).
            if (notice.kind == ServiceNotice::Kind::Ready) {
              const ReleasedPages released = releaseStartupPages();
              spdlog::debug("resident {} KiB, {} KiB after releasing start-up pages",
                            released.before_kib, released.after_kib);
            }
          },
      .gate_listeners =
          [this] {
            for (const Listener& listener : listeners_) listener.gateNewConnections();
          },
      .queued_connections =
          [this] {
            std::size_t queued = 0;
            for (const Listener& listener : listeners_) queued += listener.queuedConnections();
            return queued;
          },
      .random = [this](int n) { return std::uniform_int_distribution<int>(0, n)(rng_); },
  };
}

HttpResponse Runtime::answer(const HttpRequest& request) const {
  const SupervisorStatus status = supervisor_.status();
  AdminView view{status, supervisor_.metrics(), admin_ ? admin_->requests() : 0, {}, {}, nullptr};
  for (const Listener& listener : listeners_) {
    const auto limit = listener.queueLimit();
    view.listeners.push_back({listener.url(), listener.queuedConnections(),
                              limit ? static_cast<int>(*limit) : backlog_});
  }
  view.process = readProcessStats();
  view.settings = &settings_;
  return routeAdmin(request.method, request.target, view);
}

int Runtime::run() {
  supervisor_.start();
  io_.run();
  return exit_code_;
}

}  // namespace corral

#include "admin/routes.hpp"

#include <fmt/format.h>

#include "admin/prometheus.hpp"
#include "admin/status.hpp"
#include "util/json.hpp"

namespace corral {
namespace {

std::string statusJson(const SupervisorStatus& s, const json::Object& extra = {}) {
  json::Object body{
      {"state", publicStateName(s.state)},
      {"workers",
       json::Object{
           {"ready", s.ready}, {"alive", s.alive}, {"total", s.target}, {"required", s.required}}},
      {"workers_reason", s.workers_reason},
  };
  for (const auto& [key, value] : extra) body[key] = value;
  // A failed reload leaves the old code serving; it shows on both endpoints until the next one.
  if (!s.reload_error.empty()) body["reload_error"] = s.reload_error;
  return json::write(body) + "\n";
}

// Liveness: corral's loop answers and it supervises. A slot without a worker is not a reason to
// restart the pod: corral respawns it (after a backoff, if it keeps crashing), and /ready tells
// the load balancer meanwhile; a liveness probe that failed on a crash loop would only add
// restarts (Kubernetes advises against liveness checks that depend on what a restart does not
// fix). Only a stopped corral, or one stopping with no worker left, is not alive.
HttpResponse healthz(const SupervisorStatus& s) {
  const bool healthy = s.state != State::Stopped && (s.alive > 0 || !isStopping(s.state));
  return {healthy ? 200 : 503, "application/json", statusJson(s)};
}

std::string notReadyReason(const SupervisorStatus& s) {
  if (s.state == State::Stopped) return "stopped";
  if (isStopping(s.state)) return "draining: " + s.draining_reason;
  return fmt::format("{} of {} required workers ready", s.ready, s.required);
}

HttpResponse ready(const SupervisorStatus& s) {
  if (!isStopping(s.state) && s.ready >= s.required) {
    return {200, "application/json", statusJson(s)};
  }
  return {503, "application/json", statusJson(s, {{"reason", notReadyReason(s)}})};
}

}  // namespace

HttpResponse routeAdmin(std::string_view method, std::string_view target, const AdminView& view) {
  const std::string_view path = target.substr(0, target.find('?'));
  HttpResponse response;
  if (path == "/healthz") {
    response = healthz(view.status);
  } else if (path == "/ready") {
    response = ready(view.status);
  } else if (path == "/metrics") {
    response = {200, "text/plain; version=0.0.4; charset=utf-8", renderPrometheus(view)};
  } else if (path == "/status") {
    response = {200, "application/json", statusBody(view)};
  } else {
    return {404, "text/plain", "not found: try /healthz, /ready, /metrics or /status\n"};
  }
  if (method != "GET" && method != "HEAD") {
    return {405, "text/plain", "only GET and HEAD\n", {{"Allow", "GET, HEAD"}}};
  }
  return response;
}

}  // namespace corral

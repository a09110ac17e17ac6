#include "supervisor/admin_routes.hpp"

#include <fmt/format.h>

#include <cctype>

#include "supervisor/worker_command.hpp"

namespace corral {
namespace {

std::string lowerStateName(State state) {
  std::string name(stateName(state));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string statusJson(const SupervisorStatus& s, std::string_view extra) {
  return fmt::format(
             R"({{"state":"{}","workers":{{"ready":{},"alive":{},"total":{},"required":{}}})"
             R"(,"workers_reason":{}{}}})",
             lowerStateName(s.state), s.ready, s.alive, s.target, s.required,
             jsonString(s.workers_reason), extra) +
         "\n";
}

// A failed reload leaves the old code serving; it shows on both endpoints until the next one.
std::string reloadError(const SupervisorStatus& s) {
  return s.reload_error.empty() ? "" : R"(,"reload_error":)" + jsonString(s.reload_error);
}

AdminResponse healthz(const SupervisorStatus& s) {
  // While starting, corral is alive even before its first worker exists (the worker template
  // boots first); a first boot that fails ends corral, with exit code 3.
  const bool healthy = s.state == State::Starting || (s.state != State::Stopped && s.alive > 0);
  return {healthy ? 200 : 503, "application/json", statusJson(s, reloadError(s))};
}

std::string notReadyReason(const SupervisorStatus& s) {
  if (s.state == State::Draining) return "draining: " + s.draining_reason;
  if (s.state == State::Stopped) return "stopped";
  return fmt::format("{} of {} required workers ready", s.ready, s.required);
}

AdminResponse ready(const SupervisorStatus& s) {
  const bool serving = s.state != State::Draining && s.state != State::Stopped;
  if (serving && s.ready >= s.required) {
    return {200, "application/json", statusJson(s, reloadError(s))};
  }
  return {503, "application/json",
          statusJson(s, R"(,"reason":)" + jsonString(notReadyReason(s)) + reloadError(s))};
}

}  // namespace

AdminResponse routeAdmin(std::string_view method, std::string_view target,
                         const SupervisorStatus& status, const Metrics& metrics) {
  const std::string_view path = target.substr(0, target.find('?'));
  AdminResponse response;
  if (path == "/healthz") {
    response = healthz(status);
  } else if (path == "/ready") {
    response = ready(status);
  } else if (path == "/metrics") {
    response = {200, "text/plain; version=0.0.4", renderPrometheus(metrics, status)};
  } else {
    return {404, "text/plain", "not found: try /healthz, /ready or /metrics\n"};
  }
  if (method != "GET" && method != "HEAD") return {405, "text/plain", "only GET and HEAD\n"};
  return response;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace corral

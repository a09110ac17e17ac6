#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/bind_address.hpp"
#include "config/config.hpp"
#include "config/duration.hpp"

namespace corral {

/// What `corral probe --help` prints.
inline constexpr std::string_view kProbeUsage =
    "Usage: corral probe [--admin ADDR] [--timeout DURATION] [ready|healthz]\n"
    "\n"
    "Asks a running corral's admin server for /ready (the default) or /healthz: a container\n"
    "HEALTHCHECK that needs no curl. Exits 0 on 200, else 1 with one line saying why.\n"
    "\n"
    "  --admin ADDR         HOST:PORT or unix:PATH; 0.0.0.0 and [::] are asked on loopback\n"
    "                       [$CORRAL_ADMIN_BIND, else 127.0.0.1:8081: what corral uses]\n"
    "  --timeout DURATION   Give up after this long, connecting included [1s]\n";

/// One probe, as the command line and the environment ask for it.
struct ProbeRequest {
  BindAddress address;  ///< where to connect: a wildcard bind becomes loopback
  std::string path;     ///< "/ready" or "/healthz"
  Duration timeout{1000};
};

/// Reads probe's arguments (--admin, or --admin-bind as corral spells it; --timeout; the
/// endpoint) and CORRAL_ADMIN_BIND. Throws ConfigError naming the bad input.
ProbeRequest parseProbeArgs(const std::vector<std::string>& args, const EnvLookup& env);

/// A probe's exit code (0 or 1) and its one line.
struct ProbeOutcome {
  int exit_code = 1;  ///< kExitOk or kExitFailure
  std::string line;
};

/// Judges what the admin server sent back, the whole response as read until it closed.
ProbeOutcome judgeAnswer(const ProbeRequest& request, std::string_view response);

/// Connects, asks and judges, within request.timeout.
ProbeOutcome probe(const ProbeRequest& request);

/// `corral probe ARGS...`.
int runProbe(const std::vector<std::string>& args);

}  // namespace corral

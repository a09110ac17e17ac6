#pragma once

#include <optional>
#include <vector>

#include "config/bind_address.hpp"
#include "config/inputs.hpp"

namespace corral {

/// The --bind values that win: those of the command line (with --host/--port, --uds and --fd),
/// else those of CORRAL_BIND, else the config file's; none when none of them has any.
std::vector<Input> bindInputs(const Inputs& inputs);

/// The addresses to serve the app on: systemd's activated sockets, then --bind (or the list in
/// CORRAL_BIND), else one default address. Never empty; duplicates are refused.
std::vector<BindAddress> parseBinds(const Inputs& inputs);

/// --admin-bind, else an activated socket named "admin", else port 8081 on the first bind's
/// host (127.0.0.1 when the first bind is not TCP); nullopt for 'none'. Refuses an address
/// that `binds` already uses.
std::optional<BindAddress> parseAdminBind(const Inputs& inputs,
                                          const std::vector<BindAddress>& binds);

/// The admin address a corral started with this environment and no flags would use (from
/// CORRAL_ADMIN_BIND, else CORRAL_BIND or PORT by parseAdminBind's rule), as a client beside
/// it reaches it: a wildcard host becomes loopback. nullopt for 'none'. For `corral probe` and
/// `corral status`, which run in the server's container with its environment.
std::optional<BindAddress> adminAddressFromEnvironment(const EnvLookup& env);

}  // namespace corral

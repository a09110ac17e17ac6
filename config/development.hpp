#pragma once

#include "config/config.hpp"
#include "config/inputs.hpp"

namespace corral {

/// --reload (or CORRAL_RELOAD), which the worker count's default depends on.
bool readReloadFlag(const Inputs& inputs);

/// --reload-dir, --reload-include, --reload-exclude, --reload-delay (which need --reload) and
/// --env-file, read into `config` once config.reload and config.app_dir are set. A folder to
/// watch must exist; the env file must read cleanly.
void applyDevelopment(const Inputs& inputs, Config& config);

}  // namespace corral

#pragma once

#include <string_view>

namespace corral {
/// Source of worker/shim.py, run by each worker as `PYTHON -c <shim>`.
extern const std::string_view kWorkerShim;
}  // namespace corral

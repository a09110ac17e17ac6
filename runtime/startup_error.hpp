#pragma once

#include <stdexcept>

namespace corral {

/// The OS refused something corral needs before it can serve (an address, a pidfile); what()
/// says which and what to do. main exits kExitFailure.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace corral

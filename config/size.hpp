#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace corral {

/// Parses a byte count as Kubernetes writes a memory quantity: "1048576", "2k", "300M", "1G"
/// (powers of 1000), "512Mi", "1.5Gi" (powers of 1024). A fraction is allowed, as Kubernetes
/// allows it, and rounds up to a whole byte as Kubernetes does (resource.Quantity.Value()).
/// Throws ConfigError naming `what` (e.g. "--worker-memory-budget") on bad input, including
/// zero.
std::uint64_t parseSize(std::string_view text, std::string_view what);

/// Renders a byte count for logs: "512Mi" when it is a whole number of a unit, else bytes.
std::string formatSize(std::uint64_t bytes);

}  // namespace corral

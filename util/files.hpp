#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace corral {

/// The whole file; nullopt when it cannot be opened.
std::optional<std::string> readFile(const std::filesystem::path& path);

/// `absolute` below `root`: how the host probes read /proc and /sys under a test fixture's root.
std::filesystem::path under(const std::filesystem::path& root,
                            const std::filesystem::path& absolute);

}  // namespace corral

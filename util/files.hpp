#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace corral {

/// The whole file; nullopt when it cannot be opened.
std::optional<std::string> readFile(const std::filesystem::path& path);

/// `absolute` below `root`: how the host probes read /proc and /sys under a test fixture's root.
std::filesystem::path under(const std::filesystem::path& root,
                            const std::filesystem::path& absolute);

/// A regular file this process may execute.
bool isExecutableFile(const std::string& path);

/// The first `dir/name` along `search_path` (colon-separated, as PATH) that is an executable
/// file, as execvp would find it; an empty entry is the current directory.
std::optional<std::string> findExecutable(std::string_view name, std::string_view search_path);

}  // namespace corral

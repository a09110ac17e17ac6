#include "reload/file_filter.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

#include "util/text.hpp"

namespace corral {
namespace {

constexpr std::array<std::string_view, 1> kDefaultIncludes{"*.py"};
// uvicorn's own four (".*", ".py[cod]", ".sw.*", "~*"), written so that they match what they
// mean: its ".py[cod]" names no file, and editors' backups end in "~".
constexpr std::array<std::string_view, 5> kDefaultExcludes{".*", "*.py[cod]", "*.sw?", "~*", "*~"};
constexpr std::array<std::string_view, 6> kSkippedFolders{
    ".*", "__pycache__", "venv", "node_modules", "site-packages", "*.egg-info"};

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  for (const std::string_view part : split(path, '/')) {
    if (!part.empty() && part != ".") out.push_back(part);
  }
  return out;
}

bool componentMatches(std::string_view name, std::string_view pattern) {
  return ::fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), 0) == 0;
}

bool anyMatches(std::string_view path, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& pattern) { return pathMatches(path, pattern); });
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

bool isUnder(std::string_view path, std::string_view folder) {
  return path == folder ||
         (path.starts_with(folder) && path.size() > folder.size() && path[folder.size()] == '/');
}

}  // namespace

bool pathMatches(std::string_view path, std::string_view pattern) {
  const auto names = components(path);
  const auto parts = components(pattern);
  if (parts.empty() || parts.size() > names.size()) return false;
  if (pattern.starts_with('/') && parts.size() != names.size()) return false;
  const std::size_t offset = names.size() - parts.size();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!componentMatches(names[offset + i], parts[i])) return false;
  }
  return true;
}

FileFilter::FileFilter(const std::vector<std::string>& includes,
                       const std::vector<std::string>& excludes) {
  for (const std::string_view pattern : kDefaultIncludes) {
    if (!contains(excludes, pattern)) includes_.emplace_back(pattern);
  }
  for (const std::string& pattern : includes) {
    if (!contains(includes_, pattern)) includes_.push_back(pattern);
  }
  for (const std::string_view pattern : kDefaultExcludes) {
    if (!contains(includes, pattern)) excludes_.emplace_back(pattern);
  }
  for (const std::string& pattern : excludes) {
    std::error_code error;
    if (std::filesystem::is_directory(pattern, error)) {
      excluded_folders_.push_back(std::filesystem::canonical(pattern, error).string());
    }
    excludes_.push_back(pattern);
    user_excludes_.push_back(pattern);
  }
}

bool FileFilter::watchesFolder(std::string_view path) const {
  const auto names = components(path);
  if (!names.empty() &&
      std::any_of(kSkippedFolders.begin(), kSkippedFolders.end(), [&](std::string_view pattern) {
        return componentMatches(names.back(), pattern);
      })) {
    return false;
  }
  if (std::any_of(excluded_folders_.begin(), excluded_folders_.end(),
                  [&](const std::string& folder) { return isUnder(path, folder); })) {
    return false;
  }
  // The user's patterns only: the defaults are about files.
  return !anyMatches(path, user_excludes_);
}

bool FileFilter::counts(std::string_view path) const {
  bool included = false;
  for (const std::string& pattern : includes_) {
    if (!pathMatches(path, pattern)) continue;
    // A pattern that is the file's very name (".env") wins over the excludes, as in uvicorn.
    if (path.ends_with("/" + pattern)) return true;
    included = true;
  }
  return included && !anyMatches(path, excludes_);
}

std::string FileFilter::describeIncludes() const {
  return join(includes_, ", ");
}

}  // namespace corral

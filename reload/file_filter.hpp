#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace corral {

/// Which files count as changes for --reload, and which folders are not watched at all, from
/// --reload-include and --reload-exclude with uvicorn's defaults (its watchfiles reloader's
/// FileFilter): `*.py` counts; dot-files, `*.py[cod]`, editors' swap and backup files do not.
/// Folders that hold no code of the app's own, or too many files to watch, are left out:
/// dot-folders (.git, .venv, .mypy_cache...), __pycache__, venv, node_modules, site-packages,
/// *.egg-info.
///
/// A pattern matches as pathlib's PurePath.match does (uvicorn's): a relative pattern matches
/// the last components of the path (`*.py`, `templates/*.html`), an absolute one the whole
/// path; each component as fnmatch(3) without flags. An include given by the user takes that
/// pattern out of the default excludes, and an exclude given by the user out of the default
/// includes, as in uvicorn, and an include that is the file's very name (`.env`) wins over the
/// excludes. An exclude that names an existing folder leaves that folder out; the user's
/// excludes apply to folders as well as to files.
class FileFilter {
 public:
  FileFilter(const std::vector<std::string>& includes, const std::vector<std::string>& excludes);

  /// Whether the folder at this absolute path is watched (its subfolders are then asked too).
  bool watchesFolder(std::string_view path) const;
  /// Whether a change to the file at this absolute path counts.
  bool counts(std::string_view path) const;

  /// "*.py, *.html": what counts, for the log.
  std::string describeIncludes() const;

 private:
  std::vector<std::string> includes_;
  std::vector<std::string> excludes_;
  std::vector<std::string> user_excludes_;     ///< also applied to folders
  std::vector<std::string> excluded_folders_;  ///< canonical paths of excludes that are folders
};

/// PurePath.match: the path's last components against a relative pattern's, or the whole path
/// against an absolute one.
bool pathMatches(std::string_view path, std::string_view pattern);

}  // namespace corral

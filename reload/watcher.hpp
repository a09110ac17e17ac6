#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reload/file_filter.hpp"
#include "supervisor/clock.hpp"

namespace corral {

/// Watches folder trees and single files with inotify, on corral's event loop: it waits on the
/// inotify descriptor like any socket, so nothing wakes while nothing changes. Folders created
/// later (mkdir, a checkout, a folder moved in) are watched as they appear. Changes are
/// collected until `quiet` has passed without another (at most quiet + kMaxWait after the
/// first), then reported at once: an editor's save (writes, a rename) or a `git checkout` is
/// one report.
///
/// Out of inotify watches (fs.inotify.max_user_watches), it says so with the sysctl to raise
/// and goes on with the folders it has, shallowest first.
class Watcher {
 public:
  using OnChange = std::function<void(std::vector<std::string> paths)>;

  /// A burst that never pauses is reported this long (and the quiet time) after it began.
  static constexpr std::chrono::milliseconds kMaxWait{1000};

  /// Never throws: without inotify (no instance left) it logs why and watches nothing.
  Watcher(boost::asio::io_context& io, Clock& clock, FileFilter filter,
          std::chrono::milliseconds quiet, OnChange on_change);
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;
  ~Watcher();

  /// Watches `root` and the folders below it that the filter allows.
  void watchTree(const std::string& root);
  /// Watches one file, whatever the filter says (the env file), through its folder, so that
  /// an editor that replaces it by a rename is seen.
  void watchFile(const std::string& path);

  /// Folders watched now.
  std::size_t folders() const { return folders_.size(); }
  /// True once a folder could not be watched for want of inotify watches.
  bool outOfWatches() const { return out_of_watches_; }

 private:
  struct Folder {
    std::string path;
    bool tree = false;  ///< its subfolders are watched too, and its files filtered
  };

  /// Adds watches breadth first from `root`; with `report`, files already inside count as
  /// changes (a folder moved in, or filled before its watch existed).
  void addTree(const std::string& root, bool report);
  enum class Added { Yes, No, OutOfWatches };
  /// Watches the folder; No (logged at debug) if it cannot be, gone or unreadable.
  Added addWatch(const std::string& path, bool tree);
  void warnOutOfWatches(std::size_t unwatched);
  void await();
  void readEvents();
  void onEvent(int wd, std::uint32_t mask, const std::string& name);
  void note(const std::string& path);
  void flush();

  boost::asio::posix::stream_descriptor inotify_;
  FileFilter filter_;
  std::chrono::milliseconds quiet_;
  OnChange on_change_;
  Clock& clock_;
  std::unique_ptr<Timer> quiet_timer_;
  std::map<int, Folder> folders_;     ///< by watch descriptor
  std::set<std::string> files_;       ///< watched single files
  std::vector<std::string> pending_;  ///< changes not reported yet, in order, once each
  std::optional<TimePoint> first_change_;
  bool out_of_watches_ = false;
  std::shared_ptr<char> alive_ = std::make_shared<char>();  ///< expires with this object
};

}  // namespace corral

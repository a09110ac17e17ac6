#include "reload/watcher.hpp"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <system_error>

#include "util/files.hpp"
#include "util/text.hpp"

namespace corral {
namespace {

// What a save, a checkout, a new or removed file looks like. Not IN_MODIFY: a write is
// followed by IN_CLOSE_WRITE, and one event per write would only wake corral more. IN_ATTRIB
// makes `touch app.py` a change, as uvicorn's stat reloader has it.
constexpr std::uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                IN_DELETE | IN_ATTRIB | IN_DONT_FOLLOW | IN_ONLYDIR |
                                IN_EXCL_UNLINK;

int openInotify() {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const auto limit = readFile("/proc/sys/fs/inotify/max_user_instances");
    spdlog::error(
        "--reload: cannot watch the app's files: inotify_init1: {}{}; corral serves without "
        "reloading",
        std::strerror(error),
        error == EMFILE
            ? fmt::format(" (fs.inotify.max_user_instances = {} are in use; raise it with "
                          "`sysctl fs.inotify.max_user_instances=1024`)",
                          trim(limit.value_or("?")))
            : "");
    return -1;
  }
  return fd;
}

std::string joinPath(const std::string& folder, const std::string& name) {
  return folder == "/" ? "/" + name : folder + "/" + name;
}

}  // namespace

Watcher::Watcher(boost::asio::io_context& io, Clock& clock, FileFilter filter,
                 std::chrono::milliseconds quiet, OnChange on_change)
    : inotify_(io),
      filter_(std::move(filter)),
      quiet_(quiet),
      on_change_(std::move(on_change)),
      clock_(clock),
      quiet_timer_(clock.createTimer([this] { flush(); })) {
  const int fd = openInotify();
  if (fd < 0) return;
  inotify_.assign(fd);
  await();
}

Watcher::~Watcher() = default;

void Watcher::watchTree(const std::string& root) {
  addTree(root, false);
}

void Watcher::watchFile(const std::string& path) {
  if (!inotify_.is_open()) return;
  const std::filesystem::path file(path);
  const std::string folder = file.parent_path().string();
  files_.insert(path);
  const auto known = std::find_if(folders_.begin(), folders_.end(),
                                  [&](const auto& entry) { return entry.second.path == folder; });
  if (known == folders_.end() && addWatch(folder, false) == Added::OutOfWatches) {
    out_of_watches_ = true;
    warnOutOfWatches(1);
  }
}

Watcher::Added Watcher::addWatch(const std::string& path, bool tree) {
  const int wd = ::inotify_add_watch(inotify_.native_handle(), path.c_str(), kMask);
  if (wd < 0) {
    if (errno == ENOSPC) return Added::OutOfWatches;  // the caller counts what is left
    // Gone already, or not ours to read: nothing there to reload for.
    spdlog::debug("--reload: cannot watch {}: {}", path, std::strerror(errno));
    return Added::No;
  }
  // A folder watched again (renamed, or the env file's folder inside a tree) keeps one entry.
  Folder& folder = folders_[wd];
  if (folder.path.empty() || tree) folder = {path, tree || folder.tree};
  return Added::Yes;
}

void Watcher::addTree(const std::string& root, bool report) {
  if (!inotify_.is_open()) return;
  std::deque<std::string> queue{root};
  std::size_t unwatched = 0;
  while (!queue.empty()) {
    const std::string folder = std::move(queue.front());
    queue.pop_front();
    if (unwatched > 0) {
      ++unwatched;  // counted, to say how many go unseen
    } else if (const Added added = addWatch(folder, true); added == Added::No) {
      continue;
    } else if (added == Added::OutOfWatches) {
      out_of_watches_ = true;
      unwatched = 1;
    }
    std::error_code error;
    std::filesystem::directory_iterator it(folder, error);
    for (; !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
      const std::string path = it->path().string();
      std::error_code kind_error;
      if (it->is_symlink(kind_error)) continue;  // a link out of the tree, or a loop
      if (it->is_directory(kind_error)) {
        if (filter_.watchesFolder(path)) queue.push_back(path);
      } else if (report && unwatched == 0 && filter_.counts(path)) {
        note(path);
      }
    }
  }
  if (unwatched > 0) warnOutOfWatches(unwatched);
}

void Watcher::warnOutOfWatches(std::size_t unwatched) {
  // The user namespace's own limit: fs.inotify.max_user_watches itself in the first one.
  auto limit = readFile("/proc/sys/user/max_inotify_watches");
  if (!limit) limit = readFile("/proc/sys/fs/inotify/max_user_watches");
  spdlog::warn(
      "--reload: out of inotify watches (fs.inotify.max_user_watches = {}): {} not watched, "
      "changes there go unseen; raise the limit with `sysctl fs.inotify.max_user_watches=524288`"
      " (or exclude big folders with --reload-exclude)",
      trim(limit.value_or("?")), plural(static_cast<long long>(unwatched), "folder"));
}

void Watcher::await() {
  inotify_.async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [this, alive = std::weak_ptr<char>(alive_)](const boost::system::error_code& ec) {
        if (ec || alive.expired()) return;
        readEvents();
        await();
      });
}

void Watcher::readEvents() {
  alignas(inotify_event) std::array<char, std::size_t{64} * 1024> buffer;
  for (;;) {
    const ssize_t n = ::read(inotify_.native_handle(), buffer.data(), buffer.size());
    if (n <= 0) return;  // EAGAIN: all read
    for (std::size_t offset = 0; offset < static_cast<std::size_t>(n);) {
      inotify_event event{};
      std::memcpy(&event, buffer.data() + offset, sizeof event);
      const char* name = buffer.data() + offset + sizeof event;
      onEvent(event.wd, event.mask, event.len > 0 ? std::string(name) : std::string());
      offset += sizeof event + event.len;
    }
  }
}

void Watcher::onEvent(int wd, std::uint32_t mask, const std::string& name) {
  if ((mask & IN_Q_OVERFLOW) != 0) {
    // The kernel dropped events: something changed, no telling what.
    return note("(more changes than inotify could queue)");
  }
  const auto found = folders_.find(wd);
  if (found == folders_.end()) return;
  if ((mask & IN_IGNORED) != 0) {  // the folder is gone, or was unmounted
    folders_.erase(found);
    return;
  }
  const Folder folder = found->second;
  const std::string path = joinPath(folder.path, name);
  if (files_.contains(path)) return note(path);
  if (!folder.tree || name.empty()) return;
  if ((mask & IN_ISDIR) != 0) {
    if (!filter_.watchesFolder(path)) return;
    if ((mask & (IN_CREATE | IN_MOVED_TO)) != 0) {
      addTree(path, true);
    } else if ((mask & IN_MOVED_FROM) != 0) {
      note(path);  // a package moved away: its modules are gone
    }
    return;
  }
  if (filter_.counts(path)) note(path);
}

void Watcher::note(const std::string& path) {
  if (std::find(pending_.begin(), pending_.end(), path) == pending_.end()) {
    pending_.push_back(path);
  }
  const TimePoint now = clock_.now();
  if (!first_change_) first_change_ = now;
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - *first_change_);
  quiet_timer_->enable(
      std::max(std::min(quiet_, quiet_ + kMaxWait - waited), std::chrono::milliseconds::zero()));
}

void Watcher::flush() {
  first_change_.reset();
  if (pending_.empty()) return;
  on_change_(std::exchange(pending_, {}));
}

}  // namespace corral

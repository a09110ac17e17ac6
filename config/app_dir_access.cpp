#include "config/app_dir_access.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <system_error>
#include <vector>

#include "config/config_error.hpp"

namespace corral {
namespace {

constexpr unsigned kMayRead = 4;
constexpr unsigned kMayExec = 1;
// The kernel's own limit on symbolic links followed in one lookup (ELOOP past it).
constexpr int kMaxSymlinks = 40;

// Tags of a POSIX ACL entry as the kernel stores them in system.posix_acl_access.
enum AclTag : std::uint16_t {
  kAclUserObj = 0x01,
  kAclUser = 0x02,
  kAclGroupObj = 0x04,
  kAclGroup = 0x08,
  kAclMask = 0x10,
  kAclOther = 0x20,
};

struct AclEntry {
  std::uint16_t tag = 0;
  std::uint16_t perm = 0;
  std::uint32_t id = 0;
};

constexpr std::uint32_t kAclXattrVersion = 2;

std::uint32_t littleEndian(const unsigned char* bytes, int size) {
  std::uint32_t value = 0;
  for (int i = size - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// The access ACL of `path`, or nothing when it has none (most files: ENODATA), when its
// filesystem has no ACLs (ENOTSUP), or when the attribute cannot be read or makes no sense:
// then the mode bits decide, which is what the kernel does without an ACL.
std::optional<std::vector<AclEntry>> accessAcl(const std::string& path) {
  constexpr const char* kName = "system.posix_acl_access";
  const ssize_t size = ::getxattr(path.c_str(), kName, nullptr, 0);
  if (size < 4) return std::nullopt;
  std::vector<unsigned char> raw(static_cast<std::size_t>(size));
  const ssize_t read = ::getxattr(path.c_str(), kName, raw.data(), raw.size());
  if (read < 4 || (read - 4) % 8 != 0) return std::nullopt;
  if (littleEndian(raw.data(), 4) != kAclXattrVersion) return std::nullopt;
  std::vector<AclEntry> entries;
  for (std::size_t at = 4; at + 8 <= static_cast<std::size_t>(read); at += 8) {
    entries.push_back({static_cast<std::uint16_t>(littleEndian(&raw[at], 2)),
                       static_cast<std::uint16_t>(littleEndian(&raw[at + 2], 2)),
                       littleEndian(&raw[at + 4], 4)});
  }
  return entries;
}

bool inGroup(const WorkerUser& who, unsigned gid) {
  return who.gid == gid || std::find(who.groups.begin(), who.groups.end(), gid) != who.groups.end();
}

// The kernel's posix_acl_permission() for a caller that does not own the file: the first
// matching named user, else any matching group entry that grants `want`, each limited by the
// mask; a group that matched but granted nothing denies; else the other entry.
bool aclPermits(const std::vector<AclEntry>& acl, const struct stat& info, const WorkerUser& who,
                unsigned want) {
  const auto mask = std::find_if(acl.begin(), acl.end(),
                                 [](const AclEntry& entry) { return entry.tag == kAclMask; });
  const auto masked = [&](const AclEntry& entry) {
    const unsigned granted = entry.perm & (mask == acl.end() ? 7U : mask->perm);
    return (granted & want) == want;
  };
  bool group_matched = false;
  for (const AclEntry& entry : acl) {
    switch (entry.tag) {
      case kAclUser:
        if (entry.id == who.uid) return masked(entry);
        break;
      case kAclGroupObj:
      case kAclGroup: {
        const unsigned gid = entry.tag == kAclGroupObj ? info.st_gid : entry.id;
        if (inGroup(who, gid)) {
          group_matched = true;
          if ((entry.perm & want) == want) return masked(entry);
        }
        break;
      }
      case kAclOther: return !group_matched && (entry.perm & want) == want;
      default: break;
    }
  }
  return false;
}

// generic_permission() for a process without capabilities.
bool permits(const std::string& path, const struct stat& info, const WorkerUser& who,
             unsigned want) {
  const unsigned mode = info.st_mode;
  if (info.st_uid == who.uid) return ((mode >> 6) & want) == want;
  // The kernel consults the ACL only when the group bits (then the ACL's mask) are not empty.
  if ((mode & S_IRWXG) != 0) {
    if (const auto acl = accessAcl(path)) return aclPermits(*acl, info, who, want);
  }
  if (inGroup(who, info.st_gid)) return ((mode >> 3) & want) == want;
  return (mode & want) == want;
}

std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string parentOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string joined(const std::string& folder, const std::string& name) {
  return folder == "/" ? "/" + name : folder + "/" + name;
}

std::optional<std::string> readLink(const std::string& path) {
  std::vector<char> buffer(4096);
  const ssize_t size = ::readlink(path.c_str(), buffer.data(), buffer.size());
  if (size < 0 || static_cast<std::size_t>(size) >= buffer.size()) return std::nullopt;
  return std::string(buffer.data(), static_cast<std::size_t>(size));
}

AccessDenial denial(const std::string& path, bool is_target, const struct stat& info) {
  return {path, is_target, info.st_mode, info.st_uid, info.st_gid};
}

// `drwx--x---`, as ls shows it.
std::string modeString(unsigned mode) {
  std::string text = S_ISDIR(mode) ? "d" : "-";
  constexpr std::string_view kLetters = "rwx";
  for (int bit = 8; bit >= 0; --bit) {
    text += (mode >> bit) & 1U ? kLetters[static_cast<std::size_t>(2 - bit % 3)] : '-';
  }
  return text;
}

std::string userName(unsigned uid) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  return found != nullptr ? found->pw_name : std::to_string(uid);
}

std::string groupName(unsigned gid) {
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  ::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found);
  return found != nullptr ? found->gr_name : std::to_string(gid);
}

}  // namespace

std::optional<AccessDenial> findAccessDenial(const std::string& dir, const WorkerUser& who) {
  std::deque<std::string> pending = components(dir);
  // Always a path without symbolic links, so that ".." means its parent, as in the kernel.
  std::string current = "/";
  int links = 0;
  struct stat info {};
  while (!pending.empty()) {
    const std::string name = std::move(pending.front());
    pending.pop_front();
    if (name == ".") continue;
    if (::stat(current.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) return std::nullopt;
    if (!permits(current, info, who, kMayExec)) return denial(current, false, info);
    if (name == "..") {
      current = parentOf(current);
      continue;
    }
    const std::string next = joined(current, name);
    if (::lstat(next.c_str(), &info) != 0) return std::nullopt;
    if (!S_ISLNK(info.st_mode)) {
      current = next;
      continue;
    }
    const auto target = readLink(next);
    if (!target || ++links > kMaxSymlinks) return std::nullopt;
    auto target_parts = components(*target);
    pending.insert(pending.begin(), target_parts.begin(), target_parts.end());
    // Not `current = "/"`: g++ 12 at -O3 warns about that assignment (-Wrestrict, a false
    // positive: GCC bug 105329), which -Werror turns into a failed Release build.
    if (target->starts_with('/')) current.assign(1, '/');
  }
  if (::stat(current.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) return std::nullopt;
  if (!permits(current, info, who, kMayRead | kMayExec)) return denial(current, true, info);
  return std::nullopt;
}

void checkAppDirAccess(const Inputs& inputs, const Config& config) {
  if (!config.user) return;
  // As the shim does (os.path.abspath): against the working directory, lexically.
  std::error_code error;
  std::string path = std::filesystem::absolute(config.app_dir, error).lexically_normal().string();
  if (error) return;
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  const auto refused = findAccessDenial(path, *config.user);
  if (!refused) return;

  const auto app_dir = inputs.get("--app-dir");
  std::string subject;
  if (!app_dir) {
    subject = "--app-dir '.' (the default: " + printable(path) + ")";
  } else {
    subject = describeInput(app_dir->source, app_dir->text);
    if (app_dir->text != path) subject += " (" + printable(path) + ")";
  }
  const auto user = inputs.get("--user");
  const std::string who = user ? describeInput(user->source, user->text) : config.user->name;
  const std::string place = printable(refused->path);
  const std::string remedy =
      refused->is_target ? "make it readable by " : "make " + place + " searchable by ";
  throw ConfigError(subject + ": " + who + " cannot read it: permission denied on " + place + " (" +
                    modeString(refused->mode) + " " + userName(refused->owner) + ":" +
                    groupName(refused->group) + "); " + remedy + printable(config.user->name) +
                    " or move the app");
}

}  // namespace corral

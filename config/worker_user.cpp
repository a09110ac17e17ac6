#include "config/worker_user.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <vector>

#include "util/text.hpp"

namespace corral {
namespace {

std::optional<passwd> findUser(const std::string& text, std::vector<char>& buffer) {
  passwd entry{};
  passwd* found = nullptr;
  buffer.resize(16384);
  if (const auto uid = parseInt<unsigned>(text)) {
    ::getpwuid_r(*uid, &entry, buffer.data(), buffer.size(), &found);
  } else {
    ::getpwnam_r(text.c_str(), &entry, buffer.data(), buffer.size(), &found);
  }
  if (found == nullptr) return std::nullopt;
  return entry;
}

std::optional<unsigned> findGroup(const std::string& text) {
  if (const auto gid = parseInt<unsigned>(text)) return gid;
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  ::getgrnam_r(text.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (found == nullptr) return std::nullopt;
  return found->gr_gid;
}

std::vector<unsigned> supplementaryGroups(const char* name, gid_t primary) {
  int count = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  if (::getgrouplist(name, primary, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));
    ::getgrouplist(name, primary, groups.data(), &count);
  }
  groups.resize(static_cast<std::size_t>(count));
  return {groups.begin(), groups.end()};
}

}  // namespace

WorkerUser resolveWorkerUser(std::string_view user_source, const std::string& user,
                             std::string_view group_source,
                             const std::optional<std::string>& group) {
  if (::geteuid() != 0) {
    failInput(user_source, user,
              "switching the workers to another user needs corral to start as root; drop the "
              "option or start corral as root");
  }
  std::vector<char> buffer;
  WorkerUser result;
  if (const auto entry = findUser(user, buffer)) {
    result = {entry->pw_uid, entry->pw_gid, supplementaryGroups(entry->pw_name, entry->pw_gid),
              entry->pw_name};
  } else if (const auto uid = parseInt<unsigned>(user)) {
    result = {*uid, *uid, {}, user};  // a uid without a passwd entry, as containers often use
  } else {
    failInput(user_source, user, "no such user; create it or pass a numeric uid");
  }
  if (group) {
    const auto gid = findGroup(*group);
    if (!gid) failInput(group_source, *group, "no such group; create it or pass a numeric gid");
    result.gid = *gid;
  }
  if (result.uid == 0) {
    failInput(user_source, user, "is root; the point of --user is that workers do not run as root");
  }
  return result;
}

}  // namespace corral

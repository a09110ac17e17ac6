#include "config/app_dir_access.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using corral::AccessDenial;
using corral::findAccessDenial;
using corral::WorkerUser;

namespace {

namespace fs = std::filesystem;

// Ids no account on a test machine is likely to have: as root, the fixtures are given to
// kOwner so that no identity the tests check is root (root passes every mode check).
constexpr unsigned kOwner = 4242;
constexpr unsigned kOwnerGroup = 4243;
constexpr unsigned kStranger = 4244;
constexpr unsigned kStrangerGroup = 4245;
constexpr unsigned kOtherGroup = 4246;
constexpr unsigned kMember = 4247;

bool runningAsRoot() {
  return ::geteuid() == 0;
}

/// A tree of folders under /tmp (searchable by anyone, as /tmp is), owned by one user and
/// group, removed with everything in it.
class Tree {
 public:
  Tree() {
    std::string pattern = "/tmp/corral-access-test-XXXXXX";
    const char* made = ::mkdtemp(pattern.data());
    REQUIRE(made != nullptr);
    root_ = made;
    owner_ = runningAsRoot() ? kOwner : ::getuid();
    group_ = runningAsRoot() ? kOwnerGroup : ::getgid();
    own(root_, 0755);
  }
  ~Tree() {
    std::error_code ignored;
    fs::permissions(root_, fs::perms::owner_all, ignored);
    for (auto it = fs::recursive_directory_iterator(root_, ignored);
         it != fs::recursive_directory_iterator(); it.increment(ignored)) {
      if (!it->is_symlink(ignored) && it->is_directory(ignored)) {
        fs::permissions(it->path(), fs::perms::owner_all, ignored);
      }
    }
    fs::remove_all(root_, ignored);
  }
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;
  Tree(Tree&&) = delete;
  Tree& operator=(Tree&&) = delete;

  /// Makes a folder (its parents must exist) with exactly `mode`; returns its path.
  std::string dir(const std::string& relative, unsigned mode) const {
    std::string made = path(relative);
    REQUIRE(::mkdir(made.c_str(), 0700) == 0);
    own(made, mode);
    return made;
  }

  std::string link(const std::string& relative, const std::string& target) const {
    std::string made = path(relative);
    REQUIRE(::symlink(target.c_str(), made.c_str()) == 0);
    if (runningAsRoot()) REQUIRE(::lchown(made.c_str(), owner_, group_) == 0);
    return made;
  }

  void chmod(const std::string& relative, unsigned mode) const {
    REQUIRE(::chmod(path(relative).c_str(), mode) == 0);
  }

  std::string path(const std::string& relative = "") const {
    return relative.empty() ? root_ : root_ + "/" + relative;
  }

  WorkerUser owner() const { return {owner_, group_, {}, "owner"}; }
  WorkerUser member() const { return {kMember, kStrangerGroup, {group_}, "member"}; }
  WorkerUser memberByPrimaryGroup() const { return {kMember, group_, {}, "member"}; }
  static WorkerUser stranger() { return {kStranger, kStrangerGroup, {kOtherGroup}, "stranger"}; }

 private:
  void own(const std::string& target, unsigned mode) const {
    if (runningAsRoot()) REQUIRE(::chown(target.c_str(), owner_, group_) == 0);
    // chmod, not mkdir's mode: the umask must not take bits away.
    REQUIRE(::chmod(target.c_str(), static_cast<mode_t>(mode)) == 0);
  }

  std::string root_;
  unsigned owner_ = 0;
  unsigned group_ = 0;
};

/// What the kernel itself says, asked from a child process that has taken `who`'s identity
/// (root only; corral never does this, the test does it to check corral's reasoning).
std::optional<bool> kernelAllows(const std::string& path, const WorkerUser& who) {
  if (!runningAsRoot()) return std::nullopt;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::vector<gid_t> groups(who.groups.begin(), who.groups.end());
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(who.gid) != 0 ||
        ::setuid(who.uid) != 0) {
      ::_exit(2);
    }
    ::_exit(::access(path.c_str(), R_OK | X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) != 2);
  return WEXITSTATUS(status) == 0;
}

/// findAccessDenial, checked against the kernel's own answer where the test can ask it.
std::optional<AccessDenial> judge(const std::string& path, const WorkerUser& who) {
  auto denial = findAccessDenial(path, who);
  if (const auto kernel = kernelAllows(path, who)) {
    INFO("path " << path << ", uid " << who.uid << ": the kernel "
                 << (*kernel ? "allows" : "refuses") << " read and search");
    CHECK(*kernel == !denial.has_value());
  }
  return denial;
}

// The attribute the kernel keeps a POSIX access ACL in (see acl(5)): version 2, then entries
// of tag, permissions and id, little-endian.
struct Acl {
  std::vector<unsigned char> bytes{2, 0, 0, 0};
  Acl& entry(std::uint16_t tag, std::uint16_t perm, std::uint32_t id = 0xffffffff) {
    push(tag, 2);
    push(perm, 2);
    push(id, 4);
    return *this;
  }

 private:
  void push(std::uint32_t value, unsigned size) {
    for (unsigned byte = 0; byte < size; ++byte) {
      bytes.push_back(static_cast<unsigned char>((value >> (8 * byte)) & 0xffU));
    }
  }
};

/// Sets the ACL; false when the filesystem has none.
bool setAcl(const std::string& path, const Acl& acl) {
  if (::setxattr(path.c_str(), "system.posix_acl_access", acl.bytes.data(), acl.bytes.size(), 0) ==
      0) {
    return true;
  }
  INFO("setxattr system.posix_acl_access: errno " << errno);
  REQUIRE((errno == ENOTSUP || errno == EOPNOTSUPP));
  return false;
}

}  // namespace

TEST_CASE("findAccessDenial: a tree anyone may enter is readable", "[unit][access]") {
  Tree tree;
  tree.dir("srv", 0755);
  const auto app = tree.dir("srv/app", 0755);
  CHECK_FALSE(judge(app, Tree::stranger()));
  CHECK_FALSE(judge(app, tree.owner()));
  CHECK_FALSE(judge(app + "/", Tree::stranger()));
  CHECK_FALSE(judge(tree.path("srv/./app"), Tree::stranger()));
  CHECK_FALSE(judge("/", Tree::stranger()));
}

TEST_CASE("findAccessDenial: a private folder on the way is named", "[unit][access]") {
  Tree tree;
  const auto home = tree.dir("home", 0700);  // as /root is
  const auto app = tree.dir("home/app", 0755);
  const auto denial = judge(app, Tree::stranger());
  REQUIRE(denial);
  CHECK(denial->path == home);
  CHECK_FALSE(denial->is_target);
  CHECK((denial->mode & 07777) == 0700);
  CHECK(denial->owner == tree.owner().uid);
  CHECK(denial->group == tree.owner().gid);
  CHECK_FALSE(judge(app, tree.owner()));

  SECTION("search (x) alone is enough on the way") {
    tree.chmod("home", 0711);
    CHECK_FALSE(judge(app, Tree::stranger()));
  }
  SECTION("read without search is not") {
    tree.chmod("home", 0744);
    const auto refused = judge(app, Tree::stranger());
    REQUIRE(refused);
    CHECK(refused->path == home);
  }
  SECTION("the first refusal from the top is the one named") {
    tree.chmod("home/app", 0700);
    const auto refused = judge(app, Tree::stranger());
    REQUIRE(refused);
    CHECK(refused->path == home);
  }
}

TEST_CASE("findAccessDenial: the folder itself needs read and search", "[unit][access]") {
  Tree tree;
  const auto app = tree.dir("app", 0755);
  for (const unsigned mode : {0711U, 0744U, 0700U, 0750U}) {
    tree.chmod("app", mode);
    INFO("mode " << std::oct << mode);
    const auto denial = judge(app, Tree::stranger());
    REQUIRE(denial);
    CHECK(denial->path == app);
    CHECK(denial->is_target);
  }
  tree.chmod("app", 0705);
  CHECK_FALSE(judge(app, Tree::stranger()));
}

TEST_CASE("findAccessDenial: groups, primary and supplementary, get the group bits",
          "[unit][access]") {
  Tree tree;
  tree.dir("shared", 0750);
  const auto app = tree.dir("shared/app", 0750);
  CHECK_FALSE(judge(app, tree.member()));
  CHECK_FALSE(judge(app, tree.memberByPrimaryGroup()));
  const auto denial = judge(app, Tree::stranger());
  REQUIRE(denial);
  CHECK(denial->path == tree.path("shared"));
}

TEST_CASE("findAccessDenial: only the first matching class counts, as in the kernel",
          "[unit][access]") {
  Tree tree;
  SECTION("the owner gets the owner bits, though others may read") {
    const auto app = tree.dir("app", 0075);
    const auto denial = judge(app, tree.owner());
    REQUIRE(denial);
    CHECK(denial->is_target);
    CHECK_FALSE(judge(app, Tree::stranger()));
  }
  SECTION("a group member gets the group bits, though others may read") {
    const auto app = tree.dir("app", 0705);
    CHECK(judge(app, tree.member()));
    CHECK_FALSE(judge(app, Tree::stranger()));
  }
}

TEST_CASE("findAccessDenial: symbolic links are followed as the kernel follows them",
          "[unit][access]") {
  Tree tree;
  tree.dir("open", 0755);
  const auto locked = tree.dir("locked", 0700);
  tree.dir("locked/app", 0755);
  tree.dir("open/app", 0755);

  SECTION("a link into a private folder is refused at that folder") {
    const auto link = tree.link("open/current", tree.path("locked/app"));
    const auto denial = judge(link, Tree::stranger());
    REQUIRE(denial);
    CHECK(denial->path == locked);
  }
  SECTION("a relative link with .. resolves from the link's own folder") {
    tree.dir("open/releases", 0755);
    const auto link = tree.link("open/releases/current", "../app");
    CHECK_FALSE(judge(link, Tree::stranger()));
    const auto into_locked = tree.link("open/releases/hidden", "../../locked/app");
    const auto denial = judge(into_locked, Tree::stranger());
    REQUIRE(denial);
    CHECK(denial->path == locked);
  }
  SECTION("a link kept in a private folder is refused there, wherever it points") {
    const auto link = tree.link("locked/elsewhere", tree.path("open/app"));
    const auto denial = judge(link, Tree::stranger());
    REQUIRE(denial);
    CHECK(denial->path == locked);
  }
  SECTION("the target of a link to a private folder is named as the folder itself") {
    tree.chmod("locked", 0711);
    tree.chmod("locked/app", 0700);
    const auto denial = judge(tree.link("open/current", tree.path("locked/app")), Tree::stranger());
    REQUIRE(denial);
    CHECK(denial->path == tree.path("locked/app"));
    CHECK(denial->is_target);
  }
}

TEST_CASE("findAccessDenial: what cannot be judged is left to the workers", "[unit][access]") {
  Tree tree;
  CHECK_FALSE(findAccessDenial(tree.path("missing/app"), Tree::stranger()));
  tree.link("loop", "loop");
  CHECK_FALSE(findAccessDenial(tree.path("loop"), Tree::stranger()));
}

TEST_CASE("findAccessDenial: POSIX ACLs are judged as the kernel judges them", "[unit][access]") {
  Tree tree;
  const auto app = tree.dir("app", 0700);
  constexpr std::uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08,
                          kMask = 0x10, kOther = 0x20;
  const auto base = [] { return Acl().entry(kUserObj, 7); };

  SECTION("a named user entry grants what the mask lets through") {
    const bool has_acls = setAcl(
        app,
        base().entry(kUser, 5, kStranger).entry(kGroupObj, 0).entry(kMask, 5).entry(kOther, 0));
    if (!has_acls) return;
    CHECK_FALSE(judge(app, Tree::stranger()));
    CHECK(judge(app, tree.member()));
    REQUIRE(setAcl(
        app,
        base().entry(kUser, 5, kStranger).entry(kGroupObj, 0).entry(kMask, 4).entry(kOther, 0)));
    CHECK(judge(app, Tree::stranger()));
  }
  SECTION("a named group entry grants its members") {
    const bool has_acls = setAcl(
        app,
        base().entry(kGroupObj, 0).entry(kGroup, 5, kOtherGroup).entry(kMask, 7).entry(kOther, 0));
    if (!has_acls) return;
    CHECK_FALSE(judge(app, Tree::stranger()));
    CHECK(judge(app, tree.member()));
  }
  SECTION("a group that matched but grants nothing denies, whatever others get") {
    const bool has_acls = setAcl(
        app,
        base().entry(kGroupObj, 0).entry(kGroup, 0, kOtherGroup).entry(kMask, 7).entry(kOther, 5));
    if (!has_acls) return;
    CHECK(judge(app, Tree::stranger()));
    CHECK(judge(app, tree.memberByPrimaryGroup()));
    const WorkerUser outsider{kStranger, kStrangerGroup, {}, "outsider"};
    CHECK_FALSE(judge(app, outsider));
  }
}

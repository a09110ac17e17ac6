#include "runtime/scoreboard.hpp"

#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace corral {
namespace {

// One page: the shim's SCOREBOARD_SIZE.
constexpr off_t kSize = 4096;

int createPage() {
  const int fd = ::memfd_create("corral-scoreboard", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if (::ftruncate(fd, kSize) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Scoreboard::Scoreboard() : fd_(createPage()) {
  if (fd_ < 0) {
    spdlog::debug("no scoreboard ({}): workers accept connections as they are woken",
                  std::strerror(errno));
  }
}

Scoreboard::~Scoreboard() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace corral

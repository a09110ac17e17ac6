#include "runtime/pidfile.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/startup_error.hpp"

namespace corral {

Pidfile::Pidfile(std::string path)
    : path_(std::move(path)), content_(std::to_string(::getpid()) + "\n") {
  const std::string temporary = path_ + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const bool written =
      fd >= 0 &&
      ::write(fd, content_.data(), content_.size()) == static_cast<ssize_t>(content_.size()) &&
      ::close(fd) == 0;
  if (!written || ::rename(temporary.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temporary.c_str());
    throw StartupError("cannot write --pidfile " + path_ + ": " + std::strerror(err) +
                       "; check that its directory exists and is writable");
  }
}

Pidfile::~Pidfile() {
  std::ifstream in(path_);
  std::stringstream current;
  current << in.rdbuf();
  if (current.str() == content_) ::unlink(path_.c_str());
}

}  // namespace corral

#pragma once

#include <string>

namespace corral {

/// corral's pid in a file, for init scripts and `kill $(cat ...)`. Written atomically (a
/// temporary file renamed over the path), so a reader never sees a partial number; removed on
/// destruction unless another process has replaced it meanwhile.
class Pidfile {
 public:
  /// Writes the file; throws StartupError when it cannot.
  explicit Pidfile(std::string path);
  Pidfile(const Pidfile&) = delete;
  Pidfile& operator=(const Pidfile&) = delete;
  ~Pidfile();

 private:
  std::string path_;
  std::string content_;
};

}  // namespace corral

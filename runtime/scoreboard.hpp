#pragma once

namespace corral {

/// The page of memory the workers share to spread connections evenly between them: each holds
/// a cell saying how many connections it has, and leaves a new connection to a peer that has
/// fewer (the worker shim's Balancer and Scoreboard describe the cells). corral only creates
/// it, as a memfd every worker inherits, so that workers forked from different templates (a
/// reload) and workers started afresh all see the same page.
class Scoreboard {
 public:
  /// The page, or none (fd() < 0) where memfd_create is unavailable; workers then accept as
  /// they are woken.
  Scoreboard();
  Scoreboard(const Scoreboard&) = delete;
  Scoreboard& operator=(const Scoreboard&) = delete;
  ~Scoreboard();

  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace corral

#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "admin/http.hpp"
#include "config/bind_address.hpp"

namespace corral {

/// A small HTTP/1.1 server for the admin endpoints, on corral's own event loop, so that it
/// answers while every worker is blocked. Hostile or broken clients cannot silence it:
/// - a request head must arrive whole within kHeadTimeout and fit in kMaxHeaderBytes;
/// - at most kMaxSessions connections are served at once, and a new one evicts the oldest that
///   has not sent a whole request head yet, so a probe always gets in: slow or silent clients
///   (a slowloris) lose their place, not the probe;
/// - a descriptor is held in reserve, so that even with corral's descriptor table full, a
///   connection can be accepted and closed rather than left to fill the listen queue.
/// Nothing a client sends reaches the supervisor but a parsed request given to the handler.
///
/// It lives as long as corral's event loop runs, so its own handlers may hold `this`; each
/// session keeps itself alive (shared_from_this) while its operations are pending.
class AdminServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest& request)>;
  static constexpr std::size_t kMaxHeaderBytes = std::size_t{8} * 1024;
  static constexpr std::size_t kMaxSessions = 64;
  static constexpr std::chrono::seconds kHeadTimeout{5};

  /// Binds and listens at once; throws StartupError.
  AdminServer(boost::asio::io_context& io, const BindAddress& address, Handler handler);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();

  /// "http://127.0.0.1:8081" with the kernel's port, or "unix:/path".
  const std::string& url() const { return url_; }
  /// Requests answered so far.
  std::uint64_t requests() const;

 private:
  class Session;
  struct Registry;
  void accept();
  void onAcceptError(const boost::system::error_code& ec);
  void makeRoom();

  boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol> acceptor_;
  boost::asio::steady_timer retry_timer_;
  Handler handler_;
  std::string url_;
  std::string unlink_path_;
  std::shared_ptr<Registry> registry_;
  int reserve_fd_ = -1;  ///< /dev/null, given up for a moment when the descriptor table is full
};

}  // namespace corral

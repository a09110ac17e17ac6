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

/// A small HTTP/1.1 server for the admin endpoints, on corral's own event loop, so it answers
/// while every worker is blocked. Defensive by default: requests over 8 KiB of headers get 400,
/// idle connections are closed after a timeout, and at most kMaxConnections are open at once.
/// Nothing a client sends can reach the supervisor but a parsed request given to the handler.
///
/// It lives as long as corral's event loop runs, so its own handlers may hold `this`; each
/// session keeps itself alive (shared_from_this) while its operations are pending.
class AdminServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest& request)>;
  static constexpr std::size_t kMaxHeaderBytes = std::size_t{8} * 1024;
  static constexpr std::size_t kMaxConnections = 64;
  static constexpr std::chrono::seconds kIdleTimeout{10};

  /// Binds and listens at once; throws StartupError.
  AdminServer(boost::asio::io_context& io, const BindAddress& address, Handler handler);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  ~AdminServer();

  /// "http://127.0.0.1:8081" with the kernel's port, or "unix:/path".
  const std::string& url() const { return url_; }
  /// Requests answered so far.
  std::uint64_t requests() const { return *requests_; }

 private:
  class Session;
  void accept();

  boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol> acceptor_;
  boost::asio::steady_timer retry_timer_;
  Handler handler_;
  std::string url_;
  std::string unlink_path_;
  std::shared_ptr<std::size_t> open_sessions_ = std::make_shared<std::size_t>(0);
  std::shared_ptr<std::uint64_t> requests_ = std::make_shared<std::uint64_t>(0);
};

}  // namespace corral

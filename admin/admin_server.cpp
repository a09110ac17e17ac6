#include "admin/admin_server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "runtime/listener.hpp"

namespace corral {
namespace asio = boost::asio;
using Socket = asio::generic::stream_protocol::socket;

class AdminServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, Handler handler, std::shared_ptr<std::size_t> counter,
          std::shared_ptr<std::uint64_t> requests)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(kMaxHeaderBytes),
        handler_(std::move(handler)),
        counter_(std::move(counter)),
        requests_(std::move(requests)) {
    ++*counter_;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { --*counter_; }

  void readRequest() {
    timer_.expires_after(kIdleTimeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->socket_.close();
    });
    asio::async_read_until(socket_, buffer_, "\r\n\r\n",
                           [self = shared_from_this()](const boost::system::error_code& ec,
                                                       std::size_t n) { self->onRead(ec, n); });
  }

 private:
  void onRead(const boost::system::error_code& ec, std::size_t n) {
    timer_.cancel();
    if (ec == asio::error::not_found) {
      return reply({400, "text/plain", "request head over 8 KiB\n"}, false, false);
    }
    if (ec) return;  // closed, timed out or reset: nothing to answer
    const std::string head(asio::buffers_begin(buffer_.data()),
                           asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n));
    buffer_.consume(n);
    const auto request = parseRequestHead(head);
    if (!request) return reply({400, "text/plain", "bad request\n"}, false, false);
    ++*requests_;
    reply(handler_(*request), request->method == "HEAD", request->keep_alive);
  }

  void reply(const HttpResponse& response, bool head_only, bool keep_alive) {
    out_ = renderResponse(response, head_only, keep_alive);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), keep_alive](const boost::system::error_code& ec, std::size_t) {
          if (!ec && keep_alive) return self->readRequest();
          boost::system::error_code ignored;
          self->socket_.shutdown(Socket::shutdown_both, ignored);
          self->socket_.close(ignored);
        });
  }

  Socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buffer_;
  std::string out_;
  Handler handler_;
  std::shared_ptr<std::size_t> counter_;
  std::shared_ptr<std::uint64_t> requests_;
};

AdminServer::AdminServer(asio::io_context& io, const BindAddress& address, Handler handler)
    : acceptor_(io), retry_timer_(io), handler_(std::move(handler)) {
  // The socket is bound by the same code as the public listeners, then handed to asio.
  Listener listener = Listener::open(address, 128);
  url_ = listener.url();
  const int fd = listener.release();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const int family = ss.ss_family;
  acceptor_.assign(asio::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP), fd);
  if (address.kind == BindAddress::Kind::Unix) unlink_path_ = address.path;
  accept();
}

AdminServer::~AdminServer() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

void AdminServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, Socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE and friends: back off briefly instead of spinning on a full descriptor table.
      spdlog::warn("admin accept failed: {}", ec.message());
      retry_timer_.expires_after(std::chrono::milliseconds(100));
      retry_timer_.async_wait([this](const boost::system::error_code& e) {
        if (!e) accept();
      });
      return;
    }
    if (*open_sessions_ < kMaxConnections) {
      std::make_shared<Session>(std::move(socket), handler_, open_sessions_, requests_)
          ->readRequest();
    }  // else: the socket closes here; a probe retries
    accept();
  });
}

}  // namespace corral

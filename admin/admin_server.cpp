#include "admin/admin_server.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <list>

#include "runtime/listener.hpp"

namespace corral {
namespace asio = boost::asio;
using Socket = asio::generic::stream_protocol::socket;

// What the server and its sessions share. A session may outlive the server (its last handler
// is destroyed with the io_context), so this lives as long as either.
struct AdminServer::Registry {
  std::list<std::weak_ptr<Session>> waiting;  ///< no whole request head yet, oldest first
  std::size_t open = 0;                       ///< sessions not closed yet
  std::uint64_t requests = 0;
};

class AdminServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, Handler handler, std::shared_ptr<Registry> registry)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(kMaxHeaderBytes),
        handler_(std::move(handler)),
        registry_(std::move(registry)) {
    ++registry_->open;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { close(); }

  void readRequest() {
    place_ = registry_->waiting.insert(registry_->waiting.end(), weak_from_this());
    waiting_ = true;
    timer_.expires_after(kHeadTimeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->close();
    });
    asio::async_read_until(socket_, buffer_, "\r\n\r\n",
                           [self = shared_from_this()](const boost::system::error_code& ec,
                                                       std::size_t n) { self->onRead(ec, n); });
  }

  /// Ends the session now; its pending operations complete as cancelled.
  void close() noexcept {
    stopWaiting();
    if (closed_) return;
    closed_ = true;
    --registry_->open;
    boost::system::error_code ignored;
    timer_.cancel(ignored);
    socket_.close(ignored);
  }

 private:
  void stopWaiting() noexcept {
    if (!waiting_) return;
    waiting_ = false;
    registry_->waiting.erase(place_);
  }

  void onRead(const boost::system::error_code& ec, std::size_t n) {
    stopWaiting();
    timer_.cancel();
    if (ec == asio::error::not_found) {
      return reply({400, "text/plain", "request head over 8 KiB\n"}, false, false);
    }
    if (ec || closed_) return;  // closed, timed out, evicted or reset: nothing to answer
    const std::string head(asio::buffers_begin(buffer_.data()),
                           asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n));
    buffer_.consume(n);
    const auto request = parseRequestHead(head);
    if (!request) return reply({400, "text/plain", "bad request\n"}, false, false);
    ++registry_->requests;
    reply(handler_(*request), request->method == "HEAD", request->keep_alive);
  }

  void reply(const HttpResponse& response, bool head_only, bool keep_alive) {
    out_ = renderResponse(response, head_only, keep_alive);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), keep_alive](const boost::system::error_code& ec, std::size_t) {
          if (!ec && keep_alive && !self->closed_) return self->readRequest();
          boost::system::error_code ignored;
          self->socket_.shutdown(Socket::shutdown_both, ignored);
          self->close();
        });
  }

  Socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buffer_;
  std::string out_;
  Handler handler_;
  std::shared_ptr<Registry> registry_;
  std::list<std::weak_ptr<Session>>::iterator place_;  ///< in registry_->waiting, if waiting_
  bool waiting_ = false;
  bool closed_ = false;
};

AdminServer::AdminServer(asio::io_context& io, const BindAddress& address, Handler handler)
    : acceptor_(io),
      retry_timer_(io),
      handler_(std::move(handler)),
      registry_(std::make_shared<Registry>()),
      reserve_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
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
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

std::uint64_t AdminServer::requests() const {
  return registry_->requests;
}

void AdminServer::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, Socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) return onAcceptError(ec);
    makeRoom();
    std::make_shared<Session>(std::move(socket), handler_, registry_)->readRequest();
    accept();
  });
}

// The oldest session still waiting for its request head gives its place to the new one: a
// probe sends its request at once and is answered in a moment, so only clients that hold a
// connection without a request lose out.
void AdminServer::makeRoom() {
  while (registry_->open >= kMaxSessions && !registry_->waiting.empty()) {
    const auto oldest = registry_->waiting.front().lock();
    if (!oldest) {
      registry_->waiting.pop_front();
      continue;
    }
    oldest->close();
  }
}

// EMFILE, ENFILE: the descriptor table is full. The connection stays in the listen queue, where
// it and those behind it would wait (and make the queue overflow) until a descriptor is free:
// give up the reserve one, take the connection and close it, so that its client learns at once,
// then get the reserve back. Anything else: back off briefly rather than spin.
void AdminServer::onAcceptError(const boost::system::error_code& ec) {
  if ((ec == asio::error::no_descriptors || ec.value() == ENFILE) && reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ::close(fd);
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    spdlog::warn("admin: no file descriptor free ({}); a connection was closed unanswered",
                 ec.message());
  } else {
    spdlog::warn("admin accept failed: {}", ec.message());
  }
  retry_timer_.expires_after(std::chrono::milliseconds(100));
  retry_timer_.async_wait([this](const boost::system::error_code& e) {
    if (!e) accept();
  });
}

}  // namespace corral

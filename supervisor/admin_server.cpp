#include "supervisor/admin_server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "supervisor/listener.hpp"

namespace corral {
namespace asio = boost::asio;
using Socket = asio::generic::stream_protocol::socket;

namespace {

struct Request {
  std::string method;
  std::string target;
  bool keep_alive = false;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Parses the head of a request; nullopt when it is not HTTP/1.x. A request with a body is
// answered and closed rather than read, since no endpoint takes one.
std::optional<Request> parseHead(std::string_view head) {
  const auto line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return std::nullopt;
  const std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
  Request request{std::string(line.substr(0, sp1)),
                  std::string(line.substr(sp1 + 1, sp2 - sp1 - 1))};
  if (request.method.empty() || request.target.empty() || request.target.front() != '/') {
    return std::nullopt;
  }
  bool close = version == "HTTP/1.0";
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    const auto end = rest.find("\r\n");
    const std::string_view header = rest.substr(0, end);
    rest = end == std::string_view::npos ? "" : rest.substr(end + 2);
    const auto colon = header.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = header.substr(0, colon);
    const std::string_view value = trim(header.substr(colon + 1));
    if (iequals(name, "connection")) close = !iequals(value, "keep-alive");
    if ((iequals(name, "content-length") && value != "0") || iequals(name, "transfer-encoding")) {
      close = true;
    }
  }
  request.keep_alive = !close;
  return request;
}

std::string renderResponse(const AdminResponse& response, bool head_only, bool keep_alive) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "Connection: {}\r\n\r\n",
      response.status, reasonPhrase(response.status), response.content_type, response.body.size(),
      keep_alive ? "keep-alive" : "close");
  if (!head_only) out += response.body;
  return out;
}

}  // namespace

class AdminServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, Handler handler, std::shared_ptr<std::size_t> counter)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(kMaxHeaderBytes),
        handler_(std::move(handler)),
        counter_(std::move(counter)) {
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
    const auto request = parseHead(head);
    if (!request) return reply({400, "text/plain", "bad request\n"}, false, false);
    reply(handler_(request->method, request->target), request->method == "HEAD",
          request->keep_alive);
  }

  void reply(const AdminResponse& response, bool head_only, bool keep_alive) {
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
  close();
  if (!unlink_path_.empty()) ::unlink(unlink_path_.c_str());
}

void AdminServer::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
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
      std::make_shared<Session>(std::move(socket), handler_, open_sessions_)->readRequest();
    }  // else: the socket closes here; a probe retries
    accept();
  });
}

}  // namespace corral

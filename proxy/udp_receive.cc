#include "proxy/udp_receive.h"

#include <array>

namespace tollgate::proxy {

awaitable<Datagram> receiveDatagram(asio::ip::udp::socket& sock, boost::system::error_code& ec) {
  thread_local std::array<uint8_t, 65536> buffer;
  for (;;) {
    ec = {};
    co_await sock.async_wait(asio::ip::udp::socket::wait_read,
                             asio::redirect_error(use_awaitable, ec));
    if (ec) co_return Datagram{};
    // Non-blocking, so a datagram another reader took in between (none today: one loop per
    // socket) means waiting again rather than blocking the thread.
    if (!sock.non_blocking()) sock.non_blocking(true, ec);
    if (ec) co_return Datagram{};
    Datagram d;
    size_t n = sock.receive_from(asio::buffer(buffer), d.from, 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
    if (ec) co_return Datagram{};
    d.bytes = std::span<const uint8_t>(buffer.data(), n);
    co_return d;
  }
}

}  // namespace tollgate::proxy

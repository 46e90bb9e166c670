#pragma once

#include <cstdint>
#include <span>

#include "proxy/asio.h"

namespace tollgate::proxy {

// One datagram read by receiveDatagram(). `bytes` points into the calling thread's receive
// buffer: valid until that thread's next receiveDatagram(), so copy or parse it before any
// co_await.
struct Datagram {
  std::span<const uint8_t> bytes;
  asio::ip::udp::endpoint from;
};

// Waits until `sock` is readable, then reads one datagram (up to 64 KiB) into a buffer shared by
// every socket of this thread. The per-pod UDP sockets (DNS proxy, QUIC telemetry: four per
// pod) are idle nearly always; a buffer of their own while waiting would cost 256 KiB per pod.
// `ec` is set on failure (operation_aborted when the socket was closed).
awaitable<Datagram> receiveDatagram(asio::ip::udp::socket& sock, boost::system::error_code& ec);

}  // namespace tollgate::proxy

#pragma once

// GCC 12 flags asio's coroutine frame allocator (operator new/delete pairs it cannot see
// through) with a false -Wmismatched-new-delete at the end of every coroutine.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace tollgate::proxy {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

}  // namespace tollgate::proxy

#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "policy/ip.h"
#include "proxy/asio.h"
#include "proxy/socket_util.h"

#include <boost/asio/thread_pool.hpp>

namespace tollgate::proxy {

// ---- pure DNS message helpers (RFC 1035) ---------------------------------------------------

inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsTypeAaaa = 28;

// A recursive (RD) query for one name and type. Fails on an invalid name (empty label, label
// > 63 bytes, name > 253 bytes).
Result<std::string> encodeDnsQuery(uint16_t id, std::string_view name, uint16_t qtype);

// The addresses of type `qtype` in the answer section of a response to query `id`. CNAME
// records are skipped (the recursive upstream already followed them). Errors: wrong id, not a
// response, truncated, RCODE != 0 (NXDOMAIN etc.), malformed or compressed-pointer loops.
Result<std::vector<policy::IpAddress>> parseDnsResponse(std::string_view msg, uint16_t id,
                                                        uint16_t qtype);

// "1.2.3.4", "1.2.3.4:5353", "[2001:db8::1]:53", "2001:db8::1" -> endpoint (default port 53).
Result<Endpoint> parseResolverAddress(std::string_view text);

// ---- async stub resolver -------------------------------------------------------------------

// Resolves the names the proxy connects to (allowed hosts are reached by name, never by the IP
// the app asked for). Queries A and AAAA over UDP to the configured upstreams from the agent's
// netns with a timeout; with no upstream configured it falls back to getaddrinfo on a small
// thread pool. Answers are cached for a few seconds (kCacheTtl) so a burst of connections to
// one host costs one lookup.
class Resolver {
 public:
  // Record TTLs are not tracked; a short fixed lifetime bounds how stale an answer can be.
  static constexpr std::chrono::seconds kCacheTtl{5};
  static constexpr size_t kCacheMax = 4096;

  explicit Resolver(asio::io_context& io) : io_(io), pool_(1) {}
  ~Resolver();

  // Replaces the upstream list (config reload). Invalid entries are skipped with a warning.
  void setUpstreams(const std::vector<std::string>& upstreams);
  void setTimeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::vector<Endpoint> upstreams() const;

  // IPv4 answers first, then IPv6. An IP literal resolves to itself.
  awaitable<Result<std::vector<policy::IpAddress>>> resolve(std::string name);

 private:
  awaitable<Result<std::vector<policy::IpAddress>>> resolveUncached(std::string name);
  std::optional<std::vector<policy::IpAddress>> cached(const std::string& name);
  awaitable<Result<std::vector<policy::IpAddress>>> queryUpstream(Endpoint upstream,
                                                                  std::string name);
  asio::io_context& io_;
  asio::thread_pool pool_;
  mutable std::mutex mu_;
  std::vector<Endpoint> upstreams_;
  struct Cached {
    std::chrono::steady_clock::time_point expires;
    std::vector<policy::IpAddress> addresses;
  };
  std::map<std::string, Cached> cache_;
  std::chrono::milliseconds timeout_{2000};
};

}  // namespace tollgate::proxy

#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "bpf/tollgate_abi.h"
#include "common/error.h"

namespace tollgate::bpf {

// The netns cookie of the netns socket `fd` lives in (SO_NETNS_COOKIE), what
// bpf_get_netns_cookie() gives the programs for a socket there.
Result<uint64_t> netnsCookie(int fd);

// The key under which the programs file what they know about a pod socket for the agent (struct
// tg_peer_key), as the agent's own socket in the pod's netns (`netnsCookie`) sees that pod
// socket: `peer`, an accepted connection's peer or a datagram's source. An IPv4-mapped peer is
// IPv4, as the programs fold it.
Result<tg_peer_key> peerKey(uint64_t netnsCookie, const sockaddr_storage& peer);

// "peer 127.0.0.1 port 40000, netns cookie 4099", for errors.
std::string describe(const tg_peer_key& key);

}  // namespace tollgate::bpf

/* What tollgate's BPF programs and the agent's C++ share: configuration, map keys and values.
 * Included by the .bpf.c files (after vmlinux.h) and by C++ (bpf/skb_backstop.h); the sizes
 * are checked on both sides, so a field added on one side only fails the build. */
#ifndef TOLLGATE_BPF_ABI_H
#define TOLLGATE_BPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The per-pod counters, the index into tg_counters.packets. The drop classes: the backstop
 * (cgroup_skb) counts IPv6 as a class of its own whatever the protocol; the redirect counts what
 * it refuses by protocol, as the nftables mode does. TG_COUNT_DNS counts DNS sent to the DNS
 * proxy (the nftables mode's "dns"), TG_DROP_DOT DNS over TLS refused (its "drop_dot"). */
enum tg_drop_class {
  TG_DROP_TCP = 0,
  TG_DROP_UDP = 1,
  TG_DROP_ICMP = 2,
  TG_DROP_OTHER = 3,
  TG_DROP_IPV6 = 4,
  TG_DROP_CLASSES = 5,
  TG_COUNT_DNS = 5,
  TG_DROP_DOT = 6,
  TG_COUNTER_SLOTS = 7,
};

/* The .rodata of both objects, set before load; the same for every pod of a node (skb_backstop
 * reads quic_port only). There is no packet mark here on purpose: the programs are attached to
 * pod cgroups only, and the proxy's own sockets are created by the agent in its own cgroup, so
 * they never meet them. A socket's cgroup is fixed when it is created; a pod root with NET_ADMIN
 * can set any mark, but cannot move a socket out of its cgroup. */
struct tg_config {
  __u16 proxy_port; /* the capture listener, 127.0.0.1 / ::1 in each pod netns */
  __u16 dns_port;   /* the DNS proxy, same addresses */
  __u16 quic_port;  /* the read-only QUIC telemetry socket */
  __u16 pad;
};

/* Per pod (map key: the pod's cgroup id; key 0 collects drops of a cgroup with no entry, and of
 * packets without a socket), packets the backstop dropped, by class. */
struct tg_counters {
  __u64 packets[TG_COUNTER_SLOTS];
};

/* Where a redirected connection was going: map tg_orig_dst by the client socket's cookie, and
 * tg_orig_by_peer by struct tg_peer_key; where a datagram to udp/443 was going: tg_quic_by_peer
 * by struct tg_peer_key (see struct tg_quic_orig). addr is in network byte order, an IPv4 address
 * in addr[0] (the rest zero) when family is 4; port is in host byte order. */
struct tg_orig_dst {
  __u32 addr[4];
  __u16 port;
  __u16 family; /* 4 or 6; 0 only from tg_quic_orig: no destination */
};

/* A redirected connection as the proxy sees it from its accepted socket, or a datagram as the
 * QUIC telemetry socket sees it: the pod's netns (SO_NETNS_COOKIE of the agent's socket there)
 * and the peer, the pod socket's local address and port. An IPv4-mapped address is IPv4 (family
 * 4), so the key is the same whichever listener family accepted it. addr and port in the byte
 * orders of tg_orig_dst; pad is zero (the whole key is hashed). */
struct tg_peer_key {
  __u64 netns_cookie;
  __u32 addr[4];
  __u16 port;
  __u16 family; /* 4 or 6 */
  __u32 pad;
};

/* A pod UDP socket's last send to udp/443 (or its connect there), map tg_quic_orig by socket
 * cookie, written by sock_redirect: where it was going (dst.family 0: to the telemetry socket's
 * own address, nothing redirected) and the socket's netns, taken there because the connect and
 * sendmsg hooks have bpf_get_netns_cookie on every kernel the eBPF mode runs on and cgroup_skb
 * has it only on recent ones. As the datagram leaves on lo, skb_backstop copies dst to
 * tg_quic_by_peer under (netns_cookie, the datagram's source address and port): a connected
 * socket has no source port yet when its connect hook runs, and its send()s meet no sendmsg
 * hook, so only the packet has the whole key. */
struct tg_quic_orig {
  struct tg_orig_dst dst;
  __u32 pad;
  __u64 netns_cookie;
};

#define TG_CONFIG_SIZE 8
#define TG_ORIG_DST_SIZE 20
#define TG_COUNTERS_SIZE 56
#define TG_PEER_KEY_SIZE 32
#define TG_QUIC_ORIG_SIZE 32

#ifdef __cplusplus
static_assert(sizeof(struct tg_config) == TG_CONFIG_SIZE, "tg_config layout changed");
static_assert(sizeof(struct tg_counters) == TG_COUNTERS_SIZE, "tg_counters layout changed");
static_assert(sizeof(struct tg_orig_dst) == TG_ORIG_DST_SIZE, "tg_orig_dst layout changed");
static_assert(sizeof(struct tg_peer_key) == TG_PEER_KEY_SIZE, "tg_peer_key layout changed");
static_assert(sizeof(struct tg_quic_orig) == TG_QUIC_ORIG_SIZE, "tg_quic_orig layout changed");
#else
_Static_assert(sizeof(struct tg_config) == TG_CONFIG_SIZE, "tg_config layout changed");
_Static_assert(sizeof(struct tg_counters) == TG_COUNTERS_SIZE, "tg_counters layout changed");
_Static_assert(sizeof(struct tg_orig_dst) == TG_ORIG_DST_SIZE, "tg_orig_dst layout changed");
_Static_assert(sizeof(struct tg_peer_key) == TG_PEER_KEY_SIZE, "tg_peer_key layout changed");
_Static_assert(sizeof(struct tg_quic_orig) == TG_QUIC_ORIG_SIZE, "tg_quic_orig layout changed");
#endif

#endif

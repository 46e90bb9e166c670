// SPDX-License-Identifier: GPL-2.0
/* The eBPF mode's redirect, attached to each pod's cgroup: cgroup/connect4/6 and
 * cgroup/sendmsg4/6 rewrite where a pod's sockets go before anything is sent; cgroup/recvmsg4/6
 * and cgroup/getpeername4/6 undo it in what the pod is told about its peers.
 *
 *   TCP connect to anything but loopback  -> the capture listener, 127.0.0.1 / ::1 :proxy_port;
 *                                            the original destination kept by socket cookie
 *                                            (tg_orig_dst), and by the client's netns and local
 *                                            address and port (tg_orig_by_peer, the sockops
 *                                            program) for the proxy, which knows only its peer
 *   UDP (connect or sendmsg) to port 53   -> the DNS proxy, :dns_port; the server asked kept by
 *                                            socket cookie (tg_udp_orig), and given back by
 *                                            cgroup/recvmsg4/6 as the source of its replies
 *   UDP to port 443                       -> the read-only QUIC telemetry socket, :quic_port;
 *                                            the original destination and the socket's netns
 *                                            kept by socket cookie (tg_quic_orig), for
 *                                            skb_backstop to file under the datagram's source
 *   any other UDP sendmsg off loopback    -> refused (EPERM), counted drop_udp (853: drop_dot);
 *                                            a UDP connect there is left alone, its sends meet
 *                                            skb_backstop
 *   TCP to 53 -> the DNS proxy's TCP side; TCP to 853 (DoT) -> refused, drop_dot
 *   ICMP (ping sockets) and other protocols reaching a connect hook -> refused, counted
 * getpeername of a redirected TCP socket or a UDP socket connected to port 53 gives the original
 * destination.
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) is handled as IPv4 and rewritten to ::ffff:127.0.0.1.
 * What gets past these (raw sockets, a socket from before the attach) meets skb_backstop. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tollgate_abi.h"
#include "tollgate_counters.bpf.h"
#include "tollgate_quic.bpf.h"

#define TG_SOCK_STREAM 1
#define TG_SOCK_DGRAM 2
#define TG_AF_INET 2
#define TG_AF_INET6 10

const volatile struct tg_config tg_cfg = {};

/* Stores into the context at a constant offset. The verifier only accepts ctx + constant, and
 * clang otherwise folds an offset into a register that holds the same constant (the IPv4 family
 * 4 and offsetof(user_ip4) 4, here) and stores through ctx + register. */
#define TG_CTX_STORE(ctx, field, value)                                              \
  asm volatile("*(u32 *)(%[c] + %[off]) = %[v]" ::[c] "r"(ctx),                     \
               [off] "i"(__builtin_offsetof(struct bpf_sock_addr, field)), [v] "r"((__u32)(value)) \
               : "memory")

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64); /* socket cookie */
  __type(value, struct tg_orig_dst);
} tg_orig_dst SEC(".maps");

/* The same destinations as the proxy finds them from its accepted socket. The proxy takes (looks
 * up and deletes) an entry once; one it never takes ages out. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct tg_peer_key);
  __type(value, struct tg_orig_dst);
} tg_orig_by_peer SEC(".maps");

/* Where a pod's UDP socket last sent DNS (port 53), by socket cookie: what recvmsg4/6 put back as
 * the source of the DNS proxy's replies. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64); /* socket cookie */
  __type(value, struct tg_orig_dst);
} tg_udp_orig SEC(".maps");

/* Counts a refusal or a DNS redirect for the pod of the calling task. */
static __always_inline void tg_count(__u32 slot)
{
#define TG_TASK_ANCESTOR(level) bpf_get_current_ancestor_cgroup_id(level)
  TG_COUNT_DROP(TG_TASK_ANCESTOR, slot);
}

/* The port a UDP datagram to `port` is sent to instead; 0: refuse it (counted). */
static __always_inline __u16 tg_udp_port(__u16 port)
{
  if (port == 53) {
    tg_count(TG_COUNT_DNS);
    return tg_cfg.dns_port;
  }
  if (port == 443) {
    /* Never forwarded: the QUIC socket only reads Initials (the client falls back to TCP), so it
     * counts as a dropped datagram, as in the nftables mode. */
    tg_count(TG_DROP_UDP);
    return tg_cfg.quic_port;
  }
  tg_count(port == 853 ? TG_DROP_DOT : TG_DROP_UDP);
  return 0;
}

/* Where a TCP connect to `port` goes: the DNS proxy's TCP side for 53 (any address, as the
 * nftables mode), else the capture listener; 0: refused (DNS over TLS, counted drop_dot, so a
 * pod cannot take its names around the DNS proxy). */
static __always_inline __u16 tg_tcp_port(__u16 port)
{
  if (port == 53) {
    tg_count(TG_COUNT_DNS);
    return tg_cfg.dns_port;
  }
  if (port == 853) {
    tg_count(TG_DROP_DOT);
    return 0;
  }
  return tg_cfg.proxy_port;
}

/* Keeps where a UDP socket sent DNS. */
static __always_inline void tg_keep_dns(void *ctx, struct tg_orig_dst *o)
{
  __u64 cookie = bpf_get_socket_cookie(ctx);
  bpf_map_update_elem(&tg_udp_orig, &cookie, o, BPF_ANY);
}

/* Keeps where a UDP socket sent QUIC (family 0: to the telemetry socket itself), with its netns. */
static __always_inline void tg_keep_quic(void *ctx, const struct tg_orig_dst *o)
{
  struct tg_quic_orig q = {.dst = *o, .netns_cookie = bpf_get_netns_cookie(ctx)};
  __u64 cookie = bpf_get_socket_cookie(ctx);
  bpf_map_update_elem(&tg_quic_orig, &cookie, &q, BPF_ANY);
}

/* A UDP socket sending straight to the telemetry socket's port on loopback: what it sends there
 * was not redirected, so an earlier destination of the same socket must not be filed for it.
 * Except a send to where the socket is connected: an IPv6 socket connected to an IPv4-mapped
 * address meets cgroup/sendmsg4 on every send(), with that address (udpv6_sendmsg hands
 * udp_sendmsg a sockaddr_in), and for a redirected one that is the loopback target its connect
 * hook rewrote to and filed the destination for. ip4: network order, 0 for ::1 (the quirk is
 * IPv4's); port: host order. */
static __always_inline void tg_quic_direct(struct bpf_sock_addr *ctx, __u32 type, __u32 ip4,
                                           __u16 port)
{
  if (type != TG_SOCK_DGRAM || port != tg_cfg.quic_port)
    return;
  struct bpf_sock *sk = ctx->sk;
  if (ip4 && sk && sk->dst_ip4 == ip4 && sk->dst_port == bpf_htons(port))
    return;
  struct tg_orig_dst none = {};
  tg_keep_quic(ctx, &none);
}

/* A TCP socket going straight to loopback has no original destination. */
static __always_inline void tg_forget(void *ctx)
{
  __u64 cookie = bpf_get_socket_cookie(ctx);
  bpf_map_delete_elem(&tg_orig_dst, &cookie);
}

#define TG_IPPROTO_ICMP 1
#define TG_IPPROTO_TCP 6
#define TG_IPPROTO_UDP 17
#define TG_IPPROTO_ICMPV6 58

/* What a socket off loopback may be: TCP (SOCK_STREAM) or UDP (SOCK_DGRAM); anything else that
 * reaches these hooks (a ping socket is SOCK_DGRAM, a raw socket's connect) is refused and
 * counted here, so that its port is never taken for a UDP port. Returns the type, 0 refused. */
static __always_inline __u32 tg_kind(struct bpf_sock_addr *ctx)
{
  __u32 type = ctx->type, proto = ctx->protocol;
  if (type == TG_SOCK_STREAM && proto == TG_IPPROTO_TCP)
    return TG_SOCK_STREAM;
  if (type == TG_SOCK_DGRAM && proto == TG_IPPROTO_UDP)
    return TG_SOCK_DGRAM;
  tg_count(proto == TG_IPPROTO_ICMP || proto == TG_IPPROTO_ICMPV6 ? TG_DROP_ICMP : TG_DROP_OTHER);
  return 0;
}

/* 1 allow (possibly rewritten), 0 refuse. ip4: in/out, network order; port: in/out, host order.
 * type: tg_kind(), 0 for a socket refused already. */
static __always_inline int tg_redirect4(struct bpf_sock_addr *ctx, __u32 type, __u32 *ip4,
                                        __u16 *port)
{
  if ((*ip4 & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000)) {
    /* The pod's loopback: stays in the pod (the proxy refuses its own ports). A TCP socket can
     * connect again after a failed or AF_UNSPEC-undone connect: it must not keep an earlier
     * redirect's destination. */
    if (type == TG_SOCK_STREAM)
      tg_forget(ctx);
    tg_quic_direct(ctx, type, *ip4, *port);
    return 1;
  }
  if (type == TG_SOCK_STREAM) {
    __u16 to = tg_tcp_port(*port);
    if (!to)
      return 0;
    struct tg_orig_dst o = {.addr = {*ip4, 0, 0, 0}, .port = *port, .family = 4};
    __u64 cookie = bpf_get_socket_cookie(ctx);
    bpf_map_update_elem(&tg_orig_dst, &cookie, &o, BPF_ANY);
    *ip4 = bpf_htonl(0x7f000001);
    *port = to;
    return 1;
  }
  if (type == TG_SOCK_DGRAM) {
    __u16 to = tg_udp_port(*port);
    if (!to)
      return 0;
    struct tg_orig_dst o = {.addr = {*ip4, 0, 0, 0}, .port = *port, .family = 4};
    if (*port == 53)
      tg_keep_dns(ctx, &o);
    else
      tg_keep_quic(ctx, &o); /* 443: the only other port tg_udp_port lets through */
    *ip4 = bpf_htonl(0x7f000001);
    *port = to;
    return 1;
  }
  return 0;
}

/* A UDP connect sends nothing: off 53 and 443 it is left alone (iputils ping, for one, connects a
 * UDP socket only to learn its source address), and what it would send is dropped and counted by
 * skb_backstop, since a connected socket's sends meet no sendmsg hook. */
static __always_inline int tg_udp_connect_left(__u32 kind, __u16 port, int connect)
{
  return connect && kind == TG_SOCK_DGRAM && port != 53 && port != 443;
}

static __always_inline int tg_sock4(struct bpf_sock_addr *ctx, int connect)
{
  __u32 ip = ctx->user_ip4;
  __u16 port = bpf_ntohs(ctx->user_port);
  __u32 kind = (ip & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000) ? ctx->type : tg_kind(ctx);
  if (tg_udp_connect_left(kind, port, connect))
    return 1;
  if (!tg_redirect4(ctx, kind, &ip, &port))
    return 0;
  TG_CTX_STORE(ctx, user_ip4, ip);
  TG_CTX_STORE(ctx, user_port, bpf_htons(port));
  return 1;
}

static __always_inline int tg_sock6(struct bpf_sock_addr *ctx, int connect)
{
  __u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
  __u16 port = bpf_ntohs(ctx->user_port);
  if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
    /* IPv4-mapped: IPv4 on the wire */
    __u32 ip = a3;
    __u32 kind = (ip & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000) ? ctx->type : tg_kind(ctx);
    if (tg_udp_connect_left(kind, port, connect))
      return 1;
    if (!tg_redirect4(ctx, kind, &ip, &port))
      return 0;
    TG_CTX_STORE(ctx, user_ip6[3], ip);
    TG_CTX_STORE(ctx, user_port, bpf_htons(port));
    return 1;
  }
  if (a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1)) {
    __u32 type = ctx->type; /* read once: see TG_CTX_STORE on what clang does to ctx offsets */
    if (type == TG_SOCK_STREAM)
      tg_forget(ctx); /* ::1, as for 127/8 */
    tg_quic_direct(ctx, type, 0, port);
    return 1;
  }
  __u32 kind = tg_kind(ctx);
  if (tg_udp_connect_left(kind, port, connect))
    return 1;
  if (kind == TG_SOCK_STREAM) {
    __u16 to = tg_tcp_port(port);
    if (!to)
      return 0;
    struct tg_orig_dst o = {.addr = {a0, a1, a2, a3}, .port = port, .family = 6};
    __u64 cookie = bpf_get_socket_cookie(ctx);
    bpf_map_update_elem(&tg_orig_dst, &cookie, &o, BPF_ANY);
    port = to;
  } else if (kind == TG_SOCK_DGRAM) {
    __u16 to = tg_udp_port(port);
    if (!to)
      return 0;
    struct tg_orig_dst o = {.addr = {a0, a1, a2, a3}, .port = port, .family = 6};
    if (port == 53)
      tg_keep_dns(ctx, &o);
    else
      tg_keep_quic(ctx, &o);
    port = to;
  } else {
    return 0;
  }
  TG_CTX_STORE(ctx, user_ip6[0], 0);
  TG_CTX_STORE(ctx, user_ip6[1], 0);
  TG_CTX_STORE(ctx, user_ip6[2], 0);
  TG_CTX_STORE(ctx, user_ip6[3], bpf_htonl(1));
  TG_CTX_STORE(ctx, user_port, bpf_htons(port));
  return 1;
}

SEC("cgroup/connect4")
int tg_sock4_connect(struct bpf_sock_addr *ctx) { return tg_sock4(ctx, 1); }

SEC("cgroup/sendmsg4")
int tg_sock4_sendmsg(struct bpf_sock_addr *ctx) { return tg_sock4(ctx, 0); }

SEC("cgroup/connect6")
int tg_sock6_connect(struct bpf_sock_addr *ctx) { return tg_sock6(ctx, 1); }

SEC("cgroup/sendmsg6")
int tg_sock6_sendmsg(struct bpf_sock_addr *ctx) { return tg_sock6(ctx, 0); }

/* The redirect undone for what a socket is told about its peer: when the address in ctx is the
 * loopback redirect target 127.0.0.1:port and `map` knows where the socket was going (as IPv4),
 * ctx gets that back. Anything else is left as it is. */
static __always_inline void tg_restore4(struct bpf_sock_addr *ctx, void *map, __u16 port)
{
  if (ctx->user_ip4 != bpf_htonl(0x7f000001) || ctx->user_port != bpf_htons(port))
    return;
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct tg_orig_dst *o = bpf_map_lookup_elem(map, &cookie);
  if (!o || o->family != 4)
    return;
  TG_CTX_STORE(ctx, user_ip4, o->addr[0]);
  TG_CTX_STORE(ctx, user_port, bpf_htons(o->port));
}

/* The same for an IPv6 socket: [::1]:port stands for an IPv6 destination, [::ffff:127.0.0.1]:port
 * for an IPv4 one, given back IPv4-mapped. */
static __always_inline void tg_restore6(struct bpf_sock_addr *ctx, void *map, __u16 port)
{
  if (ctx->user_port != bpf_htons(port))
    return;
  __u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
  __u16 family;
  if (a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1))
    family = 6;
  else if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff) && a3 == bpf_htonl(0x7f000001))
    family = 4;
  else
    return;
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct tg_orig_dst *o = bpf_map_lookup_elem(map, &cookie);
  if (!o || o->family != family)
    return;
  if (family == 4) {
    TG_CTX_STORE(ctx, user_ip6[3], o->addr[0]);
  } else {
    TG_CTX_STORE(ctx, user_ip6[0], o->addr[0]);
    TG_CTX_STORE(ctx, user_ip6[1], o->addr[1]);
    TG_CTX_STORE(ctx, user_ip6[2], o->addr[2]);
    TG_CTX_STORE(ctx, user_ip6[3], o->addr[3]);
  }
  TG_CTX_STORE(ctx, user_port, bpf_htons(o->port));
}

/* The source of a UDP datagram a pod socket receives: the DNS proxy's reply comes from where the
 * query was sent, so a resolver that checks it (glibc does) takes it. recvmsg must return 1. */
SEC("cgroup/recvmsg4")
int tg_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
  tg_restore4(ctx, &tg_udp_orig, tg_cfg.dns_port);
  return 1;
}

SEC("cgroup/recvmsg6")
int tg_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
  tg_restore6(ctx, &tg_udp_orig, tg_cfg.dns_port);
  return 1;
}

/* What a redirected socket is told its peer is: a TCP socket the destination it connected to (the
 * proxy serves that), a connected UDP socket the DNS server it asked. Only the loopback redirect
 * target (:proxy_port, :dns_port) is rewritten. getpeername must return 1. */
SEC("cgroup/getpeername4")
int tg_sock4_getpeername(struct bpf_sock_addr *ctx)
{
  if (ctx->type == TG_SOCK_STREAM)
    tg_restore4(ctx, &tg_orig_dst, tg_cfg.proxy_port);
  else if (ctx->type == TG_SOCK_DGRAM)
    tg_restore4(ctx, &tg_udp_orig, tg_cfg.dns_port);
  return 1;
}

SEC("cgroup/getpeername6")
int tg_sock6_getpeername(struct bpf_sock_addr *ctx)
{
  if (ctx->type == TG_SOCK_STREAM)
    tg_restore6(ctx, &tg_orig_dst, tg_cfg.proxy_port);
  else if (ctx->type == TG_SOCK_DGRAM)
    tg_restore6(ctx, &tg_udp_orig, tg_cfg.dns_port);
  return 1;
}

/* At BPF_SOCK_OPS_TCP_CONNECT_CB the client's local address and port are set and no SYN is sent
 * yet, so the entry is there before the proxy can accept. A connect that was not redirected (to
 * loopback, the proxy's port among others) deletes whatever an earlier connection from the same
 * address and port left, so it is never taken for this one. */
static __always_inline void tg_by_peer(struct bpf_sock_ops *skops)
{
  struct tg_peer_key k = {};
  k.netns_cookie = bpf_get_netns_cookie(skops);
  k.port = (__u16)skops->local_port;
  if (skops->family == TG_AF_INET) {
    k.addr[0] = skops->local_ip4;
    k.family = 4;
  } else if (skops->family == TG_AF_INET6) {
    __u32 a0 = skops->local_ip6[0], a1 = skops->local_ip6[1], a2 = skops->local_ip6[2],
          a3 = skops->local_ip6[3];
    if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
      k.addr[0] = a3; /* IPv4-mapped: the proxy's IPv4 listener sees a.b.c.d */
      k.family = 4;
    } else {
      k.addr[0] = a0;
      k.addr[1] = a1;
      k.addr[2] = a2;
      k.addr[3] = a3;
      k.family = 6;
    }
  } else {
    return;
  }
  __u64 cookie = bpf_get_socket_cookie(skops);
  struct tg_orig_dst *o = bpf_map_lookup_elem(&tg_orig_dst, &cookie);
  if (o)
    bpf_map_update_elem(&tg_orig_by_peer, &k, o, BPF_ANY);
  else
    bpf_map_delete_elem(&tg_orig_by_peer, &k);
}

SEC("sockops")
int tg_sockops_orig(struct bpf_sock_ops *skops)
{
  if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB)
    tg_by_peer(skops);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";

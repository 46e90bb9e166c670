// SPDX-License-Identifier: GPL-2.0
/* The eBPF mode's fail-closed backstop, attached to each pod's cgroup (cgroup_skb/egress), with
 * the sockops program that tells it which TCP sockets the pod opened itself.
 *
 * In eBPF mode the connect/sendmsg hooks send a pod's TCP, DNS and QUIC to the agent's sockets on
 * the pod's loopback. What still leaves on another device is dropped and counted by class, unless
 * it is the pod answering a connection made to it: a TCP socket the pod accepted (its SYN-ACK comes
 * from a request socket; an accepted socket never went through BPF_SOCK_OPS_TCP_CONNECT_CB), or
 * IPv6 neighbour discovery. Raw sockets, AF_INET packets of a socket that escaped the connect hook
 * and TCP Fast Open SYNs of an active socket all meet the drop. (AF_PACKET frames never traverse
 * the IP stack of the pod; the host fence is their line.)
 *
 * On lo it also files where a datagram to the QUIC telemetry socket (127.0.0.1 / ::1 :quic_port)
 * was going before sock_redirect sent it there: tg_quic_orig by socket cookie has it, and only the
 * packet has the source port a connected socket got after its connect hook ran (tg_quic_by_peer,
 * read by the agent with the telemetry socket's netns cookie and the datagram's source). */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tollgate_abi.h"

#define TG_ETH_P_IP 0x0800
#define TG_ETH_P_IPV6 0x86DD
#define TG_NEXTHDR_ICMPV6 58
#define TG_LOOPBACK_IFINDEX 1 /* lo is always ifindex 1 in its netns */
#define TG_SOCK_STREAM 1      /* SOCK_STREAM: a #define, so not in vmlinux.h */

#include "tollgate_counters.bpf.h"
#include "tollgate_quic.bpf.h"

#define TG_IP_OFFSET_MASK 0x1fff /* iphdr.frag_off without the flags */

const volatile struct tg_config tg_cfg = {};

/* Sockets a pod opened actively (connect, TCP Fast Open), by socket cookie. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, __u8);
} tg_active SEC(".maps");

/* Where the datagrams to the telemetry socket were going, by struct tg_peer_key: the pod's netns
 * and the datagram's source address and port. The agent only looks (a QUIC client sends its
 * Initial more than once from the same port); each datagram files its own, so a port reused by
 * another socket is filed anew, and an entry no datagram refreshes ages out. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct tg_peer_key);
  __type(value, struct tg_orig_dst);
} tg_quic_by_peer SEC(".maps");

/* A packet leaving on lo: when it is a UDP datagram to the telemetry socket from a socket the
 * redirect saw send to udp/443 (or to the telemetry socket itself: family 0, nothing to say),
 * files that socket's destination under the datagram's source. A socket the hooks never saw (one
 * from before the attach) has no netns cookie here and files nothing. */
static __always_inline void tg_quic_file(struct __sk_buff *skb)
{
  if (!tg_cfg.quic_port)
    return;
  struct tg_peer_key k = {};
  struct udphdr udp;
  if (skb->protocol == bpf_htons(TG_ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
      return;
    if (ip.protocol != IPPROTO_UDP || ip.daddr != bpf_htonl(0x7f000001) ||
        (ip.frag_off & bpf_htons(TG_IP_OFFSET_MASK)))
      return;
    if (bpf_skb_load_bytes(skb, ip.ihl * 4, &udp, sizeof(udp)) < 0)
      return;
    k.addr[0] = ip.saddr;
    k.family = 4;
  } else if (skb->protocol == bpf_htons(TG_ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
      return;
    __u32 *d = ip6.daddr.in6_u.u6_addr32;
    if (ip6.nexthdr != IPPROTO_UDP || d[0] || d[1] || d[2] || d[3] != bpf_htonl(1))
      return; /* not udp to ::1 (or behind extension headers: not the redirect's) */
    if (bpf_skb_load_bytes(skb, sizeof(ip6), &udp, sizeof(udp)) < 0)
      return;
    __u32 *s = ip6.saddr.in6_u.u6_addr32;
    k.addr[0] = s[0];
    k.addr[1] = s[1];
    k.addr[2] = s[2];
    k.addr[3] = s[3];
    k.family = 6;
  } else {
    return;
  }
  if (udp.dest != bpf_htons(tg_cfg.quic_port))
    return;
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct tg_quic_orig *q = bpf_map_lookup_elem(&tg_quic_orig, &cookie);
  if (!q)
    return;
  k.netns_cookie = q->netns_cookie;
  k.port = bpf_ntohs(udp.source);
  bpf_map_update_elem(&tg_quic_by_peer, &k, &q->dst, BPF_ANY);
}

/* A TCP packet of a connection made TO the pod. */
static __always_inline int tg_tcp_answer(struct __sk_buff *skb)
{
  struct bpf_sock *sk = skb->sk;
  if (!sk)
    return 0;
  struct bpf_sock *full = bpf_sk_fullsock(sk);
  if (!full)
    return 1; /* a request socket: the SYN-ACK of a listener */
  if (full->type != TG_SOCK_STREAM || full->protocol != IPPROTO_TCP)
    return 0; /* a raw socket forging TCP */
  __u64 cookie = bpf_get_socket_cookie(skb);
  return bpf_map_lookup_elem(&tg_active, &cookie) == NULL;
}

/* 1: the packet may leave; 0: drop it, counted as *cls. */
static __always_inline int tg_backstop(struct __sk_buff *skb, __u32 *cls)
{
  if (skb->ifindex == TG_LOOPBACK_IFINDEX) {
    tg_quic_file(skb);
    return 1; /* stays in the pod: the redirected flows, the pod talking to itself */
  }
  if (skb->protocol == bpf_htons(TG_ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0) {
      *cls = TG_DROP_OTHER;
      return 0;
    }
    if ((ip.daddr & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000))
      return 1;
    switch (ip.protocol) {
    case IPPROTO_TCP:
      if (tg_tcp_answer(skb))
        return 1;
      *cls = TG_DROP_TCP;
      return 0;
    case IPPROTO_UDP:
      *cls = TG_DROP_UDP;
      return 0;
    case IPPROTO_ICMP:
      *cls = TG_DROP_ICMP;
      return 0;
    default:
      *cls = TG_DROP_OTHER;
      return 0;
    }
  }
  if (skb->protocol == bpf_htons(TG_ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    *cls = TG_DROP_IPV6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
      return 0;
    __u32 *d = ip6.daddr.in6_u.u6_addr32;
    if (d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == bpf_htonl(1))
      return 1; /* ::1 */
    if (ip6.nexthdr == IPPROTO_TCP)
      return tg_tcp_answer(skb);
    if (ip6.nexthdr == TG_NEXTHDR_ICMPV6) {
      __u8 type;
      if (bpf_skb_load_bytes(skb, sizeof(ip6), &type, 1) < 0)
        return 0;
      /* Router/neighbour solicitation and advertisement (RFC 4861: hop limit 255, which
       * receivers insist on, so they cannot be forwarded) and MLD reports (hop limit 1). */
      if ((type == 133 || type == 135 || type == 136) && ip6.hop_limit == 255)
        return 1;
      if ((type == 131 || type == 143) && ip6.hop_limit == 1)
        return 1;
    }
    return 0;
  }
  *cls = TG_DROP_OTHER;
  return 0;
}

SEC("cgroup_skb/egress")
int tg_skb_egress(struct __sk_buff *skb)
{
  __u32 cls = TG_DROP_OTHER;
  if (tg_backstop(skb, &cls))
    return 1;
#define TG_SKB_ANCESTOR(level) bpf_skb_ancestor_cgroup_id(skb, level)
  TG_COUNT_DROP(TG_SKB_ANCESTOR, cls);
  return 0;
}

SEC("sockops")
int tg_sockops(struct bpf_sock_ops *ops)
{
  if (ops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
    __u64 cookie = bpf_get_socket_cookie(ops);
    __u8 one = 1;
    bpf_map_update_elem(&tg_active, &cookie, &one, BPF_ANY);
  }
  return 1;
}

char LICENSE[] SEC("license") = "GPL";

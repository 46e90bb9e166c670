/* tg_quic_orig, the map both objects use for the QUIC telemetry's original destinations (BPF
 * side only; struct tg_quic_orig in tollgate_abi.h says what is in it). sock_redirect writes it in
 * its connect and sendmsg hooks, skb_backstop reads it as a datagram leaves on lo. The agent
 * loads skb_backstop first and hands this map to sock_redirect (bpf_map__reuse_fd), like tg_drops,
 * so both must declare it the same: here. */
#ifndef TOLLGATE_QUIC_BPF_H
#define TOLLGATE_QUIC_BPF_H

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64); /* socket cookie */
  __type(value, struct tg_quic_orig);
} tg_quic_orig SEC(".maps");

#endif

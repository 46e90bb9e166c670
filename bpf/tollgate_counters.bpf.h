/* The drop counters both objects write (BPF side only): tg_drops, per pod cgroup id, by class.
 * The agent loads skb_backstop first and hands its map to sock_redirect (bpf_map__reuse_fd), so
 * a pod has one set of counters whichever program refused its packet. */
#ifndef TOLLGATE_COUNTERS_BPF_H
#define TOLLGATE_COUNTERS_BPF_H

/* How deep below the cgroup2 root a pod's cgroup may be (kubepods/burstable/pod<uid> is 3). */
#define TG_MAX_CGROUP_LEVEL 8

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64); /* the pod cgroup's id; 0: drops of no tracked pod */
  __type(value, struct tg_counters);
} tg_drops SEC(".maps");

/* The counters of the tracked pod cgroup among `id_at(level)`'s ancestors (the process may sit
 * in a container's cgroup below the pod's, where the programs are attached), else bucket 0. */
#define TG_COUNT_DROP(id_at, cls)                                         \
  do {                                                                    \
    struct tg_counters *c_ = NULL;                                        \
    for (int l_ = 1; l_ <= TG_MAX_CGROUP_LEVEL && !c_; l_++) {            \
      __u64 id_ = id_at(l_);                                              \
      if (!id_)                                                           \
        break;                                                            \
      c_ = bpf_map_lookup_elem(&tg_drops, &id_);                          \
    }                                                                     \
    if (!c_) {                                                            \
      __u64 zero_ = 0;                                                    \
      c_ = bpf_map_lookup_elem(&tg_drops, &zero_);                        \
    }                                                                     \
    if (c_)                                                               \
      __sync_fetch_and_add(&c_->packets[(cls) < TG_COUNTER_SLOTS ? (cls) : TG_DROP_OTHER], 1); \
  } while (0)

#endif

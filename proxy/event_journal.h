#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proxy/access_log.h"

namespace tollgate::proxy {

// One thing that happened on the node that an operator follows with `tollgatectl log -f`: a
// connection that ended (its access record), a DNS name refused, a QUIC attempt, rule drift.
struct Event {
  uint64_t seq = 0;      // set by EventJournal::append, increasing from 1
  int64_t unixMs = 0;    // set by append when 0
  std::string kind;      // "conn" | "dns" | "quic" | "drift"
  std::string ns;        // the pod's, "" for node events
  std::string pod;
  std::string text;      // the one-line human form
  std::map<std::string, std::string> fields;  // the structured form (-o json), by field name
  // A connection's event keeps its access record as it is and gets text and fields when read:
  // sessions append one per connection, readers are rare.
  std::optional<AccessRecord> connection;
};

// The event of a connection's access record. Read back, its fields are identity, dst, name,
// protocol, decision, reason, decided_by, route, bytes_up, bytes_down, duration_ms,
// name_addr_mismatch.
Event connectionEvent(const AccessRecord& r);

// A bounded in-memory ring of the newest events, read by cursor: a reader asks for what came
// after the last sequence number it saw and is told how many it missed when the ring moved past
// them (a follower that falls behind loses the oldest events, never silently). Thread-safe.
class EventJournal {
 public:
  explicit EventJournal(size_t capacity = 8192) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Stamps seq (and the time when unset) and keeps it, dropping the oldest when full.
  void append(Event e);

  struct Page {
    std::vector<Event> events;  // seq > after, oldest first, matching the filter
    uint64_t next = 0;          // the cursor for the next read: the newest seq looked at
    uint64_t missed = 0;        // events after `after` that had left the ring already
  };
  // Events with seq > after whose pod matches (ns/pod empty: any), at most max of them. after =
  // UINT64_MAX starts at the newest event: only what comes next is returned by later reads.
  Page read(uint64_t after, const std::string& ns, const std::string& pod, size_t max) const;

  uint64_t newest() const;

 private:
  Page readLocked(uint64_t after, const std::string& ns, const std::string& pod, size_t max) const;

  mutable std::mutex mu_;
  size_t capacity_;
  std::deque<Event> ring_;
  uint64_t nextSeq_ = 1;
};

}  // namespace tollgate::proxy

#include "proxy/event_journal.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace tollgate::proxy {
namespace {

// Text and fields of a connection event, made when it is read.
void describeConnection(Event& e) {
  const AccessRecord& r = *e.connection;
  auto dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  e.text = fmt::format("\"{}\" \"{}\" {} {} {} {} \"{}\" {} {} {}ms", dash(r.originalDst),
                       dash(r.name), dash(r.protocol), dash(r.decision), dash(r.reason),
                       dash(r.decidedBy), dash(r.route), r.bytesUp, r.bytesDown, r.durationMs);
  e.fields = {
      {"identity", dash(r.identity)},
      {"dst", dash(r.originalDst)},
      {"name", dash(r.name)},
      {"protocol", dash(r.protocol)},
      {"decision", dash(r.decision)},
      {"reason", dash(r.reason)},
      {"decided_by", dash(r.decidedBy)},
      {"route", dash(r.route)},
      {"bytes_up", std::to_string(r.bytesUp)},
      {"bytes_down", std::to_string(r.bytesDown)},
      {"duration_ms", std::to_string(r.durationMs)},
      {"name_addr_mismatch", r.nameAddrMismatch ? "true" : "false"},
  };
  e.connection.reset();
}

}  // namespace

Event connectionEvent(const AccessRecord& r) {
  Event e;
  e.kind = "conn";
  e.ns = r.podNs;
  e.pod = r.podName;
  e.connection = r;  // stamped when appended: the event is the connection's end
  return e;
}

void EventJournal::append(Event e) {
  if (e.unixMs == 0) {
    e.unixMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  }
  std::lock_guard lock(mu_);
  e.seq = nextSeq_++;
  ring_.push_back(std::move(e));
  while (ring_.size() > capacity_) ring_.pop_front();
}

EventJournal::Page EventJournal::read(uint64_t after, const std::string& ns,
                                      const std::string& pod, size_t max) const {
  Page page = readLocked(after, ns, pod, max);
  for (Event& e : page.events) {
    if (e.connection) describeConnection(e);
  }
  return page;
}

EventJournal::Page EventJournal::readLocked(uint64_t after, const std::string& ns,
                                            const std::string& pod, size_t max) const {
  Page page;
  std::lock_guard lock(mu_);
  uint64_t newest = nextSeq_ - 1;
  if (after == std::numeric_limits<uint64_t>::max() || after > newest) {
    page.next = newest;
    return page;
  }
  page.next = after;
  uint64_t oldest = ring_.empty() ? nextSeq_ : ring_.front().seq;
  if (after + 1 < oldest) page.missed = oldest - after - 1;
  // seq is contiguous in the ring: the first event after the cursor is at a computed index.
  size_t start = after + 1 > oldest ? static_cast<size_t>(after + 1 - oldest) : 0;
  for (size_t i = start; i < ring_.size(); ++i) {
    const Event& e = ring_[i];
    if (page.events.size() >= max) break;
    page.next = e.seq;
    if (!ns.empty() && e.ns != ns) continue;
    if (!pod.empty() && e.pod != pod) continue;
    page.events.push_back(e);
  }
  if (page.events.size() < max) page.next = std::max(page.next, newest);
  return page;
}

uint64_t EventJournal::newest() const {
  std::lock_guard lock(mu_);
  return nextSeq_ - 1;
}

}  // namespace tollgate::proxy

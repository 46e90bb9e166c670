#include "proxy/event_journal.h"

#include <gtest/gtest.h>

#include <limits>
#include <thread>

#include "proxy/access_log.h"

namespace tollgate::proxy {
namespace {

Event ev(const std::string& ns, const std::string& pod, const std::string& text) {
  Event e;
  e.kind = "conn";
  e.ns = ns;
  e.pod = pod;
  e.text = text;
  return e;
}

TEST(EventJournal, ReadsByCursorOldestFirst) {
  EventJournal j(16);
  for (int i = 0; i < 5; ++i) j.append(ev("default", "a", std::to_string(i)));
  auto p = j.read(0, "", "", 100);
  ASSERT_EQ(p.events.size(), 5u);
  EXPECT_EQ(p.events[0].seq, 1u);
  EXPECT_EQ(p.events[0].text, "0");
  EXPECT_EQ(p.events[4].seq, 5u);
  EXPECT_NE(p.events[0].unixMs, 0);
  EXPECT_EQ(p.next, 5u);
  EXPECT_EQ(p.missed, 0u);
  EXPECT_TRUE(j.read(p.next, "", "", 100).events.empty());
  j.append(ev("default", "a", "5"));
  auto q = j.read(p.next, "", "", 100);
  ASSERT_EQ(q.events.size(), 1u);
  EXPECT_EQ(q.events[0].text, "5");
}

TEST(EventJournal, PagesAndFiltersByPod) {
  EventJournal j(100);
  for (int i = 0; i < 10; ++i) j.append(ev("default", i % 2 ? "odd" : "even", std::to_string(i)));
  auto p = j.read(0, "default", "odd", 2);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].text, "1");
  EXPECT_EQ(p.events[1].text, "3");
  EXPECT_EQ(p.next, 4u);  // the page ended at seq 4 (text "3")
  auto q = j.read(p.next, "default", "odd", 100);
  ASSERT_EQ(q.events.size(), 3u);
  EXPECT_EQ(q.events[2].text, "9");
  EXPECT_EQ(q.next, 10u);
  EXPECT_TRUE(j.read(0, "other", "", 100).events.empty());
  EXPECT_EQ(j.read(0, "other", "", 100).next, 10u);  // looked at everything, nothing matched
}

TEST(EventJournal, AFollowerThatFellBehindIsToldHowManyItMissed) {
  EventJournal j(4);
  for (int i = 0; i < 10; ++i) j.append(ev("default", "a", std::to_string(i)));
  auto p = j.read(2, "", "", 100);
  EXPECT_EQ(p.missed, 4u);  // seq 3..6 left the ring; 7..10 are there
  ASSERT_EQ(p.events.size(), 4u);
  EXPECT_EQ(p.events[0].seq, 7u);
  EXPECT_EQ(j.read(6, "", "", 100).missed, 0u);
}

TEST(EventJournal, StartingAtTheNewestOrAfterARestart) {
  EventJournal j(8);
  for (int i = 0; i < 3; ++i) j.append(ev("default", "a", std::to_string(i)));
  auto p = j.read(std::numeric_limits<uint64_t>::max(), "", "", 100);
  EXPECT_TRUE(p.events.empty());
  EXPECT_EQ(p.next, 3u);
  // A cursor from a previous agent (ahead of this one's numbering) restarts at the newest.
  auto q = j.read(500, "", "", 100);
  EXPECT_TRUE(q.events.empty());
  EXPECT_EQ(q.next, 3u);
}

TEST(EventJournal, ConcurrentAppendsKeepSequenceNumbersUnique) {
  EventJournal j(100000);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&j] {
      for (int i = 0; i < 1000; ++i) j.append(ev("default", "a", "x"));
    });
  }
  for (auto& t : ts) t.join();
  auto p = j.read(0, "", "", 10000);
  ASSERT_EQ(p.events.size(), 4000u);
  for (size_t i = 0; i < p.events.size(); ++i) EXPECT_EQ(p.events[i].seq, i + 1);
}

TEST(EventJournal, ConnectionEventCarriesTheAccessRecord) {
  AccessRecord r;
  r.podNs = "default";
  r.podName = "client";
  r.identity = "spiffe://cluster.local/ns/default/sa/client";
  r.originalDst = "198.18.0.10:80";
  r.name = "blocked.test";
  r.protocol = "http";
  r.decision = "deny";
  r.reason = "not_in_registry";
  EventJournal j;
  j.append(connectionEvent(r));
  auto page = j.read(0, "", "", 10);
  ASSERT_EQ(page.events.size(), 1u);
  const Event& e = page.events[0];
  EXPECT_FALSE(e.connection);  // described on the way out
  EXPECT_EQ(e.kind, "conn");
  EXPECT_EQ(e.ns, "default");
  EXPECT_EQ(e.pod, "client");
  EXPECT_EQ(e.fields.at("name"), "blocked.test");
  EXPECT_EQ(e.fields.at("decision"), "deny");
  EXPECT_EQ(e.fields.at("route"), "-");
  EXPECT_NE(e.text.find("\"198.18.0.10:80\" \"blocked.test\" http deny not_in_registry"), std::string::npos)
      << e.text;
}

}  // namespace
}  // namespace tollgate::proxy

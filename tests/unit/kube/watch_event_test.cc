#include "kube/watch_event.h"

#include <gtest/gtest.h>

namespace tollgate::kube {
namespace {

TEST(WatchEventTest, ParsesEveryType) {
  auto a = parseWatchEvent(
      R"({"type":"ADDED","object":{"kind":"ServiceEntry","metadata":{"name":"se","namespace":"ns","resourceVersion":"42"}}})");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->type, WatchEvent::Type::Added);
  EXPECT_EQ(a->key, "ns/se");
  EXPECT_EQ(a->resourceVersion, "42");
  EXPECT_EQ(a->object["kind"], "ServiceEntry");

  auto m = parseWatchEvent(R"({"type":"MODIFIED","object":{"metadata":{"name":"cluster-wide","resourceVersion":"43"}}})");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, WatchEvent::Type::Modified);
  EXPECT_EQ(m->key, "cluster-wide");

  auto d = parseWatchEvent(R"({"type":"DELETED","object":{"metadata":{"name":"x","namespace":"n","resourceVersion":"44"}}})");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, WatchEvent::Type::Deleted);

  auto b = parseWatchEvent(R"({"type":"BOOKMARK","object":{"kind":"ServiceEntry","metadata":{"resourceVersion":"99"}}})");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->type, WatchEvent::Type::Bookmark);
  EXPECT_EQ(b->resourceVersion, "99");

  auto e = parseWatchEvent(
      R"j({"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 1 (20)","reason":"Expired","code":410}})j");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->type, WatchEvent::Type::Error);
  EXPECT_EQ(e->errorCode, 410);
  EXPECT_EQ(e->errorMessage, "too old resource version: 1 (20)");
}

TEST(WatchEventTest, BadLinesAreErrorsNotCrashes) {
  const std::string deep(100000, '[');
  const std::pair<std::string, const char*> cases[] = {
      {"", "not JSON"},
      {"{\"type\":\"ADDED\",", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"object":{}})", "no \"type\""},
      {R"({"type":7,"object":{}})", "no \"type\""},
      {R"({"type":"ADDED"})", "no \"object\""},
      {R"({"type":"ADDED","object":"x"})", "no \"object\""},
      {R"({"type":"RENAMED","object":{}})", "unknown type \"RENAMED\""},
      {R"({"type":"ADDED","object":{"metadata":{"name":"x"}}})", "no metadata.resourceVersion"},
      {R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}})", "no metadata.name"},
      {R"({"type":"ADDED","object":{"metadata":{"name":5,"resourceVersion":"1"}}})", "no metadata.name"},
      {deep, "not JSON"},
  };
  for (const auto& [line, why] : cases) {
    auto r = parseWatchEvent(line);
    ASSERT_FALSE(r) << line;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  }
}

TEST(WatchEventTest, StatusMessage) {
  EXPECT_EQ(statusMessage(R"({"kind":"Status","message":"forbidden: no"})"), "forbidden: no");
  EXPECT_EQ(statusMessage("plain text"), "plain text");
}

}  // namespace
}  // namespace tollgate::kube

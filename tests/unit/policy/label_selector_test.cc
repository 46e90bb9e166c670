#include "policy/label_selector.h"

#include <gtest/gtest.h>

namespace tollgate::policy {
namespace {

using Op = LabelRequirement::Op;

LabelSelector expr(std::string key, Op op, std::vector<std::string> values = {}) {
  LabelSelector s;
  s.matchExpressions.push_back({std::move(key), op, std::move(values)});
  return s;
}

LabelSelector labels(Labels l) {
  LabelSelector s;
  s.matchLabels = std::move(l);
  return s;
}

const Labels kFrontend{{"app", "web"}, {"tier", "frontend"}};
const Labels kNone{};

TEST(LabelSelectorTest, EmptySelectorMatchesEverythingIncludingNoLabels) {
  EXPECT_TRUE(matches(LabelSelector{}, kFrontend));
  EXPECT_TRUE(matches(LabelSelector{}, kNone));
}

TEST(LabelSelectorTest, MatchLabelsNeedsEveryPairWithEqualValue) {
  EXPECT_TRUE(matches(labels({{"app", "web"}}), kFrontend));
  EXPECT_TRUE(matches(labels({{"app", "web"}, {"tier", "frontend"}}), kFrontend));
  EXPECT_FALSE(matches(labels({{"app", "web"}, {"tier", "backend"}}), kFrontend));
  EXPECT_FALSE(matches(labels({{"app", "db"}}), kFrontend));
  EXPECT_FALSE(matches(labels({{"zone", "a"}}), kFrontend));
  EXPECT_FALSE(matches(labels({{"app", "web"}}), kNone));
}

TEST(LabelSelectorTest, MatchLabelsValueIsExactNotPrefix) {
  EXPECT_FALSE(matches(labels({{"app", "we"}}), kFrontend));
  EXPECT_FALSE(matches(labels({{"app", "web2"}}), kFrontend));
  EXPECT_FALSE(matches(labels({{"app", ""}}), kFrontend));
}

TEST(LabelSelectorTest, InNeedsKeyPresentWithListedValue) {
  EXPECT_TRUE(matches(expr("app", Op::In, {"db", "web"}), kFrontend));
  EXPECT_FALSE(matches(expr("app", Op::In, {"db"}), kFrontend));
  EXPECT_FALSE(matches(expr("zone", Op::In, {"a"}), kFrontend));
  EXPECT_FALSE(matches(expr("app", Op::In, {"web"}), kNone));
  EXPECT_FALSE(matches(expr("app", Op::In, {}), kFrontend)) << "In with no values selects nothing";
}

TEST(LabelSelectorTest, NotInIsTrueWhenKeyAbsentOrValueUnlisted) {
  EXPECT_TRUE(matches(expr("app", Op::NotIn, {"db"}), kFrontend));
  EXPECT_FALSE(matches(expr("app", Op::NotIn, {"db", "web"}), kFrontend));
  EXPECT_TRUE(matches(expr("zone", Op::NotIn, {"a"}), kFrontend)) << "absent key satisfies NotIn";
  EXPECT_TRUE(matches(expr("app", Op::NotIn, {"web"}), kNone));
}

TEST(LabelSelectorTest, ExistsIgnoresValue) {
  EXPECT_TRUE(matches(expr("app", Op::Exists), kFrontend));
  EXPECT_TRUE(matches(expr("e", Op::Exists), Labels{{"e", ""}})) << "empty value still exists";
  EXPECT_FALSE(matches(expr("zone", Op::Exists), kFrontend));
  EXPECT_FALSE(matches(expr("app", Op::Exists), kNone));
}

TEST(LabelSelectorTest, DoesNotExist) {
  EXPECT_TRUE(matches(expr("zone", Op::DoesNotExist), kFrontend));
  EXPECT_FALSE(matches(expr("app", Op::DoesNotExist), kFrontend));
  EXPECT_TRUE(matches(expr("app", Op::DoesNotExist), kNone));
}

TEST(LabelSelectorTest, MatchLabelsAndExpressionsAreAllAnded) {
  LabelSelector s = labels({{"app", "web"}});
  s.matchExpressions = {{"tier", Op::In, {"frontend", "edge"}}, {"zone", Op::DoesNotExist, {}}};
  EXPECT_TRUE(matches(s, kFrontend));

  Labels withZone = kFrontend;
  withZone["zone"] = "a";
  EXPECT_FALSE(matches(s, withZone)) << "DoesNotExist fails although the rest matches";

  Labels otherApp = kFrontend;
  otherApp["app"] = "db";
  EXPECT_FALSE(matches(s, otherApp)) << "matchLabels fails although expressions match";

  Labels backend = kFrontend;
  backend["tier"] = "backend";
  EXPECT_FALSE(matches(s, backend)) << "one expression fails";
}

TEST(LabelSelectorTest, SingleRequirementOverload) {
  EXPECT_TRUE(matches(LabelRequirement{"app", Op::In, {"web"}}, kFrontend));
  EXPECT_FALSE(matches(LabelRequirement{"app", Op::DoesNotExist, {}}, kFrontend));
}

}  // namespace
}  // namespace tollgate::policy

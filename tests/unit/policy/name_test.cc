#include "policy/name.h"

#include <gtest/gtest.h>

#include <string>

namespace tollgate::policy {
namespace {

std::string norm(std::string_view s) {
  auto r = normalizeName(s);
  return r ? *r : "ERROR: " + r.error().message;
}

bool rejected(std::string_view s) { return !normalizeName(s).has_value(); }

TEST(NormalizeName, LowercasesAndStripsOneTrailingDot) {
  EXPECT_EQ(norm("API.Example.COM"), "api.example.com");
  EXPECT_EQ(norm("api.example.com."), "api.example.com");
  EXPECT_TRUE(rejected("api.example.com.."));
}

TEST(NormalizeName, StripsPortSuffix) {
  EXPECT_EQ(norm("api.example.com:443"), "api.example.com");
  EXPECT_EQ(norm("Api.Example.Com.:8080"), "api.example.com");
  EXPECT_EQ(norm("10.1.2.3:80"), "10.1.2.3");
  EXPECT_TRUE(rejected("api.example.com:"));
  EXPECT_TRUE(rejected("api.example.com:http"));
  EXPECT_TRUE(rejected("api.example.com:65536"));
  EXPECT_TRUE(rejected("api.example.com:1:2"));
}

TEST(NormalizeName, BracketedAndBareIpv6) {
  EXPECT_EQ(norm("[2001:DB8::1]:443"), "2001:db8::1");
  EXPECT_EQ(norm("[2001:db8::1]"), "2001:db8::1");
  EXPECT_EQ(norm("2001:0db8:0:0::1"), "2001:db8::1");
  EXPECT_TRUE(rejected("[2001:db8::1"));
  EXPECT_TRUE(rejected("[2001:db8::1]x"));
  EXPECT_TRUE(rejected("[10.0.0.1]:80"));
  EXPECT_TRUE(rejected("[not-an-ip]:80"));
}

TEST(NormalizeName, RejectsEmptyAndEmptyLabels) {
  EXPECT_TRUE(rejected(""));
  EXPECT_TRUE(rejected("."));
  EXPECT_TRUE(rejected(":443"));
  EXPECT_TRUE(rejected("a..b"));
  EXPECT_TRUE(rejected(".a.b"));
}

TEST(NormalizeName, RejectsNonAsciiAndBadCharacters) {
  EXPECT_TRUE(
      rejected("b\xc3\xbc"
               "cher.example"));  // "bücher" in UTF-8
  EXPECT_TRUE(rejected("exa\x80mple.com"));
  EXPECT_TRUE(rejected("a b.com"));
  EXPECT_TRUE(rejected("a/b.com"));
  EXPECT_TRUE(rejected(std::string_view("a\0b.com", 7)));
  EXPECT_TRUE(rejected("*.example.com"));  // a flow names one host, not a pattern
  EXPECT_EQ(norm("under_score-and-dash.example"), "under_score-and-dash.example");
}

TEST(NormalizeName, LengthLimits) {
  std::string label63(63, 'a');
  EXPECT_EQ(norm(label63 + ".com"), label63 + ".com");
  EXPECT_TRUE(rejected(std::string(64, 'a') + ".com"));
  // 4 labels of 63 + 3 dots = 255 > 253; trimmed to exactly 253 it passes.
  std::string name = label63 + "." + label63 + "." + label63 + "." + label63;
  EXPECT_TRUE(rejected(name));
  std::string ok = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(ok.size(), 253u);
  EXPECT_EQ(norm(ok), ok);
  EXPECT_EQ(norm(ok + "."), ok);  // trailing dot does not count
}

TEST(NormalizeName, ErrorsQuoteTheInputSafely) {
  auto r = normalizeName("bad\x01name");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("\\x01"), std::string::npos) << r.error().message;
}

TEST(NormalizeHostPattern, AcceptsWildcardsOnlyAsLeadingLabel) {
  EXPECT_EQ(*normalizeHostPattern("*.Example.com."), "*.example.com");
  EXPECT_EQ(*normalizeHostPattern("*"), "*");
  EXPECT_EQ(*normalizeHostPattern("API.example.com"), "api.example.com");
  EXPECT_FALSE(normalizeHostPattern("a.*.example.com"));
  EXPECT_FALSE(normalizeHostPattern("*example.com"));
  EXPECT_FALSE(normalizeHostPattern("*."));
  EXPECT_FALSE(normalizeHostPattern("**.example.com"));
  EXPECT_FALSE(normalizeHostPattern("example.com:443"));
  EXPECT_FALSE(normalizeHostPattern(""));
}

TEST(IsIpLiteral, RecognisesBothFamilies) {
  EXPECT_TRUE(isIpLiteral("10.0.0.1"));
  EXPECT_TRUE(isIpLiteral("2001:db8::1"));
  EXPECT_TRUE(isIpLiteral("[2001:db8::1]"));
  EXPECT_FALSE(isIpLiteral("[10.0.0.1]"));
  EXPECT_FALSE(isIpLiteral("example.com"));
  EXPECT_FALSE(isIpLiteral("10.0.0.256"));
  EXPECT_FALSE(isIpLiteral(""));
}

}  // namespace
}  // namespace tollgate::policy

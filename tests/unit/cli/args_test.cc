#include "cli/args.h"

#include <gtest/gtest.h>

namespace tollgate::cli {
namespace {

const std::vector<OptionSpec> kSpecs = {
    {"config-dir", 0, true, "DIR", "configuration"},
    {"output", 'o', true, "FORMAT", "format"},
    {"verbose", 'v', false, "", "more"},
};

TEST(CliArgs, ParsesLongShortInlineAndPositional) {
  auto a = parseArgs({"--config-dir", "/etc/tg", "x:1", "-o", "json", "-v", "y"}, kSpecs);
  ASSERT_TRUE(a.has_value()) << a.error().str();
  EXPECT_EQ(a->get("config-dir"), "/etc/tg");
  EXPECT_EQ(a->get("output"), "json");
  EXPECT_TRUE(a->has("verbose"));
  EXPECT_EQ(a->positional, (std::vector<std::string>{"x:1", "y"}));
  EXPECT_FALSE(a->help);

  auto b = parseArgs({"--config-dir=/d", "-ojson"}, kSpecs);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->get("config-dir"), "/d");
  EXPECT_EQ(b->get("output"), "json");
}

TEST(CliArgs, DoubleDashEndsOptionsAndHelpIsRecognised) {
  auto a = parseArgs({"--", "-o", "--help"}, kSpecs);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->positional, (std::vector<std::string>{"-o", "--help"}));
  EXPECT_FALSE(a->help);
  auto h = parseArgs({"-h"}, kSpecs);
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->help);
}

TEST(CliArgs, RejectsUnknownMissingRepeatedAndValuedFlag) {
  auto unknown = parseArgs({"--nope"}, kSpecs);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().str().find("--nope"), std::string::npos);
  EXPECT_FALSE(parseArgs({"--config-dir"}, kSpecs).has_value());
  auto twice = parseArgs({"-o", "a", "--output", "b"}, kSpecs);
  ASSERT_FALSE(twice.has_value());
  EXPECT_NE(twice.error().str().find("twice"), std::string::npos);
  EXPECT_FALSE(parseArgs({"--verbose=1"}, kSpecs).has_value());
}

TEST(CliArgs, HelpListsEveryOption) {
  std::string help = formatOptions(kSpecs);
  EXPECT_NE(help.find("--config-dir DIR"), std::string::npos);
  EXPECT_NE(help.find("-o, --output FORMAT"), std::string::npos);
  EXPECT_NE(help.find("--help"), std::string::npos);
}

}  // namespace
}  // namespace tollgate::cli

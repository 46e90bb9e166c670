// Pure parts of NftTable: listing parser, diff, counters, input canonicalisation. No root needed.

#include "agent/nft_table.h"

#include <gtest/gtest.h>

namespace tollgate::agent {
namespace {

constexpr const char* kWant = R"(table inet t {
	counter dns {
	}

	chain output {
		type filter hook output priority filter; policy drop;
		meta mark 0x00007467 accept
		oif "lo" accept
		counter name "dns" drop
	}
}
)";

TEST(NftListing, ParsesStatefulListingLikeStateless) {
  auto table = parseNftListing(R"(table inet t {
	counter dns {
		packets 3 bytes 180
	}

	chain output {
		type filter hook output priority filter; policy drop;
		meta   mark 0x00007467 accept
		oif "lo" accept
		counter name "dns" drop
	}
})");
  ASSERT_TRUE(table.has_value()) << table.error().message;
  auto want = parseNftListing(kWant);
  ASSERT_TRUE(want.has_value());
  EXPECT_TRUE(diffNftTables(*want, *table).empty());
  ASSERT_EQ(table->chains.size(), 1u);
  EXPECT_EQ(table->chains[0].hook, "type filter hook output priority filter");
  EXPECT_EQ(table->chains[0].policy, "drop");
  EXPECT_EQ(table->counters, std::vector<std::string>{"dns"});
}

TEST(NftListing, RejectsTruncatedListing) {
  EXPECT_FALSE(parseNftListing("table inet t {\n\tchain c {\n").has_value());
  EXPECT_FALSE(parseNftListing("").has_value());
}

TEST(NftListing, DiffNamesEachDifference) {
  auto want = parseNftListing(kWant);
  auto got = parseNftListing(R"(table inet t {
	chain output {
		type filter hook output priority 10; policy accept;
		udp dport 9 accept
		meta mark 0x00007467 accept
		counter name "dns" drop
	}
	chain extra {
	}
})");
  ASSERT_TRUE(want.has_value() && got.has_value());
  auto diff = diffNftTables(*want, *got);
  std::vector<std::string> expected = {
      "counter dns missing",
      "chain output is `type filter hook output priority 10`, expected `type filter hook output "
      "priority filter`",
      "chain output policy accept, expected drop",
      "chain output has unexpected rule 1 `udp dport 9 accept`",
      "chain output is missing rule 2 `oif \"lo\" accept`",
      "unexpected chain extra",
  };
  EXPECT_EQ(diff, expected);
}

TEST(NftCounters, ParsesNamedCounters) {
  auto c = parseNftCounters(R"(table inet tollgate {
	counter dns {
		packets 3 bytes 180
	}
	counter drop_udp {
		packets 18446744073709551615 bytes 0
	}
})");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ(c->at("dns").packets, 3u);
  EXPECT_EQ(c->at("dns").bytes, 180u);
  EXPECT_EQ(c->at("drop_udp").packets, 18446744073709551615u);
  EXPECT_FALSE(parseNftCounters("counter x {\npackets many bytes 1\n}\n").has_value());
}

TEST(NftInput, CanonicalisesLikeNftPrints) {
  EXPECT_EQ(canonicalCidr("10.244.1.7/16").value_or(""), "10.244.0.0/16");
  EXPECT_EQ(canonicalCidr("10.0.0.1/32").value_or(""), "10.0.0.1");
  EXPECT_EQ(canonicalCidr("fd00:0:0::1/48").value_or(""), "fd00::/48");
  EXPECT_EQ(canonicalCidr("10.0.0.0/7").value_or(""), "10.0.0.0/7");
  EXPECT_FALSE(canonicalCidr("10.0.0.0/33").has_value());
  EXPECT_FALSE(canonicalCidr("10.0.0.0/").has_value());
  EXPECT_FALSE(canonicalCidr("10.0.0.0/8 accept").has_value());
  int family = 0;
  EXPECT_EQ(canonicalAddress("FD00:0::10", &family).value_or(""), "fd00::10");
  EXPECT_EQ(family, 6);
  EXPECT_FALSE(canonicalAddress("10.0.0.1 }").has_value());
  EXPECT_TRUE(validateInterfacePattern("veth*").has_value());
  EXPECT_TRUE(validateInterfacePattern("tg0").has_value());
  EXPECT_FALSE(validateInterfacePattern("*").has_value());
  EXPECT_FALSE(validateInterfacePattern("a\"b").has_value());
  EXPECT_FALSE(validateInterfacePattern("sixteen-chars-xx").has_value());
}

}  // namespace
}  // namespace tollgate::agent

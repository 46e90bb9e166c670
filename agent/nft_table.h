#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/netns.h"
#include "agent/rule_report.h"
#include "common/error.h"

namespace tollgate::agent {

// One nftables table that tollgate owns completely, kept in the text form `nft list table`
// prints (stateless, no handles). That one text is both what install() loads and what verify()
// compares the kernel's listing with, so the two cannot disagree.
//
// Every call runs on a Netns helper thread and creates its own nft_ctx there: libnftables is not
// thread-safe per context, and its netlink socket (and interface-name lookups such as `oif "lo"`)
// belong to the netns the context was created in.
class NftTable {
 public:
  // family: "inet"; name: "tollgate"; text: "table inet tollgate { ... }" in canonical form.
  NftTable(std::string family, std::string name, std::string text);

  const std::string& text() const { return text_; }
  std::string qualifiedName() const { return family_ + " " + name_; }

  // Loads the table, replacing any previous version in ONE transaction (add, delete, add), so the
  // netns never has a moment without rules and a second install leaves exactly one table.
  Status install(const Netns& netns) const;
  // Deletes the table; a missing table is fine.
  Status remove(const Netns& netns) const;
  // The table as the netns has it (`nft list table`, stateless); nullopt when it is absent.
  Result<std::optional<std::string>> list(const Netns& netns) const;
  // Lists the table in the netns and compares it with text().
  Result<Drift> verify(const Netns& netns) const;
  // Reads every named counter of the table.
  Result<Counters> counters(const Netns& netns) const;

 private:
  std::string family_;
  std::string name_;
  std::string text_;
};

// --- Pure helpers, exposed for tests. ---

struct ListedChain {
  std::string name;
  // Empty for a regular (non-base) chain; else "type filter hook output priority filter".
  std::string hook;
  std::string policy;  // "accept"/"drop"; empty for a regular chain
  std::vector<std::string> rules;
};

struct ListedTable {
  std::string family;
  std::string name;
  std::vector<std::string> counters;
  std::vector<std::string> other;  // sets, maps, flowtables...: listed as their header line
  std::vector<ListedChain> chains;
};

// Parses the output of `nft list table <family> <name>` (stateless or not; whitespace and blank
// lines do not matter).
Result<ListedTable> parseNftListing(std::string_view text);

// Readable differences between the expected and the listed table; empty when equal.
std::vector<std::string> diffNftTables(const ListedTable& want, const ListedTable& got);

// Parses `nft list counters table ...`: "counter NAME {" ... "packets N bytes M" ... "}".
Result<Counters> parseNftCounters(std::string_view text);

// Runs nft commands in the CALLING thread's netns with a fresh context. Returns the output
// buffer; on failure, the libnftables error buffer reduced to its "Error:" lines.
Result<std::string> runNft(const std::string& commands, unsigned outputFlags = 0);

// Input validation shared by the installers: canonical text for nft, or an error naming the value.
// "10.0.0.1" -> "10.0.0.1"; "fd00:0::10" -> "fd00::10". family is 4 or 6.
Result<std::string> canonicalAddress(const std::string& address, int* family = nullptr);
// "10.244.1.7/16" -> "10.244.0.0/16"; "10.0.0.1/32" -> "10.0.0.1" (nft prints host prefixes bare).
Result<std::string> canonicalCidr(const std::string& cidr, int* family = nullptr);
// An interface name or a prefix pattern ending in '*': 1-15 of [A-Za-z0-9_.-], optional '*'.
Status validateInterfacePattern(const std::string& pattern);

}  // namespace tollgate::agent

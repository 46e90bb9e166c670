#include "agent/nft_table.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nftables/libnftables.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>

namespace tollgate::agent {
namespace {

// libnftables waits on its netlink socket with select(), and glibc's fortified FD_SET aborts the
// process for an fd >= FD_SETSIZE (1024): "*** bit out of range 0 - FD_SETSIZE on fd_set ***".
// An agent with ~100 pods (listeners, DNS sockets, netns handles) or ~1,000 proxied connections
// has no free fd below 1024, so the socket libnftables opens lands above it and the agent dies
// (seen in bench/scenarios/footprint.sh at 100 pods). Called first thing in every netns helper
// lambda below (short-lived threads, never an io thread): the thread takes a private copy of the
// fd table with everything but stdio closed, so libnftables' socket gets a low number. The
// process's own fds are untouched; the copy dies with the thread. Without close_range (kernel <
// 5.9) it changes nothing and the old limit applies.
void isolateFdsForLibnftables() {
  (void)::close_range(3, ~0U, CLOSE_RANGE_UNSHARE);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Collapses runs of blanks so "a  b\tc" and "a b c" compare equal.
std::string collapse(std::string_view s) {
  std::string out;
  bool blank = false;
  for (char c : trim(s)) {
    if (c == ' ' || c == '\t') {
      blank = true;
      continue;
    }
    if (blank && !out.empty()) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

std::vector<std::string> splitLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string line = collapse(text.substr(start, end - start));
    if (!line.empty()) lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// "chain output {" -> "output"; empty when the line is not "<keyword> NAME {".
std::string blockName(const std::string& line, std::string_view keyword) {
  if (!startsWith(line, keyword) || line.size() < keyword.size() + 3 || line.back() != '{') {
    return {};
  }
  std::string_view rest(line);
  rest.remove_prefix(keyword.size());
  rest.remove_suffix(1);
  rest = trim(rest);
  if (rest.empty() || rest.find(' ') != std::string_view::npos) return {};
  return std::string(rest);
}

// libnftables' error buffer repeats the input line and draws carets under it; the "Error:" lines
// are what a user needs, the echoed ruleset is just noise in a log line.
std::string errorSummary(const char* buffer) {
  std::string_view text = buffer ? buffer : "";
  std::string out;
  for (const auto& line : splitLines(text)) {
    if (line.find("Error:") == std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += line;
  }
  if (out.empty()) out = collapse(text);
  if (out.empty()) out = "libnftables failed without an error message";
  return out;
}

bool isNoSuchTable(const Error& err) {
  return err.message.find("No such file or directory") != std::string::npos;
}

std::string quoteRule(const std::string& rule) { return "`" + rule + "`"; }

void diffRules(const std::string& chain, const std::vector<std::string>& want,
               const std::vector<std::string>& got, std::vector<std::string>& out) {
  if (want == got) return;
  // Longest common subsequence, so one inserted or deleted rule reads as one difference instead
  // of every rule after it.
  const size_t n = want.size(), m = got.size();
  std::vector<std::vector<int>> lcs(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] =
          want[i] == got[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && want[i] == got[j]) {
      ++i;
      ++j;
    } else if (j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      out.push_back(
          fmt::format("chain {} has unexpected rule {} {}", chain, j + 1, quoteRule(got[j])));
      ++j;
    } else {
      out.push_back(
          fmt::format("chain {} is missing rule {} {}", chain, i + 1, quoteRule(want[i])));
      ++i;
    }
  }
}

}  // namespace

NftTable::NftTable(std::string family, std::string name, std::string text)
    : family_(std::move(family)), name_(std::move(name)), text_(std::move(text)) {}

Status NftTable::install(const Netns& netns) const {
  // "table X" first makes "delete table X" valid when X does not exist yet; the three commands
  // are one netlink batch, so the kernel swaps old rules for new ones atomically.
  const std::string commands =
      fmt::format("table {0}\ndelete table {0}\n{1}\n", qualifiedName(), text_);
  Status st = netns.run([&]() -> Status {
    isolateFdsForLibnftables();
    auto out = runNft(commands);
    if (!out) return std::unexpected(out.error());
    return {};
  });
  if (!st) {
    return std::unexpected(st.error().wrap(
        fmt::format("nft: install {} in netns {}", qualifiedName(), netns.description())));
  }
  return {};
}

Status NftTable::remove(const Netns& netns) const {
  // nft 1.0.6 has no "destroy table": adding first makes the delete succeed when it is missing.
  const std::string commands = fmt::format("table {0}\ndelete table {0}\n", qualifiedName());
  Status st = netns.run([&]() -> Status {
    isolateFdsForLibnftables();
    auto out = runNft(commands);
    if (!out) return std::unexpected(out.error());
    return {};
  });
  if (!st) {
    return std::unexpected(st.error().wrap(
        fmt::format("nft: remove {} in netns {}", qualifiedName(), netns.description())));
  }
  return {};
}

Result<std::optional<std::string>> NftTable::list(const Netns& netns) const {
  bool present = false;
  std::string listing;
  Status st = netns.run([&]() -> Status {
    isolateFdsForLibnftables();
    auto tables = runNft("list tables " + family_);
    if (!tables) return std::unexpected(tables.error());
    for (const auto& line : splitLines(*tables)) {
      if (line == "table " + qualifiedName()) present = true;
    }
    if (!present) return {};
    auto out = runNft("list table " + qualifiedName(), NFT_CTX_OUTPUT_STATELESS);
    if (!out) {
      // Deleted between the two commands.
      if (isNoSuchTable(out.error())) {
        present = false;
        return {};
      }
      return std::unexpected(out.error());
    }
    listing = std::move(*out);
    return {};
  });
  if (!st) {
    return std::unexpected(st.error().wrap(
        fmt::format("nft: list {} in netns {}", qualifiedName(), netns.description())));
  }
  if (!present) return std::nullopt;
  return listing;
}

Result<Drift> NftTable::verify(const Netns& netns) const {
  auto listing = list(netns);
  if (!listing) return std::unexpected(listing.error());
  if (!*listing) return Drift{{fmt::format("table {} missing", qualifiedName())}};

  auto want = parseNftListing(text_);
  if (!want) {
    return std::unexpected(
        want.error().wrap("nft: expected ruleset of " + qualifiedName() + " does not parse (bug)"));
  }
  auto got = parseNftListing(**listing);
  if (!got) {
    return std::unexpected(got.error().wrap(
        fmt::format("nft: verify {} in netns {}: listing", qualifiedName(), netns.description())));
  }
  return Drift{diffNftTables(*want, *got)};
}

Result<Counters> NftTable::counters(const Netns& netns) const {
  std::string listing;
  Status st = netns.run([&]() -> Status {
    isolateFdsForLibnftables();
    auto out = runNft("list counters table " + qualifiedName());
    if (!out) return std::unexpected(out.error());
    listing = std::move(*out);
    return {};
  });
  if (!st) {
    return std::unexpected(st.error().wrap(
        fmt::format("nft: counters of {} in netns {}", qualifiedName(), netns.description())));
  }
  return parseNftCounters(listing);
}

Result<std::string> runNft(const std::string& commands, unsigned outputFlags) {
  std::unique_ptr<nft_ctx, decltype(&nft_ctx_free)> ctx(nft_ctx_new(NFT_CTX_DEFAULT),
                                                        &nft_ctx_free);
  if (!ctx) return fail("nft_ctx_new failed");
  nft_ctx_output_set_flags(ctx.get(), outputFlags);
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0) {
    return fail("nft: cannot buffer libnftables output");
  }
  if (nft_run_cmd_from_buffer(ctx.get(), commands.c_str()) != 0) {
    return fail(errorSummary(nft_ctx_get_error_buffer(ctx.get())));
  }
  const char* out = nft_ctx_get_output_buffer(ctx.get());
  return std::string(out ? out : "");
}

Result<ListedTable> parseNftListing(std::string_view text) {
  enum class State { Top, Table, Chain, Block, Done };
  State state = State::Top;
  ListedTable table;
  int blockDepth = 0;
  for (const auto& line : splitLines(text)) {
    switch (state) {
      case State::Top: {
        // "table inet tollgate {"
        if (!startsWith(line, "table ") || line.back() != '{') {
          return fail("nft listing: expected `table <family> <name> {`, got `" + line + "`");
        }
        std::string_view rest(line);
        rest.remove_prefix(6);
        rest.remove_suffix(1);
        rest = trim(rest);
        size_t sp = rest.find(' ');
        if (sp == std::string_view::npos) return fail("nft listing: bad table line `" + line + "`");
        table.family = std::string(rest.substr(0, sp));
        table.name = std::string(trim(rest.substr(sp + 1)));
        state = State::Table;
        break;
      }
      case State::Table: {
        if (line == "}") {
          state = State::Done;
        } else if (auto name = blockName(line, "counter "); !name.empty()) {
          table.counters.push_back(name);
          state = State::Block;
          blockDepth = 1;
        } else if (auto chain = blockName(line, "chain "); !chain.empty()) {
          table.chains.push_back(ListedChain{chain, {}, {}, {}});
          state = State::Chain;
        } else if (line.back() == '{') {
          table.other.push_back(line.substr(0, line.size() - 2));
          state = State::Block;
          blockDepth = 1;
        } else {
          table.other.push_back(line);  // table flags and the like
        }
        break;
      }
      case State::Block:
        // Counter values and set elements: not compared. Element lists may span lines.
        blockDepth += static_cast<int>(std::count(line.begin(), line.end(), '{'));
        blockDepth -= static_cast<int>(std::count(line.begin(), line.end(), '}'));
        if (blockDepth <= 0) state = State::Table;
        break;
      case State::Chain: {
        ListedChain& chain = table.chains.back();
        if (line == "}") {
          state = State::Table;
        } else if (chain.rules.empty() && chain.hook.empty() && startsWith(line, "type ") &&
                   line.find(" hook ") != std::string::npos) {
          // "type filter hook output priority filter; policy drop;"
          size_t semi = line.find(';');
          chain.hook = collapse(std::string_view(line).substr(0, semi));
          size_t pol = line.find("policy ");
          if (pol != std::string::npos) {
            std::string_view p = std::string_view(line).substr(pol + 7);
            chain.policy = std::string(trim(p.substr(0, p.find(';'))));
          } else {
            chain.policy = "accept";  // the kernel's default for base chains
          }
        } else {
          chain.rules.push_back(line);
        }
        break;
      }
      case State::Done:
        return fail("nft listing: unexpected text after the table: `" + line + "`");
    }
  }
  if (state != State::Done) return fail("nft listing: truncated (no closing brace)");
  return table;
}

std::vector<std::string> diffNftTables(const ListedTable& want, const ListedTable& got) {
  std::vector<std::string> out;
  if (want.family != got.family || want.name != got.name) {
    out.push_back(fmt::format("listed table {} {}, expected {} {}", got.family, got.name,
                              want.family, want.name));
    return out;
  }
  for (const auto& c : want.counters) {
    if (std::find(got.counters.begin(), got.counters.end(), c) == got.counters.end()) {
      out.push_back("counter " + c + " missing");
    }
  }
  for (const auto& c : got.counters) {
    if (std::find(want.counters.begin(), want.counters.end(), c) == want.counters.end()) {
      out.push_back("unexpected counter " + c);
    }
  }
  for (const auto& o : got.other) {
    if (std::find(want.other.begin(), want.other.end(), o) == want.other.end()) {
      out.push_back("unexpected `" + o + "`");
    }
  }
  for (const auto& o : want.other) {
    if (std::find(got.other.begin(), got.other.end(), o) == got.other.end()) {
      out.push_back("missing `" + o + "`");
    }
  }
  for (const auto& w : want.chains) {
    auto it = std::find_if(got.chains.begin(), got.chains.end(),
                           [&](const ListedChain& g) { return g.name == w.name; });
    if (it == got.chains.end()) {
      out.push_back("chain " + w.name + " missing");
      continue;
    }
    if (it->hook != w.hook) {
      out.push_back(fmt::format("chain {} is `{}`, expected `{}`", w.name,
                                it->hook.empty() ? "regular chain" : it->hook,
                                w.hook.empty() ? "regular chain" : w.hook));
    }
    if (it->policy != w.policy) {
      out.push_back(fmt::format("chain {} policy {}, expected {}", w.name,
                                it->policy.empty() ? "none" : it->policy,
                                w.policy.empty() ? "none" : w.policy));
    }
    diffRules(w.name, w.rules, it->rules, out);
  }
  for (const auto& g : got.chains) {
    auto it = std::find_if(want.chains.begin(), want.chains.end(),
                           [&](const ListedChain& w) { return w.name == g.name; });
    if (it == want.chains.end()) out.push_back("unexpected chain " + g.name);
  }
  return out;
}

Result<Counters> parseNftCounters(std::string_view text) {
  Counters counters;
  std::string current;
  for (const auto& line : splitLines(text)) {
    if (auto name = blockName(line, "counter "); !name.empty()) {
      current = name;
      counters[current] = {};
      continue;
    }
    if (line == "}") {
      current.clear();
      continue;
    }
    if (current.empty() || !startsWith(line, "packets ")) continue;
    // "packets 12 bytes 840"
    uint64_t packets = 0, bytes = 0;
    std::string_view rest = std::string_view(line).substr(8);
    auto [p1, e1] = std::from_chars(rest.data(), rest.data() + rest.size(), packets);
    std::string_view tail(p1, rest.data() + rest.size() - p1);
    tail = trim(tail);
    if (e1 != std::errc() || !startsWith(tail, "bytes ")) {
      return fail("nft counters: cannot parse `" + line + "`");
    }
    tail.remove_prefix(6);
    auto [p2, e2] = std::from_chars(tail.data(), tail.data() + tail.size(), bytes);
    if (e2 != std::errc()) return fail("nft counters: cannot parse `" + line + "`");
    counters[current] = CounterValue{packets, bytes};
  }
  return counters;
}

Result<std::string> canonicalAddress(const std::string& address, int* family) {
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    if (family) *family = 4;
    return std::string(inet_ntop(AF_INET, buf, text, sizeof text));
  }
  if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    if (family) *family = 6;
    return std::string(inet_ntop(AF_INET6, buf, text, sizeof text));
  }
  return fail("not an IPv4 or IPv6 address: \"" + address + "\"");
}

Result<std::string> canonicalCidr(const std::string& cidr, int* family) {
  size_t slash = cidr.find('/');
  std::string addr = cidr.substr(0, slash);
  unsigned char buf[16];
  int af = 0;
  size_t bits = 0;
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    af = AF_INET;
    bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    af = AF_INET6;
    bits = 128;
  } else {
    return fail("not a CIDR: \"" + cidr + "\"");
  }
  size_t prefix = bits;
  if (slash != std::string::npos) {
    std::string_view p = std::string_view(cidr).substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || ptr != p.data() + p.size() || p.empty() || prefix > bits) {
      return fail("bad prefix length in CIDR \"" + cidr + "\"");
    }
  }
  for (size_t bit = prefix; bit < bits; ++bit) {
    buf[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  }
  char text[INET6_ADDRSTRLEN];
  inet_ntop(af, buf, text, sizeof text);
  if (family) *family = af == AF_INET ? 4 : 6;
  if (prefix == bits) return std::string(text);
  return fmt::format("{}/{}", text, prefix);
}

Status validateInterfacePattern(const std::string& pattern) {
  std::string_view name = pattern;
  if (!name.empty() && name.back() == '*') name.remove_suffix(1);
  // IFNAMSIZ is 16 including the NUL. A lone "*" would match every interface, uplink included.
  if (name.empty() || name.size() > 15) {
    return fail("interface pattern \"" + pattern + "\": need 1-15 characters before an optional *");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return fail("interface pattern \"" + pattern + "\": character not allowed");
  }
  return {};
}

}  // namespace tollgate::agent

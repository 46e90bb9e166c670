#include "policy/registry_index.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <span>
#include <tuple>
#include <utility>

#include "policy/name.h"

namespace tollgate::policy {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

std::string describe(std::string_view kind, const ObjectMeta& m) {
  std::string s = fmt::format("{}/{}/{}", kind, m.ns, m.name);
  if (!m.source.file.empty()) {
    s += fmt::format(" ({}{})", m.source.file,
                     m.source.line > 0 ? fmt::format(":{}", m.source.line) : std::string());
  }
  return s;
}

bool labelsMatch(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// Namespaces are interned to small ids so visibility checks compare integers.
constexpr uint32_t kNoNamespace = UINT32_MAX;

// Who may see an object (exportTo + workloadSelector), resolved at compile time.
struct Visibility {
  const Labels* selector = nullptr;  // workloadSelector
  uint32_t ownNs = kNoNamespace;
  uint32_t exportOff = 0;  // into Impl::exportNs
  uint16_t exportLen = 0;
  bool all = false;
};

// Host pattern matching between a Sidecar egress host and an entry host (both normalised).
bool hostPatternMatches(std::string_view pattern, std::string_view host) {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return pattern == host;
}

struct EgressHost {
  enum class Ns { Any, Same, None, Named };
  Ns nsKind = Ns::Any;
  std::string ns;
  std::string host;
  std::optional<uint32_t> port;
};

struct CompiledSidecar {
  const Sidecar* sidecar = nullptr;
  bool restricts = false;  // has egress items
  std::vector<EgressHost> hosts;

  bool allows(std::string_view podNs, std::string_view entryNs, std::string_view entryHost,
              uint16_t port) const {
    if (!restricts) return true;
    for (const auto& h : hosts) {
      if (h.port && *h.port != port) continue;
      switch (h.nsKind) {
        case EgressHost::Ns::None:
          continue;
        case EgressHost::Ns::Same:
          if (entryNs != podNs) continue;
          break;
        case EgressHost::Ns::Named:
          if (entryNs != h.ns) continue;
          break;
        case EgressHost::Ns::Any:
          break;
      }
      if (hostPatternMatches(h.host, entryHost)) return true;
    }
    return false;
  }
};

struct NsSidecars {
  std::vector<uint32_t> selected;  // with workloadSelector, by name
  int32_t namespaceWide = -1;
};

// The hot data of an entry in one cache line: at 100,000 entries every pointer chased during a
// lookup is a cache miss. Ports sit at their ServiceEntry::ports index; number 0 never matches.
constexpr uint8_t kInlinePorts = 4;
constexpr uint8_t kPortsOverflow = 0xff;

struct alignas(64) CompiledEntry {
  const ServiceEntry* entry = nullptr;
  const ServicePort* ports = nullptr;  // entry->ports.data()
  Visibility vis;
  uint16_t portNumbers[kInlinePorts] = {};
  uint16_t targetPorts[kInlinePorts] = {};
  uint8_t protocols[kInlinePorts] = {};  // PortProtocol
  uint8_t portCount = 0;  // kPortsOverflow: more than kInlinePorts, scan entry->ports
};
static_assert(sizeof(CompiledEntry) == 64);

struct CompiledRule {
  const DestinationRule* rule = nullptr;
  Visibility vis;
};

struct Candidate {
  uint32_t index = 0;  // into entries / rules
  uint32_t host = 0;   // index into the entry's hosts (entries only)
};
using Level = std::span<const Candidate>;

// Open-addressing hash table from a host key to its candidates. One probe usually costs one
// cache line: the slot holds the full hash, short keys inline and a lone candidate inline.
class HostTable {
 public:
  // `hints(candidate)`: two addresses a hit on a lone candidate will read next (its compiled
  // entry and its object). They are prefetched as soon as the hash matches, so those misses
  // overlap the key comparison instead of following it.
  template <typename Hints>
  void build(StringMap<std::vector<Candidate>>&& keys, Hints&& hints) {
    size_t cap = 8;
    while (cap * 3 < keys.size() * 4) cap *= 2;  // load factor <= 0.75
    if (keys.empty()) return;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (auto& [key, cands] : keys) {
      uint64_t h = hash(key);
      size_t i = h & mask_;
      while (slots_[i].count != 0) i = (i + 1) & mask_;
      Slot& s = slots_[i];
      s.hash = h;
      s.count = static_cast<uint32_t>(cands.size());
      s.keyLen = static_cast<uint32_t>(key.size());
      if (key.size() <= kInlineKey) {
        std::memcpy(s.key, key.data(), key.size());
      } else {
        s.keyOff = static_cast<uint32_t>(arena_.size());
        arena_ += key;
      }
      if (cands.size() == 1) {
        s.first = cands[0];
        std::tie(s.hint[0], s.hint[1]) = hints(cands[0]);
      } else {
        s.first.index = static_cast<uint32_t>(overflow_.size());
        overflow_.insert(overflow_.end(), cands.begin(), cands.end());
      }
    }
  }

  static uint64_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

  // Starts loading the slot `h` lands on, so that the probes of all labels of a name overlap
  // their cache misses instead of paying them one after the other.
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
  }

  Level find(std::string_view key) const { return find(key, hash(key)); }

  Level find(std::string_view key, uint64_t h) const {
    if (slots_.empty()) return {};
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.count == 0) return {};
      if (s.hash != h || s.keyLen != key.size()) continue;
      __builtin_prefetch(s.hint[0]);
      __builtin_prefetch(s.hint[1]);
      const char* k = key.size() <= kInlineKey ? s.key : arena_.data() + s.keyOff;
      if (std::memcmp(k, key.data(), key.size()) != 0) continue;
      if (s.count == 1) return Level(&s.first, 1);
      return Level(overflow_.data() + s.first.index, s.count);
    }
  }

  bool empty() const { return slots_.empty(); }

 private:
  static constexpr size_t kInlineKey = 20;
  struct alignas(64) Slot {
    uint64_t hash = 0;
    const void* hint[2] = {nullptr, nullptr};
    uint32_t count = 0;  // 0: empty
    uint32_t keyLen = 0;
    uint32_t keyOff = 0;
    Candidate first;  // the candidate when count == 1, else {offset into overflow_, 0}
    char key[kInlineKey];
  };
  static_assert(sizeof(Slot) == 64);

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  std::string arena_;
  std::vector<Candidate> overflow_;
};

// What tryLevel needs to know about the querying pod.
struct PodCtx {
  const PodIdentity& pod;
  uint32_t nsId;
};

}  // namespace

struct RegistryIndex::Impl {
  StringMap<uint32_t> namespaceIds;
  std::vector<uint32_t> exportNs;  // exportTo namespace ids, referenced by Visibility

  std::vector<CompiledEntry> entries;           // sorted by (ns, name)
  std::vector<std::vector<std::string>> hosts;  // per entry, normalised (cold: Sidecar checks)
  HostTable exact;
  HostTable wildcard;  // "*.example.com" under "example.com"
  std::vector<Candidate> matchAll;
  CidrTrie addresses;
  std::vector<std::vector<Candidate>> addressGroups;  // trie value -> entries with that CIDR

  std::vector<CompiledRule> rules;  // sorted by (ns, name)
  HostTable ruleExact;
  HostTable ruleWildcard;
  std::vector<Candidate> ruleAll;

  std::vector<CompiledSidecar> sidecars;
  StringMap<NsSidecars> sidecarsByNs;

  uint32_t intern(const std::string& ns) {
    return namespaceIds.emplace(ns, static_cast<uint32_t>(namespaceIds.size())).first->second;
  }

  uint32_t namespaceId(std::string_view ns) const {
    auto it = namespaceIds.find(ns);
    return it == namespaceIds.end() ? kNoNamespace : it->second;
  }

  Visibility visibility(const ObjectMeta& meta, const std::vector<std::string>& exportTo,
                        const std::optional<Labels>& selector) {
    Visibility v;
    v.ownNs = intern(meta.ns);
    v.selector = selector ? &*selector : nullptr;
    v.exportOff = static_cast<uint32_t>(exportNs.size());
    if (exportTo.empty()) v.all = true;
    for (const auto& e : exportTo) {
      if (e == "*") {
        v.all = true;
      } else if (e == ".") {
        exportNs.push_back(v.ownNs);
      } else if (e != "~") {
        exportNs.push_back(intern(e));
      }
    }
    v.exportLen = static_cast<uint16_t>(exportNs.size() - v.exportOff);
    return v;
  }

  bool visibleTo(const Visibility& v, const PodCtx& p) const {
    if (v.selector && (p.nsId != v.ownNs || !labelsMatch(*v.selector, p.pod.labels))) {
      return false;
    }
    if (v.all) return true;
    for (uint32_t i = 0; i < v.exportLen; ++i) {
      if (exportNs[v.exportOff + i] == p.nsId) return true;
    }
    return false;
  }

  const CompiledSidecar* sidecarFor(const PodIdentity& pod) const {
    if (sidecarsByNs.empty()) return nullptr;
    if (auto it = sidecarsByNs.find(pod.ns); it != sidecarsByNs.end()) {
      for (uint32_t i : it->second.selected) {
        if (labelsMatch(*sidecars[i].sidecar->workloadSelector, pod.labels)) return &sidecars[i];
      }
      if (it->second.namespaceWide >= 0) return &sidecars[it->second.namespaceWide];
    }
    if (auto it = sidecarsByNs.find(kRootNamespace); it != sidecarsByNs.end()) {
      if (it->second.namespaceWide >= 0) return &sidecars[it->second.namespaceWide];
    }
    return nullptr;
  }

  // Index of the port of entry `e` numbered `port`, -1 when not listed.
  static int findPort(const CompiledEntry& e, uint16_t port) {
    if (e.portCount == kPortsOverflow) {
      for (size_t i = 0; i < e.entry->ports.size(); ++i) {
        if (e.entry->ports[i].number == port) return static_cast<int>(i);
      }
      return -1;
    }
    for (uint8_t i = 0; i < e.portCount; ++i) {
      if (e.portNumbers[i] == port && port != 0) return i;
    }
    return -1;
  }

  // Tries the candidates of one level in preference order. Returns true when `out` is final.
  // `anyHost`: the candidate came from an address match, so the Sidecar may match any of the
  // entry's hosts.
  bool tryLevel(Level level, const PodCtx& p, const CompiledSidecar* sc, uint16_t port,
                L4Protocol l4, AppProtocol app, bool byName, bool anyHost, Match& out) const {
    for (int pass = 0; pass < 2; ++pass) {
      for (const Candidate& c : level) {
        const CompiledEntry& e = entries[c.index];
        if ((e.vis.ownNs == p.nsId) != (pass == 0)) continue;
        if (!visibleTo(e.vis, p)) continue;
        std::string_view host;  // only looked up when needed: it costs a cache miss
        if (anyHost) {
          const auto& entryHosts = hosts[c.index];
          bool ok = false;
          for (const auto& h : entryHosts) {
            if (!sc || sc->allows(p.pod.ns, e.entry->meta.ns, h, port)) {
              ok = true;
              host = h;
              break;
            }
          }
          if (!ok && (!entryHosts.empty() || (sc && sc->restricts))) continue;
        } else if (sc) {
          host = hosts[c.index][c.host];
          if (!sc->allows(p.pod.ns, e.entry->meta.ns, host, port)) continue;
        }
        const int pi = findPort(e, port);
        Status status = Status::PortNotListed;
        const ServicePort* sp = nullptr;
        if (pi >= 0) {
          sp = e.ports + pi;
          const bool inlined = e.portCount != kPortsOverflow;
          const auto protocol = inlined ? static_cast<PortProtocol>(e.protocols[pi]) : sp->protocol;
          if (protocolCompatible(protocol, l4, app, byName)) {
            const uint32_t target = inlined ? e.targetPorts[pi] : sp->targetPort;
            out = Match{Status::Matched, e.entry, sp, host, target != 0 ? target : port};
            return true;
          }
          status = Status::ProtocolMismatch;
        }
        if (out.status == Status::NoMatch) out = Match{status, e.entry, sp, host, 0};
      }
    }
    return false;
  }

  // Calls fn(level) from the most to the least specific level until it returns true.
  template <typename Fn>
  static void forEachLevel(const HostTable& exactTable, const HostTable& wildcardTable,
                           const std::vector<Candidate>& all, std::string_view name, Fn&& fn) {
    if (name == "*") {
      if (!all.empty()) fn(Level(all));
      return;
    }
    // Level 0 is the exact key (or, for a pattern "*.example.com" from an address match, its
    // own suffix in the wildcard table); then one wildcard key per remaining label.
    bool pattern = name.starts_with("*.");
    if (pattern) name.remove_prefix(2);
    struct Probe {
      std::string_view key;
      uint64_t hash;
      const HostTable* table;
    };
    // A normalised name has at most 127 labels.
    std::array<Probe, 128> probes;
    size_t n = 0;
    const HostTable& first = pattern ? wildcardTable : exactTable;
    if (!first.empty()) probes[n++] = {name, HostTable::hash(name), &first};
    if (!wildcardTable.empty()) {
      for (size_t dot = name.find('.'); dot != std::string_view::npos && n < probes.size();
           dot = name.find('.', dot + 1)) {
        std::string_view suffix = name.substr(dot + 1);
        probes[n++] = {suffix, HostTable::hash(suffix), &wildcardTable};
      }
    }
    for (size_t i = 0; i < n; ++i) probes[i].table->prefetch(probes[i].hash);
    for (size_t i = 0; i < n; ++i) {
      if (Level l = probes[i].table->find(probes[i].key, probes[i].hash); !l.empty() && fn(l)) {
        return;
      }
    }
    if (!all.empty()) fn(Level(all));
  }
};

RegistryIndex::~RegistryIndex() = default;

bool RegistryIndex::protocolCompatible(PortProtocol protocol, L4Protocol l4, AppProtocol app,
                                       bool byName) {
  if (protocol == PortProtocol::Udp) return l4 == L4Protocol::Udp;
  if (l4 == L4Protocol::Udp) return false;
  switch (protocol) {
    case PortProtocol::Http:
    case PortProtocol::Http2:
    case PortProtocol::Grpc:
      return app == AppProtocol::Http || (app == AppProtocol::Unknown && byName);
    case PortProtocol::Https:
    case PortProtocol::Tls:
      return app == AppProtocol::Tls;
    case PortProtocol::Tcp:
    case PortProtocol::Mongo:
    case PortProtocol::Unspecified:
    case PortProtocol::Udp:
      return true;
  }
  return false;
}

Result<std::unique_ptr<RegistryIndex>> RegistryIndex::build(const Config& config) {
  std::unique_ptr<RegistryIndex> index(new RegistryIndex());
  index->impl_ = std::make_unique<Impl>();
  Impl& im = *index->impl_;

  auto byNsName = [](const ObjectMeta& a, const ObjectMeta& b) {
    return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
  };

  // ---- ServiceEntries
  std::vector<const ServiceEntry*> ses;
  ses.reserve(config.serviceEntries.size());
  for (const auto& se : config.serviceEntries) ses.push_back(&se);
  std::stable_sort(ses.begin(), ses.end(),
                   [&](auto* a, auto* b) { return byNsName(a->meta, b->meta); });
  StringMap<std::vector<Candidate>> exact;
  StringMap<std::vector<Candidate>> wildcard;
  std::map<std::pair<IpAddress, int>, uint32_t> groupOf;
  im.entries.reserve(ses.size());
  im.hosts.reserve(ses.size());
  for (const ServiceEntry* se : ses) {
    CompiledEntry ce;
    ce.entry = se;
    ce.ports = se->ports.data();
    ce.vis = im.visibility(se->meta, se->exportTo, se->workloadSelector);
    for (size_t i = 0; i < se->ports.size(); ++i) {
      const ServicePort& p = se->ports[i];
      if (p.number == 0 || p.number > 65535 || p.targetPort > 65535) {
        return fail(fmt::format("{}: spec.ports[{}]: port number out of range",
                                describe("ServiceEntry", se->meta), i));
      }
    }
    if (se->ports.size() > kInlinePorts) {
      ce.portCount = kPortsOverflow;
    } else {
      ce.portCount = static_cast<uint8_t>(se->ports.size());
      for (size_t i = 0; i < se->ports.size(); ++i) {
        ce.portNumbers[i] = static_cast<uint16_t>(se->ports[i].number);
        ce.targetPorts[i] = static_cast<uint16_t>(se->ports[i].targetPort);
        ce.protocols[i] = static_cast<uint8_t>(se->ports[i].protocol);
      }
    }
    const auto idx = static_cast<uint32_t>(im.entries.size());
    std::vector<std::string> hosts;
    for (const auto& raw : se->hosts) {
      auto host = normalizeHostPattern(raw);
      if (!host) {
        return fail(fmt::format("{}: spec.hosts: {}", describe("ServiceEntry", se->meta),
                                host.error().message));
      }
      const auto hostIdx = static_cast<uint32_t>(hosts.size());
      hosts.push_back(*host);
      const std::string& h = hosts.back();
      if (h == "*") {
        im.matchAll.push_back({idx, hostIdx});
      } else if (h.starts_with("*.")) {
        wildcard[h.substr(2)].push_back({idx, hostIdx});
      } else {
        exact[h].push_back({idx, hostIdx});
      }
    }
    for (const Cidr& cidr : se->addresses) {
      auto key = std::make_pair(cidr.base, cidr.prefix);
      auto [it, inserted] = groupOf.emplace(key, static_cast<uint32_t>(im.addressGroups.size()));
      if (inserted) {
        im.addressGroups.emplace_back();
        im.addresses.insert(cidr, it->second);
      }
      im.addressGroups[it->second].push_back({idx, 0});
    }
    im.entries.push_back(ce);
    im.hosts.push_back(std::move(hosts));
  }
  auto entryHints = [&im](Candidate c) {
    return std::pair<const void*, const void*>(&im.entries[c.index], im.entries[c.index].entry);
  };
  im.exact.build(std::move(exact), entryHints);
  im.wildcard.build(std::move(wildcard), entryHints);

  // ---- DestinationRules
  std::vector<const DestinationRule*> drs;
  for (const auto& dr : config.destinationRules) drs.push_back(&dr);
  std::stable_sort(drs.begin(), drs.end(),
                   [&](auto* a, auto* b) { return byNsName(a->meta, b->meta); });
  StringMap<std::vector<Candidate>> ruleExact;
  StringMap<std::vector<Candidate>> ruleWildcard;
  for (const DestinationRule* dr : drs) {
    auto host = normalizeHostPattern(dr->host);
    if (!host) {
      return fail(fmt::format("{}: spec.host: {}", describe("DestinationRule", dr->meta),
                              host.error().message));
    }
    const auto idx = static_cast<uint32_t>(im.rules.size());
    im.rules.push_back({dr, im.visibility(dr->meta, dr->exportTo, dr->workloadSelector)});
    if (*host == "*") {
      im.ruleAll.push_back({idx, 0});
    } else if (host->starts_with("*.")) {
      ruleWildcard[host->substr(2)].push_back({idx, 0});
    } else {
      ruleExact[*host].push_back({idx, 0});
    }
  }
  auto ruleHints = [&im](Candidate c) {
    return std::pair<const void*, const void*>(&im.rules[c.index], im.rules[c.index].rule);
  };
  im.ruleExact.build(std::move(ruleExact), ruleHints);
  im.ruleWildcard.build(std::move(ruleWildcard), ruleHints);

  // ---- Sidecars
  std::vector<const Sidecar*> scs;
  for (const auto& sc : config.sidecars) scs.push_back(&sc);
  std::stable_sort(scs.begin(), scs.end(),
                   [&](auto* a, auto* b) { return byNsName(a->meta, b->meta); });
  for (const Sidecar* sc : scs) {
    CompiledSidecar cs;
    cs.sidecar = sc;
    cs.restricts = !sc->egress.empty();
    for (const auto& eg : sc->egress) {
      for (const auto& raw : eg.hosts) {
        EgressHost h;
        h.port = eg.port;
        std::string_view hostPart = raw;
        // "host" without "ns/" is read as "*/host".
        if (auto slash = raw.find('/'); slash != std::string::npos) {
          std::string_view nsPart = std::string_view(raw).substr(0, slash);
          hostPart = std::string_view(raw).substr(slash + 1);
          if (nsPart == "*") {
            h.nsKind = EgressHost::Ns::Any;
          } else if (nsPart == ".") {
            h.nsKind = EgressHost::Ns::Same;
          } else if (nsPart == "~") {
            h.nsKind = EgressHost::Ns::None;
          } else if (nsPart.empty()) {
            return fail(fmt::format("{}: spec.egress.hosts \"{}\": empty namespace",
                                    describe("Sidecar", sc->meta), raw));
          } else {
            h.nsKind = EgressHost::Ns::Named;
            h.ns = nsPart;
          }
        }
        auto host = normalizeHostPattern(hostPart);
        if (!host) {
          return fail(fmt::format("{}: spec.egress.hosts: {}", describe("Sidecar", sc->meta),
                                  host.error().message));
        }
        h.host = *host;
        cs.hosts.push_back(std::move(h));
      }
    }
    const auto idx = static_cast<uint32_t>(im.sidecars.size());
    im.sidecars.push_back(std::move(cs));
    NsSidecars& ns = im.sidecarsByNs[sc->meta.ns];
    if (sc->workloadSelector) {
      ns.selected.push_back(idx);
    } else if (ns.namespaceWide < 0) {
      ns.namespaceWide = static_cast<int32_t>(idx);
    } else {
      return fail(fmt::format("{}: namespace {} already has a namespace-wide Sidecar ({})",
                              describe("Sidecar", sc->meta), sc->meta.ns,
                              im.sidecars[ns.namespaceWide].sidecar->meta.name));
    }
  }
  return index;
}

RegistryIndex::Match RegistryIndex::lookupName(const PodIdentity& source, std::string_view name,
                                               uint16_t port, L4Protocol l4,
                                               AppProtocol app) const {
  const Impl& im = *impl_;
  Match out;
  if (im.entries.empty()) return out;
  const CompiledSidecar* sc = im.sidecarFor(source);
  const PodCtx p{source, im.namespaceId(source.ns)};
  Impl::forEachLevel(im.exact, im.wildcard, im.matchAll, name, [&](Level level) {
    return im.tryLevel(level, p, sc, port, l4, app, /*byName=*/true, /*anyHost=*/false, out);
  });
  return out;
}

RegistryIndex::Match RegistryIndex::lookupAddress(const PodIdentity& source, const IpAddress& ip,
                                                  uint16_t port, L4Protocol l4,
                                                  AppProtocol app) const {
  const Impl& im = *impl_;
  Match out;
  if (im.addresses.empty()) return out;
  const CompiledSidecar* sc = im.sidecarFor(source);
  const PodCtx p{source, im.namespaceId(source.ns)};
  for (uint32_t group : im.addresses.lookupAll(ip)) {
    if (im.tryLevel(im.addressGroups[group], p, sc, port, l4, app, /*byName=*/false,
                    /*anyHost=*/true, out)) {
      break;
    }
  }
  return out;
}

std::optional<RegistryIndex::TlsPolicy> RegistryIndex::tlsFor(const PodIdentity& source,
                                                              std::string_view host,
                                                              uint16_t port) const {
  const Impl& im = *impl_;
  if (im.rules.empty()) return std::nullopt;
  const PodCtx p{source, im.namespaceId(source.ns)};
  const DestinationRule* chosen = nullptr;
  Impl::forEachLevel(im.ruleExact, im.ruleWildcard, im.ruleAll, host, [&](Level level) {
    for (int pass = 0; pass < 2 && !chosen; ++pass) {
      for (const Candidate& c : level) {
        const CompiledRule& r = im.rules[c.index];
        if ((r.vis.ownNs == p.nsId) != (pass == 0)) continue;
        if (!im.visibleTo(r.vis, p)) continue;
        chosen = r.rule;
        break;
      }
    }
    return chosen != nullptr;
  });
  if (!chosen || !chosen->trafficPolicy) return std::nullopt;
  const TrafficPolicy& tp = *chosen->trafficPolicy;
  for (const auto& pl : tp.portLevelSettings) {
    if (pl.port == port && pl.tls) return TlsPolicy{*pl.tls, chosen};
  }
  if (tp.tls) return TlsPolicy{*tp.tls, chosen};
  return std::nullopt;
}

const Sidecar* RegistryIndex::sidecarFor(const PodIdentity& source) const {
  const CompiledSidecar* sc = impl_->sidecarFor(source);
  return sc ? sc->sidecar : nullptr;
}

OutboundMode RegistryIndex::outboundMode(const PodIdentity& source,
                                         OutboundMode meshDefault) const {
  const Sidecar* sc = sidecarFor(source);
  return sc && sc->outboundMode ? *sc->outboundMode : meshDefault;
}

}  // namespace tollgate::policy

#include "policy/config_loader.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <system_error>
#include <utility>

namespace tollgate::policy {

std::string Diagnostic::str() const {
  std::string out = file.empty() ? std::string("<input>") : file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (severity == Severity::Warning) out += "warning: ";
  if (!object.empty()) out += object + ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

namespace {

// Past this many errors the rest are noise (and a hostile file could make millions).
constexpr size_t kMaxErrors = 200;
constexpr int kMaxListDepth = 4;

using YAML::Node;

// 1-based line of a node within the text it was parsed from; 0 when unknown.
int rawLine(const Node& n) {
  if (!n.IsDefined()) return 0;
  int line = n.Mark().line;
  return line >= 0 ? line + 1 : 0;
}

bool present(const Node& n) { return n.IsDefined() && !n.IsNull(); }

// Mapping lookup without yaml-cpp's operator[], which throws on scalars and can insert keys.
Node get(const Node& map, std::string_view key) {
  if (map.IsDefined() && map.IsMap()) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    }
  }
  return Node(YAML::NodeType::Undefined);
}

std::string_view typeName(const Node& n) {
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.IsScalar()) return "a scalar";
  return "null";
}

std::string index(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

std::string join(const std::string& field, std::string_view key) {
  return field.empty() ? std::string(key) : field + "." + std::string(key);
}

// Parses an optionally signed decimal integer; false when the text is not one.
bool parseInt(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  std::string_view digits = text[0] == '-' || text[0] == '+' ? text.substr(1) : text;
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  if (digits.size() > 12) {
    out = text[0] == '-' ? INT64_MIN : INT64_MAX;  // out of every range we check
    return true;
  }
  uint64_t v = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), v);
  out = text[0] == '-' ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  return true;
}

template <typename E>
using EnumTable = std::initializer_list<std::pair<std::string_view, E>>;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A DNS-ish host as Istio accepts it in ServiceEntry.hosts: an optional "*." prefix, then
// dot-separated labels of letters, digits, '-' and '_'.
std::string checkHost(std::string_view host, bool allowStar) {
  if (host.empty()) return "must not be empty";
  if (host == "*") return allowStar ? "" : "\"*\" is not allowed here";
  if (host.size() > 253) return "is longer than 253 characters";
  std::string_view rest = host;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.ends_with('.')) rest.remove_suffix(1);
  if (rest.empty()) return "has no name after the wildcard";
  size_t start = 0;
  while (start <= rest.size()) {
    size_t dot = rest.find('.', start);
    std::string_view label =
        rest.substr(start, dot == std::string_view::npos ? rest.npos : dot - start);
    if (label.empty()) return "has an empty label";
    if (label.size() > 63) return "has a label longer than 63 characters";
    for (char c : label) {
      if (c == '*') return "may only use a wildcard as a leading \"*.\"";
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
        return fmt::format("contains invalid character '{}'", c);
      }
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

// Kubernetes IANA_SVC_NAME, the rule for named ports.
std::string checkPortName(std::string_view name) {
  if (name.empty() || name.size() > 15) return "must be 1-15 characters";
  bool letter = false;
  for (char c : name) {
    if (c >= 'a' && c <= 'z') {
      letter = true;
    } else if (!(c >= '0' && c <= '9') && c != '-') {
      return "must contain only lower-case letters, digits and '-'";
    }
  }
  if (!letter) return "must contain at least one letter";
  if (name.front() == '-' || name.back() == '-' || name.find("--") != name.npos) {
    return "must not begin or end with '-' or contain \"--\"";
  }
  return "";
}

// "ip", "ip:port" or "[v6]:port".
bool validHostPort(std::string_view text) {
  if (IpAddress::parse(text)) return true;
  std::string_view host = text, port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == text.npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (!IpAddress::parse(host) || IpAddress::parse(host)->isV4()) return false;
  } else {
    size_t colon = text.rfind(':');
    if (colon == text.npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (!IpAddress::parse(host) || !IpAddress::parse(host)->isV4()) return false;
  }
  int64_t p = 0;
  return parseInt(port, p) && p >= 1 && p <= 65535;
}

// One YAML document's text and the 0-based line it starts at in the file.
struct Chunk {
  std::string_view text;
  int firstLine = 0;
};

// Splits a stream at its "---" / "..." markers. yaml-cpp 0.7's LoadAll never returns on a stray
// ',' ']' or '}' at document level (it keeps producing empty documents, jbeder/yaml-cpp#1040,
// fixed upstream in #1319), so documents are parsed one by one with a bounded loop instead.
// A "---" after only comments, blank lines or directives does not start a new chunk, so
// directives stay with their document.
std::vector<Chunk> splitDocuments(std::string_view text) {
  std::vector<Chunk> out;
  size_t start = 0, pos = 0;
  int startLine = 0, line = 0;
  bool significant = false;
  auto isMarker = [](std::string_view l, std::string_view m) {
    return l.starts_with(m) &&
           (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\n' || l[3] == '\r');
  };
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    size_t end = eol == std::string_view::npos ? text.size() : eol + 1;
    std::string_view l = text.substr(pos, end - pos);
    if (isMarker(l, "---")) {
      if (significant) {
        out.push_back({text.substr(start, pos - start), startLine});
        start = pos;
        startLine = line;
      }
      significant = true;
    } else if (isMarker(l, "...")) {
      out.push_back({text.substr(start, end - start), startLine});
      start = end;
      startLine = line + 1;
      significant = false;
    } else if (!significant) {
      size_t first = l.find_first_not_of(" \t\r\n");
      if (first != std::string_view::npos && l[first] != '#' && l[first] != '%') significant = true;
    }
    pos = end;
    ++line;
  }
  if (start < text.size()) out.push_back({text.substr(start), startLine});
  return out;
}

// Counts documents without building them, to spot content yaml-cpp would silently drop.
class CountingHandler : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

enum class KnownKind {
  ServiceEntry,
  DestinationRule,
  Sidecar,
  NetworkPolicy,
  Namespace,
  Pod,
  AuthorizationPolicy,
  TollgateConfig,
  List,
};

struct KindLookup {
  std::optional<KnownKind> kind;
  bool badVersion = false;  // a kind we read, in its group, but at a version we do not
};

KindLookup lookupKind(std::string_view apiVersion, std::string_view kind) {
  size_t slash = apiVersion.find('/');
  std::string_view group = slash == apiVersion.npos ? "" : apiVersion.substr(0, slash);
  std::string_view version = slash == apiVersion.npos ? apiVersion : apiVersion.substr(slash + 1);
  auto in = [&](std::initializer_list<std::string_view> versions) {
    return std::find(versions.begin(), versions.end(), version) != versions.end();
  };
  auto pick = [&](KnownKind k, bool ok) {
    return ok ? KindLookup{k, false} : KindLookup{std::nullopt, true};
  };
  if (group == "networking.istio.io") {
    bool ok = in({"v1", "v1beta1", "v1alpha3"});
    if (kind == "ServiceEntry") return pick(KnownKind::ServiceEntry, ok);
    if (kind == "DestinationRule") return pick(KnownKind::DestinationRule, ok);
    if (kind == "Sidecar") return pick(KnownKind::Sidecar, ok);
  } else if (group == "networking.k8s.io") {
    if (kind == "NetworkPolicy") return pick(KnownKind::NetworkPolicy, version == "v1");
  } else if (group.empty()) {
    if (kind == "Namespace") return pick(KnownKind::Namespace, version == "v1");
    if (kind == "Pod") return pick(KnownKind::Pod, version == "v1");
    if (kind == "List") return pick(KnownKind::List, version == "v1");
  } else if (group == "security.istio.io") {
    if (kind == "AuthorizationPolicy") {
      return pick(KnownKind::AuthorizationPolicy, in({"v1", "v1beta1"}));
    }
  } else if (group == "tollgate.io") {
    if (kind == "TollgateConfig") return pick(KnownKind::TollgateConfig, version == "v1alpha1");
  }
  return {};
}

// One load: the config being built and every diagnostic found, across all files.
class Reader {
 public:
  Config config;
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;

  void loadText(std::string_view text, const std::string& file);
  void fileError(const std::string& file, std::string message) {
    errors.push_back({Diagnostic::Severity::Error, file, 0, "", "", std::move(message)});
  }
  void finish();

 private:
  std::string file_;
  std::string object_;  // objectRef of the object being read
  int lineBase_ = 0;    // 0-based line where the current document's text starts in the file
  bool tooMany_ = false;

  // Where the first TollgateConfig came from, to name both when a second one appears.
  std::string tollgateWhere_;

  void error(int line, std::string field, std::string message) {
    if (errors.size() >= kMaxErrors) {
      tooMany_ = true;
      return;
    }
    errors.push_back(
        {Diagnostic::Severity::Error, file_, line, object_, std::move(field), std::move(message)});
  }
  void error(const Node& at, std::string field, std::string message) {
    error(lineOf(at), std::move(field), std::move(message));
  }
  void warning(int line, std::string field, std::string message) {
    if (warnings.size() >= kMaxErrors) return;
    warnings.push_back({Diagnostic::Severity::Warning, file_, line, object_, std::move(field),
                        std::move(message)});
  }

  void document(const Node& doc, int depth);
  void chunk(const Chunk& c);

  int lineOf(const Node& n) const {
    int line = rawLine(n);
    return line > 0 ? line + lineBase_ : 0;
  }
  int markLine(const YAML::Mark& m) const { return m.line >= 0 ? m.line + 1 + lineBase_ : 0; }

  // ---- typed field readers: each reports its own error and returns nothing on failure ----

  bool expectMap(const Node& n, const std::string& field) {
    if (!present(n)) return false;
    if (!n.IsMap()) {
      error(n, field, fmt::format("must be a mapping, got {}", typeName(n)));
      return false;
    }
    return true;
  }

  std::optional<std::string> str(const Node& n, const std::string& field) {
    if (!present(n)) return std::nullopt;
    if (!n.IsScalar()) {
      error(n, field, fmt::format("must be a string, got {}", typeName(n)));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<std::string> requiredStr(const Node& parent, std::string_view key,
                                         const std::string& field) {
    Node n = get(parent, key);
    auto path = join(field, key);
    if (!present(n)) {
      error(parent, path, "is required");
      return std::nullopt;
    }
    auto s = str(n, path);
    if (s && s->empty()) {
      error(n, path, "must not be empty");
      return std::nullopt;
    }
    return s;
  }

  // Calls fn(item, "field[i]") for every item of a list.
  void forEach(const Node& n, const std::string& field,
               const std::function<void(const Node&, const std::string&)>& fn) {
    if (!present(n)) return;
    if (!n.IsSequence()) {
      error(n, field, fmt::format("must be a list, got {}", typeName(n)));
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) fn(n[i], index(field, i));
  }

  // `nodes`, when given, receives the node and path of every string returned (for later errors).
  using Located = std::vector<std::pair<Node, std::string>>;
  std::vector<std::string> strList(const Node& n, const std::string& field,
                                   Located* nodes = nullptr) {
    std::vector<std::string> out;
    forEach(n, field, [&](const Node& item, const std::string& path) {
      if (auto s = str(item, path)) {
        out.push_back(*s);
        if (nodes) nodes->emplace_back(item, path);
      } else if (!present(item)) {
        error(item, path, "must be a string, got null");
      }
    });
    return out;
  }

  std::optional<int64_t> integer(const Node& n, const std::string& field, int64_t min,
                                 int64_t max) {
    if (!present(n)) return std::nullopt;
    if (!n.IsScalar()) {
      error(n, field, fmt::format("must be an integer, got {}", typeName(n)));
      return std::nullopt;
    }
    int64_t v = 0;
    if (!parseInt(n.Scalar(), v)) {
      error(n, field, fmt::format("must be an integer, got \"{}\"", n.Scalar()));
      return std::nullopt;
    }
    if (v < min || v > max) {
      error(n, field, fmt::format("must be {}-{}, got {}", min, max, n.Scalar()));
      return std::nullopt;
    }
    return v;
  }

  std::optional<uint32_t> port(const Node& n, const std::string& field) {
    auto v = integer(n, field, 1, 65535);
    return v ? std::optional<uint32_t>(static_cast<uint32_t>(*v)) : std::nullopt;
  }

  std::optional<bool> boolean(const Node& n, const std::string& field) {
    if (!present(n)) return std::nullopt;
    if (n.IsScalar()) {
      if (n.Scalar() == "true" || n.Scalar() == "True" || n.Scalar() == "TRUE") return true;
      if (n.Scalar() == "false" || n.Scalar() == "False" || n.Scalar() == "FALSE") return false;
    }
    error(n, field, "must be true or false");
    return std::nullopt;
  }

  template <typename E>
  std::optional<E> enumValue(const Node& n, const std::string& field, EnumTable<E> table,
                             bool caseInsensitive = false) {
    auto s = str(n, field);
    if (!s) return std::nullopt;
    for (const auto& [name, value] : table) {
      if (caseInsensitive ? iequals(name, *s) : name == *s) return value;
    }
    std::string names;
    for (const auto& entry : table) names += (names.empty() ? "" : ", ") + std::string(entry.first);
    error(n, field, fmt::format("must be one of {}, got \"{}\"", names, *s));
    return std::nullopt;
  }

  std::optional<Cidr> cidr(const Node& n, const std::string& field) {
    auto s = str(n, field);
    if (!s) return std::nullopt;
    auto c = Cidr::parse(*s);
    if (!c) error(n, field, fmt::format("must be an IP address or CIDR, got \"{}\"", *s));
    return c;
  }

  Labels stringMap(const Node& n, const std::string& field) {
    Labels out;
    if (!expectMap(n, field)) return out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) {
        error(it->first, field, "keys must be strings");
        continue;
      }
      const std::string& key = it->first.Scalar();
      auto path = join(field, key);
      if (!it->second.IsDefined() || it->second.IsNull()) {
        out[key] = "";  // "key:" with no value is the empty string, as kubectl reads it
      } else if (auto v = str(it->second, path)) {
        out[key] = *v;
      }
    }
    return out;
  }

  std::optional<Labels> optionalLabels(const Node& parent, std::string_view key,
                                       const std::string& field) {
    Node n = get(parent, key);
    if (!present(n)) return std::nullopt;
    if (!n.IsMap()) {
      error(n, join(field, key), fmt::format("must be a mapping, got {}", typeName(n)));
      return std::nullopt;
    }
    return stringMap(n, join(field, key));
  }

  // ---- objects ----
  bool meta(const Node& doc, KnownKind kind, ObjectMeta& m);
  void serviceEntry(const Node& spec, ServiceEntry& se);
  std::optional<ClientTlsSettings> tls(const Node& n, const std::string& field);
  std::optional<TrafficPolicy> trafficPolicy(const Node& n, const std::string& field);
  void destinationRule(const Node& spec, DestinationRule& dr);
  void sidecar(const Node& spec, Sidecar& sc);
  std::optional<LabelSelector> selector(const Node& n, const std::string& field);
  void networkPolicy(const Node& spec, NetworkPolicy& np);
  void pod(const Node& doc, Pod& pod);
  void authorizationPolicy(const Node& spec, AuthorizationPolicy& ap);
  void tollgateConfig(const Node& spec, TollgateConfig& tc);
};

void Reader::loadText(std::string_view text, const std::string& file) {
  file_ = file;
  for (const Chunk& c : splitDocuments(text)) {
    if (errors.size() >= kMaxErrors) {
      tooMany_ = true;
      break;
    }
    chunk(c);
  }
  object_.clear();
  lineBase_ = 0;
}

void Reader::chunk(const Chunk& c) {
  object_.clear();
  lineBase_ = c.firstLine;
  std::string text(c.text);
  Node doc;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    CountingHandler counter;
    int documents = 0;
    while (documents < 2 && parser.HandleNextDocument(counter)) ++documents;
    if (documents == 0) return;  // only comments or directives
    if (documents > 1) {
      error(c.firstLine + 1, "",
            "YAML syntax error: unexpected content in this document (a stray ',', ']' or '}'?)");
      return;
    }
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    error(markLine(e.mark), "", "YAML syntax error: " + e.msg);
    return;
  } catch (const std::exception& e) {
    error(c.firstLine + 1, "", std::string("cannot parse YAML: ") + e.what());
    return;
  }
  try {
    document(doc, 0);
  } catch (const YAML::Exception& e) {
    // A yaml-cpp surprise (bad conversion, invalid node) must not take the process down.
    error(e.mark.line >= 0 ? markLine(e.mark) : lineOf(doc), "", "cannot read object: " + e.msg);
  } catch (const std::exception& e) {
    error(lineOf(doc), "", std::string("cannot read object: ") + e.what());
  }
}

void Reader::finish() {
  if (tooMany_) {
    errors.push_back({Diagnostic::Severity::Error, "", 0, "", "",
                      fmt::format("too many errors; only the first {} are shown", kMaxErrors)});
  }
}

void Reader::document(const Node& doc, int depth) {
  if (!present(doc)) return;  // empty document, e.g. between two "---"
  int line = lineOf(doc);
  object_.clear();
  if (!doc.IsMap()) {
    error(line, "",
          fmt::format("document must be a mapping (a Kubernetes object), got {}", typeName(doc)));
    return;
  }
  Node apiNode = get(doc, "apiVersion");
  Node kindNode = get(doc, "kind");
  std::string apiVersion = apiNode.IsDefined() && apiNode.IsScalar() ? apiNode.Scalar() : "";
  std::string kind = kindNode.IsDefined() && kindNode.IsScalar() ? kindNode.Scalar() : "";

  // Best-effort identity for diagnostics, before the metadata is validated.
  Node md = get(doc, "metadata");
  Node nameNode = get(md, "name");
  Node nsNode = get(md, "namespace");
  ObjectMeta guess;
  guess.kind = kind;
  guess.name = nameNode.IsDefined() && nameNode.IsScalar() ? nameNode.Scalar() : "";
  guess.ns = nsNode.IsDefined() && nsNode.IsScalar() ? nsNode.Scalar() : "";
  if (!kind.empty()) object_ = objectRef(guess);

  if (kind.empty() || apiVersion.empty()) {
    if (kind.empty()) error(line, "kind", "is required (a string)");
    if (apiVersion.empty()) error(line, "apiVersion", "is required (a string)");
    return;
  }
  KindLookup k = lookupKind(apiVersion, kind);
  if (k.badVersion) {
    error(apiNode, "apiVersion", fmt::format("{} is not supported for kind {}", apiVersion, kind));
    return;
  }
  if (!k.kind) {
    warning(line, "", fmt::format("skipped: tollgate does not read {} {}", apiVersion, kind));
    return;
  }
  if (*k.kind == KnownKind::List) {
    if (depth >= kMaxListDepth) {
      error(line, "items", "Lists nested too deeply");
      return;
    }
    Node items = get(doc, "items");
    forEach(items, "items",
            [&](const Node& item, const std::string&) { document(item, depth + 1); });
    return;
  }

  ObjectMeta m;
  m.apiVersion = apiVersion;
  m.kind = kind;
  m.source = {file_, line};
  if (!meta(doc, *k.kind, m)) return;
  object_ = objectRef(m);
  Node spec = get(doc, "spec");
  if (present(spec) && !spec.IsMap()) {
    error(spec, "spec", fmt::format("must be a mapping, got {}", typeName(spec)));
    return;
  }

  switch (*k.kind) {
    case KnownKind::ServiceEntry: {
      ServiceEntry se;
      se.meta = m;
      serviceEntry(spec, se);
      config.serviceEntries.push_back(std::move(se));
      break;
    }
    case KnownKind::DestinationRule: {
      DestinationRule dr;
      dr.meta = m;
      destinationRule(spec, dr);
      config.destinationRules.push_back(std::move(dr));
      break;
    }
    case KnownKind::Sidecar: {
      Sidecar sc;
      sc.meta = m;
      sidecar(spec, sc);
      config.sidecars.push_back(std::move(sc));
      break;
    }
    case KnownKind::NetworkPolicy: {
      NetworkPolicy np;
      np.meta = m;
      if (!present(spec)) {
        error(doc, "spec.podSelector", "is required (use {} to select every pod)");
        break;
      }
      networkPolicy(spec, np);
      config.networkPolicies.push_back(std::move(np));
      break;
    }
    case KnownKind::Namespace: {
      // Kubernetes sets this label on every namespace; selectors rely on it.
      m.labels["kubernetes.io/metadata.name"] = m.name;
      config.namespaces.push_back(Namespace{m});
      break;
    }
    case KnownKind::Pod: {
      Pod p;
      p.meta = m;
      pod(doc, p);
      config.pods.push_back(std::move(p));
      break;
    }
    case KnownKind::AuthorizationPolicy: {
      AuthorizationPolicy ap;
      ap.meta = m;
      authorizationPolicy(spec, ap);
      config.authorizationPolicies.push_back(std::move(ap));
      break;
    }
    case KnownKind::TollgateConfig: {
      std::string where = fmt::format("{}:{}", file_, line);
      if (config.tollgate) {
        error(line, "",
              fmt::format("only one TollgateConfig is allowed; {} is already defined at {}",
                          objectRef(config.tollgate->meta), tollgateWhere_));
        break;
      }
      TollgateConfig tc;
      tc.meta = m;
      tollgateConfig(spec, tc);
      tollgateWhere_ = where;
      config.tollgate = std::move(tc);
      break;
    }
    case KnownKind::List:
      break;
  }
}

bool Reader::meta(const Node& doc, KnownKind kind, ObjectMeta& m) {
  Node md = get(doc, "metadata");
  if (!present(md)) {
    error(doc, "metadata.name", "is required");
    return false;
  }
  if (!expectMap(md, "metadata")) return false;
  auto name = requiredStr(md, "name", "metadata");
  if (!name) return false;
  m.name = *name;
  bool clusterScoped = kind == KnownKind::Namespace || kind == KnownKind::TollgateConfig;
  if (!clusterScoped) {
    auto ns = str(get(md, "namespace"), "metadata.namespace");
    m.ns = ns && !ns->empty() ? *ns : "default";
  }
  if (auto uid = str(get(md, "uid"), "metadata.uid")) m.uid = *uid;
  m.labels = stringMap(get(md, "labels"), "metadata.labels");
  m.annotations = stringMap(get(md, "annotations"), "metadata.annotations");
  return true;
}

// ---- ServiceEntry -------------------------------------------------------------------------

void Reader::serviceEntry(const Node& spec, ServiceEntry& se) {
  Node hosts = get(spec, "hosts");
  if (!present(hosts)) {
    error(present(spec) ? lineOf(spec) : se.meta.source.line, "spec.hosts",
          "is required (at least one host)");
  } else {
    se.hosts = strList(hosts, "spec.hosts");
    if (hosts.IsSequence() && hosts.size() == 0) error(hosts, "spec.hosts", "must not be empty");
    for (size_t i = 0; hosts.IsSequence() && i < hosts.size(); ++i) {
      if (!hosts[i].IsScalar()) continue;
      auto why = checkHost(hosts[i].Scalar(), false);
      if (!why.empty()) error(hosts[i], index("spec.hosts", i), "host " + why);
    }
  }
  forEach(get(spec, "addresses"), "spec.addresses", [&](const Node& n, const std::string& path) {
    if (auto c = cidr(n, path)) se.addresses.push_back(*c);
  });
  forEach(get(spec, "ports"), "spec.ports", [&](const Node& n, const std::string& path) {
    if (!expectMap(n, path)) {
      if (!present(n)) error(n, path, "must be a mapping, got null");
      return;
    }
    ServicePort p;
    Node number = get(n, "number");
    if (!present(number)) {
      error(n, join(path, "number"), "is required");
    } else if (auto v = port(number, join(path, "number"))) {
      p.number = *v;
    }
    if (auto s = str(get(n, "name"), join(path, "name"))) p.name = *s;
    Node proto = get(n, "protocol");
    if (present(proto)) {
      // Istio reads protocol names case-insensitively; the less common ones map to what the
      // proxy does with them.
      auto v = enumValue<PortProtocol>(proto, join(path, "protocol"),
                                       {{"HTTP", PortProtocol::Http},
                                        {"HTTPS", PortProtocol::Https},
                                        {"HTTP2", PortProtocol::Http2},
                                        {"GRPC", PortProtocol::Grpc},
                                        {"GRPC-Web", PortProtocol::Http},
                                        {"HTTP_PROXY", PortProtocol::Http},
                                        {"TLS", PortProtocol::Tls},
                                        {"TCP", PortProtocol::Tcp},
                                        {"Mongo", PortProtocol::Mongo},
                                        {"UDP", PortProtocol::Udp},
                                        {"Redis", PortProtocol::Tcp},
                                        {"MySQL", PortProtocol::Tcp},
                                        {"Thrift", PortProtocol::Tcp}},
                                       true);
      if (v) {
        p.protocol = *v;
        p.protocolName = proto.Scalar();
      }
    }
    if (auto v = port(get(n, "targetPort"), join(path, "targetPort"))) p.targetPort = *v;
    se.ports.push_back(std::move(p));
  });
  if (auto v = enumValue<Location>(
          get(spec, "location"), "spec.location",
          {{"MESH_EXTERNAL", Location::MeshExternal}, {"MESH_INTERNAL", Location::MeshInternal}})) {
    se.location = *v;
  }
  if (auto v = enumValue<Resolution>(get(spec, "resolution"), "spec.resolution",
                                     {{"NONE", Resolution::None},
                                      {"STATIC", Resolution::Static},
                                      {"DNS", Resolution::Dns},
                                      {"DNS_ROUND_ROBIN", Resolution::DnsRoundRobin}})) {
    se.resolution = *v;
  }
  forEach(get(spec, "endpoints"), "spec.endpoints", [&](const Node& n, const std::string& path) {
    if (!expectMap(n, path)) {
      if (!present(n)) error(n, path, "must be a mapping, got null");
      return;
    }
    WorkloadEndpoint ep;
    if (auto s = str(get(n, "address"), join(path, "address"))) {
      ep.address = *s;
      // STATIC resolution sends traffic to the endpoint addresses as written: they must be IPs.
      if (se.resolution == Resolution::Static && !IpAddress::parse(*s) &&
          !s->starts_with("unix://")) {
        error(get(n, "address"), join(path, "address"),
              fmt::format("must be an IP address with resolution STATIC, got \"{}\"", *s));
      }
    }
    Node ports = get(n, "ports");
    if (expectMap(ports, join(path, "ports"))) {
      for (auto it = ports.begin(); it != ports.end(); ++it) {
        std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
        if (auto v = port(it->second, join(join(path, "ports"), key))) ep.ports[key] = *v;
      }
    }
    ep.labels = stringMap(get(n, "labels"), join(path, "labels"));
    if (auto s = str(get(n, "network"), join(path, "network"))) ep.network = *s;
    if (auto s = str(get(n, "locality"), join(path, "locality"))) ep.locality = *s;
    if (auto v = integer(get(n, "weight"), join(path, "weight"), 0, UINT32_MAX)) {
      ep.weight = static_cast<uint32_t>(*v);
    }
    se.endpoints.push_back(std::move(ep));
  });
  se.exportTo = strList(get(spec, "exportTo"), "spec.exportTo");
  Node ws = get(spec, "workloadSelector");
  if (expectMap(ws, "spec.workloadSelector")) {
    se.workloadSelector = stringMap(get(ws, "labels"), "spec.workloadSelector.labels");
  }
}

// ---- DestinationRule ----------------------------------------------------------------------

std::optional<ClientTlsSettings> Reader::tls(const Node& n, const std::string& field) {
  if (!expectMap(n, field)) return std::nullopt;
  ClientTlsSettings t;
  if (auto v = enumValue<TlsMode>(get(n, "mode"), join(field, "mode"),
                                  {{"DISABLE", TlsMode::Disable},
                                   {"SIMPLE", TlsMode::Simple},
                                   {"MUTUAL", TlsMode::Mutual},
                                   {"ISTIO_MUTUAL", TlsMode::IstioMutual}})) {
    t.mode = *v;
  }
  auto s = [&](std::string_view key, std::string& out) {
    if (auto v = str(get(n, key), join(field, key))) out = *v;
  };
  s("sni", t.sni);
  s("caCertificates", t.caCertificates);
  s("clientCertificate", t.clientCertificate);
  s("privateKey", t.privateKey);
  s("credentialName", t.credentialName);
  t.subjectAltNames = strList(get(n, "subjectAltNames"), join(field, "subjectAltNames"));
  if (auto b = boolean(get(n, "insecureSkipVerify"), join(field, "insecureSkipVerify"))) {
    t.insecureSkipVerify = *b;
  }
  return t;
}

std::optional<TrafficPolicy> Reader::trafficPolicy(const Node& n, const std::string& field) {
  if (!expectMap(n, field)) return std::nullopt;
  TrafficPolicy tp;
  tp.tls = tls(get(n, "tls"), join(field, "tls"));
  forEach(get(n, "portLevelSettings"), join(field, "portLevelSettings"),
          [&](const Node& item, const std::string& path) {
            if (!expectMap(item, path)) return;
            PortTrafficPolicy p;
            Node portNode = get(item, "port");
            if (!present(portNode)) {
              error(item, join(path, "port.number"), "is required");
            } else if (expectMap(portNode, join(path, "port"))) {
              Node number = get(portNode, "number");
              if (!present(number)) {
                error(portNode, join(path, "port.number"), "is required");
              } else if (auto v = port(number, join(path, "port.number"))) {
                p.port = *v;
              }
            }
            p.tls = tls(get(item, "tls"), join(path, "tls"));
            tp.portLevelSettings.push_back(std::move(p));
          });
  return tp;
}

void Reader::destinationRule(const Node& spec, DestinationRule& dr) {
  Node host = get(spec, "host");
  if (!present(host)) {
    error(present(spec) ? lineOf(spec) : dr.meta.source.line, "spec.host", "is required");
  } else if (auto s = str(host, "spec.host")) {
    dr.host = *s;
    auto why = checkHost(*s, false);
    if (!why.empty()) error(host, "spec.host", "host " + why);
  }
  dr.trafficPolicy = trafficPolicy(get(spec, "trafficPolicy"), "spec.trafficPolicy");
  forEach(get(spec, "subsets"), "spec.subsets", [&](const Node& n, const std::string& path) {
    if (!expectMap(n, path)) return;
    Subset s;
    if (auto name = requiredStr(n, "name", path)) s.name = *name;
    s.labels = stringMap(get(n, "labels"), join(path, "labels"));
    s.trafficPolicy = trafficPolicy(get(n, "trafficPolicy"), join(path, "trafficPolicy"));
    dr.subsets.push_back(std::move(s));
  });
  dr.exportTo = strList(get(spec, "exportTo"), "spec.exportTo");
  Node ws = get(spec, "workloadSelector");
  if (expectMap(ws, "spec.workloadSelector")) {
    dr.workloadSelector = stringMap(get(ws, "matchLabels"), "spec.workloadSelector.matchLabels");
  }
}

// ---- Sidecar ------------------------------------------------------------------------------

void Reader::sidecar(const Node& spec, Sidecar& sc) {
  Node ws = get(spec, "workloadSelector");
  if (expectMap(ws, "spec.workloadSelector")) {
    sc.workloadSelector = stringMap(get(ws, "labels"), "spec.workloadSelector.labels");
  }
  forEach(get(spec, "egress"), "spec.egress", [&](const Node& n, const std::string& path) {
    if (!expectMap(n, path)) return;
    SidecarEgress eg;
    Node portNode = get(n, "port");
    if (expectMap(portNode, join(path, "port"))) {
      eg.port = port(get(portNode, "number"), join(path, "port.number"));
    }
    Node hosts = get(n, "hosts");
    if (!present(hosts)) {
      error(n, join(path, "hosts"), "is required");
    } else {
      eg.hosts = strList(hosts, join(path, "hosts"));
      for (size_t i = 0; hosts.IsSequence() && i < hosts.size(); ++i) {
        if (!hosts[i].IsScalar()) continue;
        std::string_view h = hosts[i].Scalar();
        size_t slash = h.find('/');
        std::string why;
        if (slash == h.npos || slash == 0 || slash + 1 == h.size() ||
            h.find('/', slash + 1) != h.npos) {
          why = "must be \"namespace/host\" (e.g. \"./*\", \"istio-system/*\")";
        } else {
          why = checkHost(h.substr(slash + 1), true);
          if (!why.empty()) why = "host " + why;
        }
        if (!why.empty()) error(hosts[i], index(join(path, "hosts"), i), why);
      }
    }
    sc.egress.push_back(std::move(eg));
  });
  Node otp = get(spec, "outboundTrafficPolicy");
  if (expectMap(otp, "spec.outboundTrafficPolicy")) {
    sc.outboundMode = enumValue<OutboundMode>(
        get(otp, "mode"), "spec.outboundTrafficPolicy.mode",
        {{"REGISTRY_ONLY", OutboundMode::RegistryOnly}, {"ALLOW_ANY", OutboundMode::AllowAny}});
  }
}

// ---- NetworkPolicy ------------------------------------------------------------------------

std::optional<LabelSelector> Reader::selector(const Node& n, const std::string& field) {
  if (!expectMap(n, field)) return std::nullopt;
  LabelSelector sel;
  sel.matchLabels = stringMap(get(n, "matchLabels"), join(field, "matchLabels"));
  for (const auto& [key, value] : sel.matchLabels) {
    if (key.empty()) error(n, join(field, "matchLabels"), "label keys must not be empty");
  }
  forEach(get(n, "matchExpressions"), join(field, "matchExpressions"),
          [&](const Node& e, const std::string& path) {
            if (!expectMap(e, path)) {
              if (!present(e)) error(e, path, "must be a mapping, got null");
              return;
            }
            LabelRequirement r;
            auto key = requiredStr(e, "key", path);
            Node opNode = get(e, "operator");
            std::optional<LabelRequirement::Op> op;
            if (!present(opNode)) {
              error(e, join(path, "operator"), "is required");
            } else {
              op = enumValue<LabelRequirement::Op>(
                  opNode, join(path, "operator"),
                  {{"In", LabelRequirement::Op::In},
                   {"NotIn", LabelRequirement::Op::NotIn},
                   {"Exists", LabelRequirement::Op::Exists},
                   {"DoesNotExist", LabelRequirement::Op::DoesNotExist}});
            }
            Node values = get(e, "values");
            r.values = strList(values, join(path, "values"));
            if (op) {
              bool set = *op == LabelRequirement::Op::In || *op == LabelRequirement::Op::NotIn;
              if (set && r.values.empty()) {
                error(present(values) ? values : e, join(path, "values"),
                      "must be non-empty when operator is In or NotIn");
              } else if (!set && !r.values.empty()) {
                error(values, join(path, "values"),
                      "must be empty when operator is Exists or DoesNotExist");
              }
            }
            if (key && op) {
              r.key = *key;
              r.op = *op;
              sel.matchExpressions.push_back(std::move(r));
            }
          });
  return sel;
}

void Reader::networkPolicy(const Node& spec, NetworkPolicy& np) {
  Node ps = get(spec, "podSelector");
  if (!present(ps)) {
    error(spec, "spec.podSelector", "is required (use {} to select every pod)");
  } else if (auto sel = selector(ps, "spec.podSelector")) {
    np.podSelector = std::move(*sel);
  }
  Node egress = get(spec, "egress");
  Located typeNodes;
  std::vector<std::string> types =
      strList(get(spec, "policyTypes"), "spec.policyTypes", &typeNodes);
  if (types.empty()) {
    // Kubernetes defaulting: Ingress always, Egress only when there are egress rules.
    np.policyTypesIngress = true;
    np.policyTypesEgress = egress.IsDefined() && egress.IsSequence() && egress.size() > 0;
  }
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == "Ingress") {
      np.policyTypesIngress = true;
    } else if (types[i] == "Egress") {
      np.policyTypesEgress = true;
    } else {
      error(typeNodes[i].first, typeNodes[i].second,
            fmt::format("must be one of Ingress, Egress, got \"{}\"", types[i]));
    }
  }
  Node ingress = get(spec, "ingress");
  if (present(ingress) && !ingress.IsSequence()) {
    error(ingress, "spec.ingress", fmt::format("must be a list, got {}", typeName(ingress)));
  }
  forEach(egress, "spec.egress", [&](const Node& rule, const std::string& path) {
    NetworkPolicyEgressRule out;
    if (present(rule) && !expectMap(rule, path)) return;  // null rule: {} (all)
    forEach(get(rule, "to"), join(path, "to"), [&](const Node& p, const std::string& pp) {
      if (!expectMap(p, pp)) {
        if (!present(p)) error(p, pp, "must specify podSelector, namespaceSelector or ipBlock");
        return;
      }
      NetworkPolicyPeer peer;
      peer.podSelector = selector(get(p, "podSelector"), join(pp, "podSelector"));
      peer.namespaceSelector = selector(get(p, "namespaceSelector"), join(pp, "namespaceSelector"));
      Node ib = get(p, "ipBlock");
      if (expectMap(ib, join(pp, "ipBlock"))) {
        Node cidrNode = get(ib, "cidr");
        auto path = join(pp, "ipBlock");
        if (!present(cidrNode)) {
          error(ib, join(path, "cidr"), "is required");
        } else if (auto c = cidr(cidrNode, join(path, "cidr"))) {
          IpBlock block;
          block.cidr = *c;
          forEach(get(ib, "except"), join(path, "except"),
                  [&](const Node& e, const std::string& ep) {
                    auto x = cidr(e, ep);
                    if (!x) return;
                    if (x->base.family != c->base.family || x->prefix <= c->prefix ||
                        !c->contains(*x)) {
                      error(e, ep, fmt::format("must be a strict subset of {}", c->str()));
                      return;
                    }
                    block.except.push_back(*x);
                  });
          peer.ipBlock = std::move(block);
        }
        if (present(get(p, "podSelector")) || present(get(p, "namespaceSelector"))) {
          error(ib, path, "may not be combined with podSelector or namespaceSelector");
        }
      }
      if (!present(get(p, "podSelector")) && !present(get(p, "namespaceSelector")) &&
          !present(ib)) {
        error(p, pp, "must specify podSelector, namespaceSelector or ipBlock");
      }
      out.to.push_back(std::move(peer));
    });
    forEach(get(rule, "ports"), join(path, "ports"), [&](const Node& p, const std::string& pp) {
      NetworkPolicyPort port;
      if (present(p) && !expectMap(p, pp)) return;
      if (auto v = enumValue<L4Protocol>(
              get(p, "protocol"), join(pp, "protocol"),
              {{"TCP", L4Protocol::Tcp}, {"UDP", L4Protocol::Udp}, {"SCTP", L4Protocol::Sctp}})) {
        port.protocol = *v;
      }
      Node pn = get(p, "port");
      int64_t number = 0;
      // A plain integer is a port number; anything else (including a quoted "80") is a name.
      if (present(pn) && pn.IsScalar() && pn.Tag() != "!" && parseInt(pn.Scalar(), number)) {
        if (auto v = this->port(pn, join(pp, "port"))) port.port = *v;
      } else if (auto s = str(pn, join(pp, "port"))) {
        auto why = checkPortName(*s);
        if (why.empty()) {
          port.port = *s;
        } else {
          error(pn, join(pp, "port"), fmt::format("named port \"{}\" {}", *s, why));
        }
      }
      Node ep = get(p, "endPort");
      if (present(ep)) {
        if (auto v = this->port(ep, join(pp, "endPort"))) {
          if (!present(pn)) {
            error(ep, join(pp, "endPort"), "requires port");
          } else if (port.port && !std::holds_alternative<uint32_t>(*port.port)) {
            error(ep, join(pp, "endPort"), "may not be used with a named port");
          } else if (port.port && *v < std::get<uint32_t>(*port.port)) {
            error(ep, join(pp, "endPort"),
                  fmt::format("must be greater than or equal to port {}",
                              std::get<uint32_t>(*port.port)));
          } else {
            port.endPort = *v;
          }
        }
      }
      out.ports.push_back(std::move(port));
    });
    np.egress.push_back(std::move(out));
  });
}

// ---- Pod ----------------------------------------------------------------------------------

void Reader::pod(const Node& doc, Pod& p) {
  Node spec = get(doc, "spec");
  if (auto s = str(get(spec, "serviceAccountName"), "spec.serviceAccountName")) {
    if (!s->empty()) p.serviceAccountName = *s;
  } else if (auto legacy = str(get(spec, "serviceAccount"), "spec.serviceAccount")) {
    if (!legacy->empty()) p.serviceAccountName = *legacy;  // deprecated alias
  }
  if (auto b = boolean(get(spec, "hostNetwork"), "spec.hostNetwork")) p.hostNetwork = *b;
  if (auto s = str(get(spec, "nodeName"), "spec.nodeName")) p.nodeName = *s;
  for (std::string_view list : {"containers", "initContainers"}) {
    forEach(get(spec, list), join("spec", list), [&](const Node& c, const std::string& cp) {
      if (!expectMap(c, cp)) return;
      forEach(get(c, "ports"), join(cp, "ports"), [&](const Node& n, const std::string& path) {
        if (!expectMap(n, path)) return;
        ContainerPort port;
        if (auto s = str(get(n, "name"), join(path, "name"))) {
          auto why = s->empty() ? "" : checkPortName(*s);
          if (why.empty()) {
            port.name = *s;
          } else {
            error(get(n, "name"), join(path, "name"), fmt::format("port name \"{}\" {}", *s, why));
          }
        }
        Node cport = get(n, "containerPort");
        if (!present(cport)) {
          error(n, join(path, "containerPort"), "is required");
        } else if (auto v = this->port(cport, join(path, "containerPort"))) {
          port.containerPort = *v;
        }
        if (auto v = enumValue<L4Protocol>(
                get(n, "protocol"), join(path, "protocol"),
                {{"TCP", L4Protocol::Tcp}, {"UDP", L4Protocol::Udp}, {"SCTP", L4Protocol::Sctp}})) {
          port.protocol = *v;
        }
        p.ports.push_back(std::move(port));
      });
    });
  }
  Node status = get(doc, "status");
  if (!present(status) || !expectMap(status, "status")) return;
  auto addIp = [&](const Node& n, const std::string& field) {
    auto s = str(n, field);
    if (!s) return;
    auto ip = IpAddress::parse(*s);
    if (!ip) {
      error(n, field, fmt::format("must be an IP address, got \"{}\"", *s));
    } else if (std::find(p.podIPs.begin(), p.podIPs.end(), *ip) == p.podIPs.end()) {
      p.podIPs.push_back(*ip);
    }
  };
  addIp(get(status, "podIP"), "status.podIP");
  forEach(get(status, "podIPs"), "status.podIPs", [&](const Node& n, const std::string& path) {
    if (!expectMap(n, path)) return;
    addIp(get(n, "ip"), join(path, "ip"));
  });
}

// ---- AuthorizationPolicy ------------------------------------------------------------------

void Reader::authorizationPolicy(const Node& spec, AuthorizationPolicy& ap) {
  Node action = get(spec, "action");
  if (present(action)) {
    auto s = str(action, "spec.action");
    if (s && (*s == "AUDIT" || *s == "CUSTOM")) {
      // Silently dropping a policy the user relies on would fail open; refuse it instead.
      error(action, "spec.action", fmt::format("{} is not supported by tollgate", *s));
    } else if (s) {
      if (auto v = enumValue<AuthorizationPolicy::Action>(
              action, "spec.action",
              {{"ALLOW", AuthorizationPolicy::Action::Allow},
               {"DENY", AuthorizationPolicy::Action::Deny}})) {
        ap.action = *v;
      }
    }
  }
  Node sel = get(spec, "selector");
  if (expectMap(sel, "spec.selector")) {
    ap.selector = stringMap(get(sel, "matchLabels"), "spec.selector.matchLabels");
  }
  auto warnUnknown = [&](const Node& n, const std::string& field,
                         std::initializer_list<std::string_view> known) {
    if (!n.IsDefined() || !n.IsMap()) return;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string& key = it->first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        warning(lineOf(it->first), join(field, key), "not enforced by tollgate; ignored");
      }
    }
  };
  forEach(get(spec, "rules"), "spec.rules", [&](const Node& r, const std::string& path) {
    AuthorizationRule rule;
    if (present(r) && !expectMap(r, path)) return;
    warnUnknown(r, path, {"from", "to"});
    auto append = [&](std::vector<std::string>& out, const Node& n, const std::string& field) {
      auto v = strList(n, field);
      out.insert(out.end(), v.begin(), v.end());
    };
    forEach(get(r, "from"), join(path, "from"), [&](const Node& f, const std::string& fp) {
      if (!expectMap(f, fp)) return;
      Node src = get(f, "source");
      auto sp = join(fp, "source");
      if (!expectMap(src, sp)) return;
      warnUnknown(src, sp, {"principals", "notPrincipals", "namespaces", "notNamespaces"});
      append(rule.principals, get(src, "principals"), join(sp, "principals"));
      append(rule.notPrincipals, get(src, "notPrincipals"), join(sp, "notPrincipals"));
      append(rule.namespaces, get(src, "namespaces"), join(sp, "namespaces"));
      append(rule.notNamespaces, get(src, "notNamespaces"), join(sp, "notNamespaces"));
    });
    forEach(get(r, "to"), join(path, "to"), [&](const Node& t, const std::string& tp) {
      if (!expectMap(t, tp)) return;
      Node op = get(t, "operation");
      auto opPath = join(tp, "operation");
      if (!expectMap(op, opPath)) return;
      warnUnknown(op, opPath, {"hosts", "notHosts", "ports", "notPorts"});
      append(rule.hosts, get(op, "hosts"), join(opPath, "hosts"));
      append(rule.notHosts, get(op, "notHosts"), join(opPath, "notHosts"));
      for (std::string_view key : {"ports", "notPorts"}) {
        Located nodes;
        auto v = strList(get(op, key), join(opPath, key), &nodes);
        for (size_t i = 0; i < v.size(); ++i) {
          int64_t n = 0;
          if (!parseInt(v[i], n) || n < 1 || n > 65535) {
            error(nodes[i].first, nodes[i].second,
                  fmt::format("must be a port number 1-65535, got \"{}\"", v[i]));
          }
        }
        auto& out = key == "ports" ? rule.ports : rule.notPorts;
        out.insert(out.end(), v.begin(), v.end());
      }
    });
    ap.rules.push_back(std::move(rule));
  });
}

// ---- TollgateConfig -----------------------------------------------------------------------

void Reader::tollgateConfig(const Node& spec, TollgateConfig& tc) {
  Node otp = get(spec, "outboundTrafficPolicy");
  if (expectMap(otp, "spec.outboundTrafficPolicy")) {
    if (auto v = enumValue<OutboundMode>(get(otp, "mode"), "spec.outboundTrafficPolicy.mode",
                                         {{"REGISTRY_ONLY", OutboundMode::RegistryOnly},
                                          {"ALLOW_ANY", OutboundMode::AllowAny}})) {
      tc.outboundMode = *v;
    }
  }
  Node td = get(spec, "trustDomain");
  if (auto s = str(td, "spec.trustDomain")) {
    auto why = checkHost(*s, false);
    if (!why.empty() || s->starts_with("*")) {
      error(td, "spec.trustDomain", fmt::format("must be a DNS-like name, got \"{}\"", *s));
    } else {
      tc.trustDomain = *s;
    }
  }
  Node cc = get(spec, "clusterCIDRs");
  if (expectMap(cc, "spec.clusterCIDRs")) {
    forEach(get(cc, "pods"), "spec.clusterCIDRs.pods", [&](const Node& n, const std::string& p) {
      if (auto c = cidr(n, p)) tc.podCidrs.push_back(*c);
    });
    forEach(get(cc, "services"), "spec.clusterCIDRs.services",
            [&](const Node& n, const std::string& p) {
              if (auto c = cidr(n, p)) tc.serviceCidrs.push_back(*c);
            });
  }
  std::string defaultGateway;
  forEach(get(spec, "gateways"), "spec.gateways", [&](const Node& n, const std::string& path) {
    if (!expectMap(n, path)) return;
    GatewayConfig gw;
    if (auto s = requiredStr(n, "name", path)) gw.name = *s;
    if (auto s = requiredStr(n, "address", path)) {
      if (!IpAddress::parse(*s) && !checkHost(*s, false).empty()) {
        error(get(n, "address"), join(path, "address"),
              fmt::format("must be an IP address or host name, got \"{}\"", *s));
      }
      gw.address = *s;
    }
    if (auto v = port(get(n, "port"), join(path, "port"))) gw.port = static_cast<uint16_t>(*v);
    if (auto b = boolean(get(n, "default"), join(path, "default"))) gw.isDefault = *b;
    if (gw.isDefault) {
      if (!defaultGateway.empty()) {
        error(
            get(n, "default"), join(path, "default"),
            fmt::format("only one gateway may be the default; \"{}\" already is", defaultGateway));
      } else {
        defaultGateway = gw.name.empty() ? path : gw.name;
      }
    }
    for (const auto& other : tc.gateways) {
      if (!gw.name.empty() && other.name == gw.name) {
        error(get(n, "name"), join(path, "name"),
              fmt::format("duplicate gateway name \"{}\"", gw.name));
      }
    }
    tc.gateways.push_back(std::move(gw));
  });
  Node dns = get(spec, "dns");
  if (expectMap(dns, "spec.dns")) {
    tc.dnsMode =
        enumValue<DnsMode>(get(dns, "mode"), "spec.dns.mode",
                           {{"strict", DnsMode::Strict}, {"passthrough", DnsMode::Passthrough}});
    Located ups;
    tc.dnsUpstreams = strList(get(dns, "upstreams"), "spec.dns.upstreams", &ups);
    for (size_t i = 0; i < tc.dnsUpstreams.size(); ++i) {
      if (!validHostPort(tc.dnsUpstreams[i])) {
        error(ups[i].first, ups[i].second,
              fmt::format("must be ip, ip:port or [ipv6]:port, got \"{}\"", tc.dnsUpstreams[i]));
      }
    }
    auto rate = integer(get(dns, "queriesPerSecond"), "spec.dns.queriesPerSecond", 0, 1000000);
    if (rate) {
      tc.dnsQueriesPerSecond = static_cast<uint32_t>(*rate);
      tc.dnsQueryBurst = static_cast<uint32_t>(std::max<int64_t>(1, 2 * *rate));
    }
    if (auto burst = integer(get(dns, "queryBurst"), "spec.dns.queryBurst", 1, 10000000)) {
      tc.dnsQueryBurst = static_cast<uint32_t>(*burst);
    }
    Located suffixes;
    if (present(get(dns, "clusterDomainSuffixes"))) {
      tc.clusterDomainSuffixes =
          strList(get(dns, "clusterDomainSuffixes"), "spec.dns.clusterDomainSuffixes", &suffixes);
      for (size_t i = 0; i < tc.clusterDomainSuffixes.size(); ++i) {
        auto why = checkHost(tc.clusterDomainSuffixes[i], false);
        if (!why.empty() || tc.clusterDomainSuffixes[i].starts_with("*")) {
          error(suffixes[i].first, suffixes[i].second,
                fmt::format("must be a domain name, got \"{}\"", tc.clusterDomainSuffixes[i]));
        }
      }
    }
  }
  Node mark = get(spec, "packetMark");
  if (present(mark)) {
    std::string_view text = mark.IsScalar() ? std::string_view(mark.Scalar()) : "";
    uint64_t v = 0;
    bool ok = false;
    if (text.starts_with("0x") || text.starts_with("0X")) {
      auto hex = text.substr(2);
      auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), v, 16);
      ok = !hex.empty() && ec == std::errc() && ptr == hex.data() + hex.size();
    } else {
      int64_t d = 0;
      ok = parseInt(text, d) && d >= 0;
      v = ok ? static_cast<uint64_t>(d) : 0;
    }
    // Mark 0 is "no mark": rules that skip marked packets would then skip everything.
    if (!ok || v == 0 || v > UINT32_MAX) {
      error(mark, "spec.packetMark",
            fmt::format("must be an integer 1-0xffffffff (decimal or 0x hex), got \"{}\"",
                        mark.IsScalar() ? mark.Scalar() : std::string(typeName(mark))));
    } else {
      tc.packetMark = static_cast<uint32_t>(v);
    }
  }
  Node cni = get(spec, "cni");
  if (expectMap(cni, "spec.cni")) {
    if (auto v = enumValue<CniFailMode>(
            get(cni, "failMode"), "spec.cni.failMode",
            {{"closed", CniFailMode::Closed}, {"open", CniFailMode::Open}})) {
      tc.cniFailMode = *v;
    }
  }
  if (auto v = enumValue<RedirectMode>(
          get(spec, "redirectMode"), "spec.redirectMode",
          {{"nftables", RedirectMode::Nftables}, {"ebpf", RedirectMode::Ebpf}})) {
    tc.redirectMode = *v;
  }
  tc.excludedNamespaces = strList(get(spec, "excludedNamespaces"), "spec.excludedNamespaces");
  // What a reload does to open connections it no longer allows; a typo must not silently keep them.
  if (auto v = enumValue<Revocation>(get(spec, "revocation"), "spec.revocation",
                                     {{"cut", Revocation::Cut}, {"keep", Revocation::Keep}})) {
    tc.revocation = *v;
  }
}

bool hasConfigExtension(const std::filesystem::path& p) {
  auto ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

std::expected<LoadResult, std::vector<Diagnostic>> finishLoad(Reader& reader) {
  reader.finish();
  if (!reader.errors.empty()) return std::unexpected(std::move(reader.errors));
  return LoadResult{std::move(reader.config), std::move(reader.warnings)};
}

bool readFile(const std::string& path, std::string& out, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = fmt::format("cannot open: {}", std::strerror(errno));
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    why = fmt::format("cannot read: {}", std::strerror(errno));
    return false;
  }
  out = ss.str();
  return true;
}

}  // namespace

std::expected<LoadResult, std::vector<Diagnostic>> ConfigLoader::loadString(
    std::string_view yaml, const std::string& file) {
  Reader reader;
  try {
    reader.loadText(yaml, file);
  } catch (const std::exception& e) {
    reader.fileError(file, std::string("cannot load: ") + e.what());
  }
  return finishLoad(reader);
}

std::expected<LoadResult, std::vector<Diagnostic>> ConfigLoader::loadPath(const std::string& path) {
  namespace fs = std::filesystem;
  Reader reader;
  try {
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (ec) {
      reader.fileError(path, "cannot access: " + ec.message());
      return finishLoad(reader);
    }
    std::vector<std::string> files;
    if (fs::is_directory(status)) {
      // Directory symlinks are not followed: a link cycle would never end.
      fs::recursive_directory_iterator it(path, ec);
      if (ec) {
        reader.fileError(path, "cannot read directory: " + ec.message());
        return finishLoad(reader);
      }
      for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        const auto& entry = *it;
        // Hidden entries include the "..data" and "..<timestamp>" directories a ConfigMap
        // volume keeps beside the visible links: reading them would load every file twice.
        if (entry.path().filename().string().starts_with(".")) {
          if (entry.is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (entry.is_regular_file(ec) && hasConfigExtension(entry.path())) {
          files.push_back(entry.path().string());
        }
      }
      if (ec) {
        reader.fileError(path, "cannot read directory: " + ec.message());
        return finishLoad(reader);
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(path);
    }
    for (const auto& file : files) {
      std::string text, why;
      if (!readFile(file, text, why)) {
        reader.fileError(file, why);
        continue;
      }
      reader.loadText(text, file);
    }
  } catch (const std::exception& e) {
    reader.fileError(path, std::string("cannot load: ") + e.what());
  }
  return finishLoad(reader);
}

}  // namespace tollgate::policy

#include "kube/client_config.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace tollgate::kube {
namespace {

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return failErrno(fmt::format("cannot open {}", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return failErrno(fmt::format("cannot read {}", path));
  return ss.str();
}

Result<std::string> base64Decode(const std::string& in, const std::string& what) {
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') clean += c;
  }
  if (clean.size() % 4 != 0) return fail(fmt::format("{}: not base64 (length {})", what, clean.size()));
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return fail(fmt::format("{}: not base64", what));
  size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// A named entry of kubeconfig's clusters/users/contexts lists.
Result<YAML::Node> named(const YAML::Node& root, const char* list, const std::string& name,
                         const char* inner, const std::string& where) {
  YAML::Node l = root[list];
  if (l && !l.IsSequence()) return fail(fmt::format("{}: {}: must be a list", where, list));
  if (l) {
    for (const auto& e : l) {
      if (e.IsMap() && e["name"] && e["name"].IsScalar() && e["name"].Scalar() == name) {
        YAML::Node v = e[inner];
        if (!v || !v.IsMap()) {
          return fail(fmt::format("{}: {} \"{}\": no {} map", where, list, name, inner));
        }
        return v;
      }
    }
  }
  return fail(fmt::format("{}: {}: no entry named \"{}\"", where, list, name));
}

std::string scalar(const YAML::Node& n, const char* key) {
  YAML::Node v = n[key];
  return v && v.IsScalar() ? v.Scalar() : std::string();
}

// `key-data` (base64) or `key` (a file, relative to the kubeconfig's directory).
Result<std::string> dataOrFile(const YAML::Node& n, const std::string& key,
                               const std::filesystem::path& base, const std::string& where) {
  std::string data = scalar(n, (key + "-data").c_str());
  if (!data.empty()) return base64Decode(data, fmt::format("{}: {}-data", where, key));
  std::string file = scalar(n, key.c_str());
  if (file.empty()) return std::string();
  std::filesystem::path p(file);
  if (p.is_relative()) p = base / p;
  auto r = readFile(p.string());
  if (!r) return std::unexpected(r.error().wrap(fmt::format("{}: {}", where, key)));
  return r;
}

}  // namespace

Status parseServerUrl(const std::string& url, ClientConfig& out) {
  std::string_view s = url;
  if (!s.starts_with("https://")) {
    return fail(fmt::format("server \"{}\": must be an https:// URL", url));
  }
  s.remove_prefix(8);
  if (auto slash = s.find('/'); slash != s.npos) {
    if (s.substr(slash) != "/") {
      return fail(fmt::format("server \"{}\": a path after the address is not supported", url));
    }
    s = s.substr(0, slash);
  }
  std::string_view host = s, port;
  if (s.starts_with("[")) {
    auto close = s.find(']');
    if (close == s.npos) return fail(fmt::format("server \"{}\": unclosed [", url));
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(":")) return fail(fmt::format("server \"{}\": junk after ]", url));
      port = rest.substr(1);
    }
  } else if (auto colon = s.rfind(':'); colon != s.npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) return fail(fmt::format("server \"{}\": no host", url));
  out.host = std::string(host);
  out.port = 443;
  if (!port.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
      return fail(fmt::format("server \"{}\": port must be 1-65535", url));
    }
    out.port = static_cast<uint16_t>(v);
  }
  return {};
}

Result<ClientConfig> parseKubeconfig(const std::string& text, const std::string& path,
                                     const std::string& wantContext) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return fail(fmt::format("kubeconfig {}: not YAML: {}", path, e.what()));
  }
  if (!root.IsMap()) return fail(fmt::format("kubeconfig {}: not a map", path));
  std::string where = fmt::format("kubeconfig {}", path);
  std::string ctxName = wantContext.empty() ? scalar(root, "current-context") : wantContext;
  if (ctxName.empty()) return fail(fmt::format("{}: no current-context and none asked for", where));
  auto ctx = named(root, "contexts", ctxName, "context", where);
  if (!ctx) return std::unexpected(ctx.error());
  std::string clusterName = scalar(*ctx, "cluster"), userName = scalar(*ctx, "user");
  if (clusterName.empty()) return fail(fmt::format("{}: context \"{}\": no cluster", where, ctxName));
  auto cluster = named(root, "clusters", clusterName, "cluster", where);
  if (!cluster) return std::unexpected(cluster.error());

  ClientConfig cfg;
  cfg.source = fmt::format("kubeconfig {} (context {})", path, ctxName);
  cfg.ns = scalar(*ctx, "namespace");
  std::string clusterWhere = fmt::format("{}: cluster \"{}\"", where, clusterName);
  std::string server = scalar(*cluster, "server");
  if (server.empty()) return fail(fmt::format("{}: no server", clusterWhere));
  if (auto s = parseServerUrl(server, cfg); !s) return std::unexpected(s.error().wrap(clusterWhere));
  if (scalar(*cluster, "insecure-skip-tls-verify") == "true") {
    return fail(fmt::format("{}: insecure-skip-tls-verify is not supported: give the CA", clusterWhere));
  }
  auto base = std::filesystem::absolute(path).parent_path();
  auto ca = dataOrFile(*cluster, "certificate-authority", base, clusterWhere);
  if (!ca) return std::unexpected(ca.error());
  cfg.caPem = *ca;

  if (!userName.empty()) {
    auto user = named(root, "users", userName, "user", where);
    if (!user) return std::unexpected(user.error());
    std::string userWhere = fmt::format("{}: user \"{}\"", where, userName);
    auto cert = dataOrFile(*user, "client-certificate", base, userWhere);
    if (!cert) return std::unexpected(cert.error());
    auto key = dataOrFile(*user, "client-key", base, userWhere);
    if (!key) return std::unexpected(key.error());
    if (cert->empty() != key->empty()) {
      return fail(fmt::format("{}: client-certificate and client-key go together", userWhere));
    }
    cfg.clientCertPem = *cert;
    cfg.clientKeyPem = *key;
    cfg.token = scalar(*user, "token");
    std::string tf = scalar(*user, "tokenFile");
    if (!tf.empty()) {
      std::filesystem::path p(tf);
      cfg.tokenFile = (p.is_relative() ? base / p : p).string();
    }
    if ((*user)["exec"] || (*user)["auth-provider"]) {
      return fail(fmt::format("{}: exec and auth-provider credentials are not supported", userWhere));
    }
  }
  if (cfg.clientCertPem.empty() && cfg.token.empty() && cfg.tokenFile.empty()) {
    return fail(fmt::format("{}: context \"{}\" has no credentials (client certificate or token)",
                            where, ctxName));
  }
  return cfg;
}

Result<ClientConfig> loadKubeconfig(const std::string& path, const std::string& context) {
  auto text = readFile(path);
  if (!text) return std::unexpected(text.error().wrap("kubeconfig"));
  return parseKubeconfig(*text, path, context);
}

Result<ClientConfig> inClusterConfig(const std::map<std::string, std::string>& env,
                                     const std::string& dir) {
  auto get = [&](const char* k) {
    auto it = env.find(k);
    return it == env.end() ? std::string() : it->second;
  };
  std::string host = get("KUBERNETES_SERVICE_HOST"), port = get("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return fail("in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
                "(not running in a pod?)");
  }
  ClientConfig cfg;
  cfg.source = "in-cluster service account " + dir;
  bool v6 = host.find(':') != host.npos;
  if (auto s = parseServerUrl(fmt::format("https://{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", port), cfg);
      !s) {
    return std::unexpected(s.error().wrap("in-cluster config"));
  }
  auto ca = readFile(dir + "/ca.crt");
  if (!ca) return std::unexpected(ca.error().wrap("in-cluster config"));
  cfg.caPem = *ca;
  cfg.tokenFile = dir + "/token";
  auto token = readFile(cfg.tokenFile);
  if (!token) return std::unexpected(token.error().wrap("in-cluster config"));
  if (auto ns = readFile(dir + "/namespace")) cfg.ns = *ns;
  while (!cfg.ns.empty() && (cfg.ns.back() == '\n' || cfg.ns.back() == ' ')) cfg.ns.pop_back();
  return cfg;
}

Result<ClientConfig> inClusterConfigFromEnvironment(const std::string& dir) {
  std::map<std::string, std::string> env;
  for (const char* k : {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}) {
    if (const char* v = std::getenv(k)) env[k] = v;
  }
  return inClusterConfig(env, dir);
}

}  // namespace tollgate::kube

#include "proxy/tls_client_hello.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/sniff.h"

namespace tollgate::proxy {
namespace {

using Bytes = std::vector<uint8_t>;

struct HelloOptions {
  std::optional<std::string> sni;
  std::vector<std::string> alpn;
  int maxVersion = 0;  // 0: OpenSSL's default (TLS 1.3)
};

// A real ClientHello: an OpenSSL client handshaking into a memory BIO, which holds what it would
// have sent on the wire.
Bytes opensslClientHello(const HelloOptions& opts) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  if (!ctx) return {};
  if (opts.maxVersion != 0) SSL_CTX_set_max_proto_version(ctx.get(), opts.maxVersion);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // ssl owns both now
  SSL_set_connect_state(ssl.get());
  if (opts.sni) SSL_set_tlsext_host_name(ssl.get(), opts.sni->c_str());
  if (!opts.alpn.empty()) {
    Bytes wire;
    for (const auto& p : opts.alpn) {
      wire.push_back(static_cast<uint8_t>(p.size()));
      wire.insert(wire.end(), p.begin(), p.end());
    }
    SSL_set_alpn_protos(ssl.get(), wire.data(), static_cast<unsigned>(wire.size()));
  }
  const int rc = SSL_do_handshake(ssl.get());
  if (rc != -1 || SSL_get_error(ssl.get(), rc) != SSL_ERROR_WANT_READ) return {};
  Bytes out(static_cast<size_t>(BIO_ctrl_pending(wbio)));
  const int n = BIO_read(wbio, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

Bytes u16(size_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }

void append(Bytes& to, const Bytes& b) { to.insert(to.end(), b.begin(), b.end()); }

Bytes vec16(const Bytes& b) {
  Bytes out = u16(b.size());
  append(out, b);
  return out;
}

Bytes extension(uint16_t type, const Bytes& data) {
  Bytes out = u16(type);
  append(out, vec16(data));
  return out;
}

Bytes sniExtension(const std::vector<std::pair<uint8_t, std::string>>& names) {
  Bytes list;
  for (const auto& [type, name] : names) {
    list.push_back(type);
    append(list, vec16(Bytes(name.begin(), name.end())));
  }
  return extension(0, vec16(list));
}

Bytes alpnExtension(const std::vector<std::string>& protos) {
  Bytes list;
  for (const auto& p : protos) {
    list.push_back(static_cast<uint8_t>(p.size()));
    list.insert(list.end(), p.begin(), p.end());
  }
  return extension(16, vec16(list));
}

// A ClientHello body with the given raw extension bytes; nullopt means no extensions block.
Bytes helloBody(const std::optional<Bytes>& extensions, size_t sessionIdLen = 32) {
  Bytes body = {0x03, 0x03};
  body.insert(body.end(), 32, 0xab);  // random
  body.push_back(static_cast<uint8_t>(sessionIdLen));
  body.insert(body.end(), sessionIdLen, 0x11);
  append(body, vec16({0x13, 0x01, 0xc0, 0x2f}));  // two cipher suites
  body.push_back(1);                              // compression methods: null
  body.push_back(0);
  if (extensions) append(body, vec16(*extensions));
  return body;
}

Bytes handshake(const Bytes& body, uint8_t type = 0x01) {
  Bytes out = {type, static_cast<uint8_t>(body.size() >> 16),
               static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
  append(out, body);
  return out;
}

Bytes record(const Bytes& fragment, uint8_t type = 0x16) {
  Bytes out = {type, 0x03, 0x01};
  append(out, u16(fragment.size()));
  append(out, fragment);
  return out;
}

// The handshake message of a single-record hello, re-framed into records of the given fragment
// sizes (the last record takes the rest).
Bytes reframe(const Bytes& singleRecord, const std::vector<size_t>& sizes) {
  const Bytes message(singleRecord.begin() + 5, singleRecord.end());
  Bytes out;
  size_t off = 0;
  for (size_t size : sizes) {
    append(out, record(Bytes(message.begin() + off, message.begin() + off + size)));
    off += size;
  }
  append(out, record(Bytes(message.begin() + off, message.end())));
  return out;
}

TlsSniffResult sniff(const Bytes& b, size_t maxBytes = kMaxClientHelloBytes) {
  return sniffClientHello(b, maxBytes);
}

// Every strict prefix is NeedMore and the whole buffer is Done: the incremental contract.
void expectNeedMoreUntilComplete(const Bytes& hello) {
  for (size_t n = 0; n < hello.size(); ++n) {
    const auto r = sniffClientHello(std::span(hello).first(n));
    ASSERT_EQ(r.status, SniffStatus::NeedMore) << "prefix " << n << ": " << r.error;
  }
  EXPECT_EQ(sniff(hello).status, SniffStatus::Done);
}

TEST(TlsClientHello, ParsesOpenSslHelloWithSniAndAlpn) {
  const Bytes hello = opensslClientHello({"api.example.com", {"h2", "http/1.1"}});
  ASSERT_GT(hello.size(), 100u);
  const auto r = sniff(hello);
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "api.example.com");
  EXPECT_EQ(r.info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(r.info.legacyVersion, 0x0303);
  EXPECT_TRUE(r.info.hasSupportedVersionsTls13);
  EXPECT_EQ(classify(hello), Protocol::Tls);
}

TEST(TlsClientHello, SniIsReturnedAsSent) {
  const auto r = sniff(opensslClientHello({"MiXed.Example.COM.", {}}));
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "MiXed.Example.COM.");
}

TEST(TlsClientHello, AbsentSniIsDoneWithEmptyName) {
  const auto r = sniff(opensslClientHello({std::nullopt, {}}));
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "");
  EXPECT_TRUE(r.info.alpn.empty());
  EXPECT_TRUE(r.info.hasSupportedVersionsTls13);
}

TEST(TlsClientHello, Tls12OnlyClientDoesNotOfferTls13) {
  const auto r = sniff(opensslClientHello({"legacy.example.org", {"http/1.1"}, TLS1_2_VERSION}));
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "legacy.example.org");
  EXPECT_EQ(r.info.alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_FALSE(r.info.hasSupportedVersionsTls13);
}

TEST(TlsClientHello, ByteByByteIsNeedMoreUntilComplete) {
  expectNeedMoreUntilComplete(opensslClientHello({"bytes.example.com", {"h2"}}));
}

TEST(TlsClientHello, BytesAfterTheHelloAreIgnored) {
  Bytes hello = opensslClientHello({"early.example.com", {}});
  append(hello, {0x14, 0x03, 0x03, 0x00, 0x01, 0x01});  // compat ChangeCipherSpec
  append(hello, {0x17, 0x03, 0x03, 0x00, 0x02, 0xde});  // start of early data
  const auto r = sniff(hello);
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "early.example.com");
}

TEST(TlsClientHello, ReassemblesHelloSplitAcrossRecords) {
  const Bytes single = opensslClientHello({"split.example.com", {"h2", "http/1.1"}});
  ASSERT_GT(single.size(), 5u + 50 + 60 + 70);
  // Header split inside the 4-byte handshake header, tiny records, then a split mid-extensions.
  for (const auto& sizes : std::vector<std::vector<size_t>>{
           {2}, {1, 1, 1}, {4, 5}, {3, 7}, {single.size() - 5 - 40}, {50, 60, 70}}) {
    const Bytes split = reframe(single, sizes);
    ASSERT_GT(split.size(), single.size());
    const auto r = sniff(split);
    ASSERT_EQ(r.status, SniffStatus::Done) << r.error << " sizes[0]=" << sizes[0];
    EXPECT_EQ(r.info.sni, "split.example.com");
    EXPECT_EQ(r.info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  }
}

TEST(TlsClientHello, MultiRecordByteByByteIsNeedMoreUntilComplete) {
  const Bytes single = opensslClientHello({"frag.example.com", {}});
  expectNeedMoreUntilComplete(reframe(single, {3, 7}));
}

TEST(TlsClientHello, OtherRecordTypeInsideHelloIsInvalid) {
  Bytes split = reframe(opensslClientHello({"a.example", {}}), {10});
  split[5 + 10] = 0x17;  // the second record claims to be application data
  EXPECT_EQ(sniff(split).status, SniffStatus::Invalid);
  // Even before the rest of that record arrives.
  EXPECT_EQ(sniffClientHello(std::span(split).first(5 + 10 + 5)).status, SniffStatus::Invalid);
}

TEST(TlsClientHello, FirstBytesThatAreNotTlsAreNotThisProtocol) {
  const std::string get = "GET / HTTP/1.1\r\n";
  EXPECT_EQ(
      sniffClientHello(std::span(reinterpret_cast<const uint8_t*>(get.data()), get.size())).status,
      SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff({0x17, 0x03, 0x03}).status, SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff({0x16, 0x02}).status, SniffStatus::NotThisProtocol);
  EXPECT_EQ(sniff({0x80, 0x2e, 0x01}).status, SniffStatus::NotThisProtocol);  // SSLv2 hello
  EXPECT_EQ(sniff({}).status, SniffStatus::NeedMore);
  EXPECT_EQ(sniff({0x16}).status, SniffStatus::NeedMore);
  EXPECT_EQ(sniff({0x16, 0x03, 0x01}).status, SniffStatus::NeedMore);
}

TEST(TlsClientHello, NonClientHelloHandshakeIsInvalid) {
  const Bytes serverHello = record(handshake(helloBody(Bytes{}), 0x02));
  EXPECT_EQ(sniff(serverHello).status, SniffStatus::Invalid);
  // Known from the first body byte, without waiting for the message.
  EXPECT_EQ(sniffClientHello(std::span(serverHello).first(6)).status, SniffStatus::Invalid);
}

TEST(TlsClientHello, BadRecordLengthsAreInvalid) {
  EXPECT_EQ(sniff({0x16, 0x03, 0x01, 0x00, 0x00}).status, SniffStatus::Invalid);        // empty
  EXPECT_EQ(sniff({0x16, 0x03, 0x01, 0x40, 0x01, 0x01}).status, SniffStatus::Invalid);  // >2^14
  Bytes split = reframe(opensslClientHello({"a.example", {}}), {10});
  split[5 + 10 + 1] = 0x09;  // second record's version major
  EXPECT_EQ(sniff(split).status, SniffStatus::Invalid);
}

TEST(TlsClientHello, HandCraftedHelloWithSeveralExtensions) {
  Bytes exts;
  append(exts, extension(0x0a0a, {}));                       // GREASE
  append(exts, extension(43, {4, 0x7a, 0x7a, 0x03, 0x04}));  // supported_versions
  append(exts, sniExtension({{0, "hand.example.com"}}));
  append(exts, extension(21, Bytes(40, 0)));  // padding
  append(exts, alpnExtension({"h2", "http/1.1", "x"}));
  const auto r = sniff(record(handshake(helloBody(exts))));
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "hand.example.com");
  EXPECT_EQ(r.info.alpn, (std::vector<std::string>{"h2", "http/1.1", "x"}));
  EXPECT_TRUE(r.info.hasSupportedVersionsTls13);
}

TEST(TlsClientHello, HelloWithoutExtensionsIsDone) {
  const auto r = sniff(record(handshake(helloBody(std::nullopt))));
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "");
  EXPECT_FALSE(r.info.hasSupportedVersionsTls13);
}

TEST(TlsClientHello, OnlyTheFirstHostNameIsUsed) {
  // An unknown name type before it is skipped; a second host_name is ignored.
  const auto r = sniff(record(handshake(
      helloBody(sniExtension({{7, "opaque"}, {0, "first.example"}, {0, "second.example"}})))));
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "first.example");
}

TEST(TlsClientHello, MalformedExtensionsAreInvalid) {
  const std::vector<std::pair<std::string, Bytes>> cases = {
      {"duplicate server_name",
       [] {
         Bytes e = sniExtension({{0, "a.example"}});
         append(e, sniExtension({{0, "b.example"}}));
         return e;
       }()},
      {"non-ASCII host_name", sniExtension({{0, "caf\xc3\xa9.example"}})},
      {"NUL in host_name", sniExtension({{0, std::string("a.example\0.evil", 15)}})},
      {"space in host_name", sniExtension({{0, "a example"}})},
      {"empty host_name", sniExtension({{0, ""}})},
      {"empty server_name list", extension(0, vec16({}))},
      {"empty server_name extension", extension(0, {})},
      {"server_name list longer than extension", extension(0, {0x00, 0x10, 0x00, 0x00, 0x01})},
      {"trailing byte after server_name list",
       [] {
         Bytes data = vec16({0x00, 0x00, 0x01, 'a'});
         data.push_back(0);
         return extension(0, data);
       }()},
      {"empty ALPN name", alpnExtension({"h2", ""})},
      {"ALPN name overruns list", extension(16, vec16({0x05, 'h', '2'}))},
      {"odd supported_versions", extension(43, {3, 0x03, 0x04, 0x03})},
      {"extension overruns block", {0x00, 0x2b, 0x00, 0x09, 0x02, 0x03, 0x04}},
      {"truncated extension header", {0x00, 0x2b, 0x00}},
  };
  for (const auto& [what, exts] : cases) {
    const auto r = sniff(record(handshake(helloBody(exts))));
    EXPECT_EQ(r.status, SniffStatus::Invalid) << what;
    EXPECT_FALSE(r.error.empty()) << what;
  }
}

TEST(TlsClientHello, MalformedBodyIsInvalid) {
  EXPECT_EQ(sniff(record(handshake(helloBody(Bytes{}, 33)))).status, SniffStatus::Invalid);
  Bytes body = helloBody(sniExtension({{0, "a.example"}}));
  body.push_back(0);  // a byte after the extensions block
  EXPECT_EQ(sniff(record(handshake(body))).status, SniffStatus::Invalid);
  Bytes shortBody = helloBody(std::nullopt);
  shortBody.resize(20);  // ends inside random
  EXPECT_EQ(sniff(record(handshake(shortBody))).status, SniffStatus::Invalid);
  // A handshake length smaller than the record: the message ends early, inside the body.
  const Bytes fullBody = helloBody(sniExtension({{0, "a.example"}}));
  Bytes lying = record(handshake(fullBody));
  const size_t shorter = fullBody.size() - 10;
  lying[5 + 2] = static_cast<uint8_t>(shorter >> 8);
  lying[5 + 3] = static_cast<uint8_t>(shorter);
  EXPECT_EQ(sniff(lying).status, SniffStatus::Invalid);
}

TEST(TlsClientHello, EveryTruncatedLengthFieldFailsSafely) {
  // Corrupting each byte of a real hello must give a definite answer and never a different SNI
  // than the bytes hold (ASan in the fuzz build covers memory safety; this covers the contract).
  const Bytes hello = opensslClientHello({"mutate.example.com", {"h2"}});
  size_t invalid = 0;
  for (size_t i = 0; i < hello.size(); ++i) {
    Bytes mutated = hello;
    mutated[i] ^= 0xff;
    const auto r = sniff(mutated);
    if (r.status == SniffStatus::Invalid) ++invalid;
    if (r.status == SniffStatus::Done && !r.info.sni.empty()) {
      for (char c : r.info.sni) EXPECT_TRUE(c >= 0x21 && c <= 0x7e);
    }
  }
  EXPECT_GT(invalid, 10u);
}

TEST(TlsClientHello, SizeCapMakesLargeHelloInvalid) {
  const Bytes hello = opensslClientHello({"cap.example.com", {}});
  EXPECT_EQ(sniff(hello, hello.size()).status, SniffStatus::Done);
  const auto r = sniff(hello, hello.size() - 1);
  EXPECT_EQ(r.status, SniffStatus::Invalid);
  EXPECT_NE(r.error.find("too large"), std::string::npos) << r.error;
  // A handshake header announcing more than the cap is refused at once, before the body arrives.
  const Bytes huge = {0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x80, 0x00};
  const auto early = sniff(huge);
  EXPECT_EQ(early.status, SniffStatus::Invalid);
  EXPECT_NE(early.error.find("too large"), std::string::npos) << early.error;
  // Many small records that never finish the message: refused once the cap is reached.
  // (a 3588-byte message fits the cap, but not at 6 raw bytes per 1-byte record).
  Bytes dribble = record({0x01, 0x00, 0x0e, 0x00});
  while (dribble.size() < 4096) append(dribble, record({0x00}));
  EXPECT_EQ(sniff(dribble, 4096).status, SniffStatus::Invalid);
  EXPECT_EQ(sniffClientHello(std::span(dribble).first(4000), 4096).status, SniffStatus::NeedMore);
}

TEST(Classify, FirstBytes) {
  auto bytes = [](std::string_view s) {
    return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(classify(bytes("")), Protocol::NeedMore);
  EXPECT_EQ(classify(bytes("\x16")), Protocol::NeedMore);
  EXPECT_EQ(classify(bytes("\x16\x03")), Protocol::Tls);
  EXPECT_EQ(classify(bytes("\x16\x01")), Protocol::Opaque);
  EXPECT_EQ(classify(bytes("G")), Protocol::NeedMore);
  EXPECT_EQ(classify(bytes("GET")), Protocol::NeedMore);
  EXPECT_EQ(classify(bytes("GET ")), Protocol::Http);
  EXPECT_EQ(classify(bytes("PROPFIND /x")), Protocol::Http);
  EXPECT_EQ(classify(bytes("CONNECT a:443")), Protocol::Http);
  EXPECT_EQ(classify(bytes("GETX")), Protocol::Opaque);
  EXPECT_EQ(classify(bytes("get ")), Protocol::Opaque);  // methods are case-sensitive
  EXPECT_EQ(classify(bytes("SSH-2.0-OpenSSH_9.2")), Protocol::Opaque);
  EXPECT_EQ(classify(bytes("X")), Protocol::Opaque);  // decided from the first byte
  EXPECT_EQ(classify(bytes("\r\n")), Protocol::Opaque);
  EXPECT_EQ(classify(bytes("PRI * HTTP/2.0")), Protocol::Opaque);  // h2c prior knowledge
}

}  // namespace
}  // namespace tollgate::proxy

#include "proxy/quic_initial.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/sniff.h"
#include "tests/common/quic_initial_sender.h"

namespace tollgate::proxy {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes fromHex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// RFC 9001 Appendix A.2: the client's first Initial, 1200 bytes, DCID 8394c8f03e515708.
const Bytes& rfcClientInitial() {
  static const Bytes packet = fromHex(
      "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
      "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
      "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
      "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
      "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
      "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
      "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
      "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
      "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
      "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
      "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
      "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
      "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
      "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
      "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
      "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
      "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
      "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
      "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
      "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
      "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
      "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
      "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
      "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
      "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
      "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
      "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
      "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
      "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
      "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
      "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
      "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
      "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
      "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
      "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
      "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
      "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
      "e221af44860018ab0856972e194cd934");
  return packet;
}

const Bytes kRfcDcid = fromHex("8394c8f03e515708");

TEST(QuicInitial, DerivesRfc9001Keys) {
  auto client = deriveQuicInitialKeys(kRfcDcid);
  ASSERT_TRUE(client) << client.error().str();
  EXPECT_EQ(Bytes(client->key.begin(), client->key.end()),
            fromHex("1f369613dd76d5467730efcbe3b1a22d"));
  EXPECT_EQ(Bytes(client->iv.begin(), client->iv.end()), fromHex("fa044b2f42a3fd3b46fb255c"));
  EXPECT_EQ(Bytes(client->hp.begin(), client->hp.end()),
            fromHex("9f50449e04a0e810283a1e9933adedd2"));
  auto server = deriveQuicInitialKeys(kRfcDcid, true);
  ASSERT_TRUE(server);
  EXPECT_EQ(Bytes(server->key.begin(), server->key.end()),
            fromHex("cf3a5331653c364c88f0f379b6067e37"));
  EXPECT_EQ(Bytes(server->hp.begin(), server->hp.end()),
            fromHex("c206b8d9b9f0f37644430b490eeaa314"));
}

TEST(QuicInitial, DecryptsRfc9001ClientInitial) {
  ASSERT_EQ(rfcClientInitial().size(), 1200u);
  const auto info = parseQuicInitial(rfcClientInitial());
  EXPECT_TRUE(info.isQuic);
  EXPECT_EQ(info.version, kQuicVersion1);
  EXPECT_EQ(info.dcid, kRfcDcid);
  EXPECT_TRUE(info.scid.empty());
  ASSERT_EQ(info.status, SniffStatus::Done) << info.error;
  EXPECT_EQ(info.sni, "example.com");
  EXPECT_EQ(info.alpn, (std::vector<std::string>{"alpn"}));
}

TEST(QuicInitial, TamperedPacketFailsAuthentication) {
  for (size_t at : {size_t{30}, size_t{600}, size_t{1199}}) {
    Bytes p = rfcClientInitial();
    p[at] ^= 0x01;
    const auto info = parseQuicInitial(p);
    EXPECT_TRUE(info.isQuic);
    EXPECT_EQ(info.status, SniffStatus::Invalid) << at;
    EXPECT_TRUE(info.sni.empty());
  }
  Bytes wrongDcid = rfcClientInitial();
  wrongDcid[6] ^= 0x01;  // other keys
  EXPECT_EQ(parseQuicInitial(wrongDcid).status, SniffStatus::Invalid);
}

TEST(QuicInitial, TruncatedPacketsNeverReadPastTheEnd) {
  const Bytes& p = rfcClientInitial();
  for (size_t n = 0; n < p.size(); n += 7) {
    const auto info = parseQuicInitial(std::span(p).first(n));
    EXPECT_NE(info.status, SniffStatus::Done) << n;
    if (n >= 7 + 8 + 1) {
      EXPECT_TRUE(info.isQuic) << n;
    }
  }
}

TEST(QuicInitial, VersionNegotiationAndOtherVersions) {
  // Version negotiation (RFC 9000 §17.2.1): version 0, then the supported versions.
  const Bytes vn = fromHex(
      "80"
      "00000000"
      "04a1b2c3d4"
      "04e5f60718"
      "00000001");
  auto info = parseQuicInitial(vn);
  EXPECT_TRUE(info.isQuic);
  EXPECT_EQ(info.version, 0u);
  EXPECT_EQ(info.dcid, fromHex("a1b2c3d4"));
  EXPECT_TRUE(info.sni.empty());
  EXPECT_EQ(info.status, SniffStatus::Invalid);

  Bytes v2 = rfcClientInitial();  // QUIC v2 (RFC 9369) numbering: recognised, not decrypted
  v2[1] = 0x6b, v2[2] = 0x33, v2[3] = 0x43, v2[4] = 0xcf;
  info = parseQuicInitial(v2);
  EXPECT_TRUE(info.isQuic);
  EXPECT_EQ(info.version, 0x6b3343cfu);
  EXPECT_TRUE(info.sni.empty());
  EXPECT_NE(info.error.find("version"), std::string::npos);
}

TEST(QuicInitial, ShortHeaderAndNonInitialTypes) {
  auto info = parseQuicInitial(fromHex("4011223344556677889900"));
  EXPECT_FALSE(info.isQuic);
  EXPECT_EQ(info.status, SniffStatus::NotThisProtocol);
  EXPECT_FALSE(parseQuicInitial(Bytes{}).isQuic);

  Bytes handshake = rfcClientInitial();
  handshake[0] = (handshake[0] & 0xcf) | 0x20;  // long-header type 2: Handshake
  info = parseQuicInitial(handshake);
  EXPECT_TRUE(info.isQuic);
  EXPECT_EQ(info.status, SniffStatus::Invalid);
  EXPECT_NE(info.error.find("not Initial"), std::string::npos) << info.error;
}

// ---- building our own Initials -------------------------------------------------------------

using quic_testing::clientHelloMessage;
using quic_testing::cryptoFrame;
using quic_testing::sealInitial;

const Bytes kDcid = fromHex("0011223344556677");

TEST(QuicInitial, RoundTripsOpensslClientHello) {
  const Bytes hello = clientHelloMessage("blocked.test", {"h3"});
  ASSERT_GT(hello.size(), 100u);
  const Bytes frames = cryptoFrame(0, hello);
  const Bytes packet = sealInitial(kDcid, frames, 0, 1162);
  const auto info = parseQuicInitial(packet);
  ASSERT_EQ(info.status, SniffStatus::Done) << info.error;
  EXPECT_EQ(info.sni, "blocked.test");
  EXPECT_EQ(info.alpn, (std::vector<std::string>{"h3"}));
  EXPECT_EQ(info.dcid, kDcid);
}

TEST(QuicInitial, ReassemblesCryptoFramesOutOfOrderWithAckAndPing) {
  const Bytes hello = clientHelloMessage("blocked.test", {"h3"});
  const size_t half = hello.size() / 2;
  Bytes frames = {0x01};                                         // PING
  for (uint8_t b : fromHex("02050000 00")) frames.push_back(b);  // ACK largest 5, 0 ranges
  const auto second = cryptoFrame(half, std::span(hello).subspan(half));
  const auto first = cryptoFrame(0, std::span(hello).first(half));
  frames.insert(frames.end(), second.begin(), second.end());
  frames.insert(frames.end(), first.begin(), first.end());
  const auto info = parseQuicInitial(sealInitial(kDcid, frames, 1, 1162));
  ASSERT_EQ(info.status, SniffStatus::Done) << info.error;
  EXPECT_EQ(info.sni, "blocked.test");
}

TEST(QuicInitial, ClientHelloAcrossTwoDatagrams) {
  const Bytes hello = clientHelloMessage("blocked.test", {"h3"});
  const size_t half = hello.size() / 2;
  QuicInitialSniffer sniffer;
  // The second half arrives first: nothing contiguous from offset 0 yet.
  auto info =
      sniffer.add(sealInitial(kDcid, cryptoFrame(half, std::span(hello).subspan(half)), 1, 1162));
  EXPECT_TRUE(info.isQuic);
  EXPECT_EQ(info.status, SniffStatus::NeedMore) << info.error;
  info = sniffer.add(sealInitial(kDcid, cryptoFrame(0, std::span(hello).first(half)), 0, 1162));
  ASSERT_EQ(info.status, SniffStatus::Done) << info.error;
  EXPECT_EQ(info.sni, "blocked.test");
  // A one-datagram parse of the first half alone cannot finish.
  EXPECT_EQ(
      parseQuicInitial(sealInitial(kDcid, cryptoFrame(0, std::span(hello).first(half)), 0, 1162))
          .status,
      SniffStatus::NeedMore);
}

TEST(QuicInitial, CoalescedInitialsInOneDatagram) {
  const Bytes hello = clientHelloMessage("blocked.test", {});
  const size_t half = hello.size() / 2;
  Bytes datagram = sealInitial(kDcid, cryptoFrame(0, std::span(hello).first(half)), 0, 100);
  const Bytes second =
      sealInitial(kDcid, cryptoFrame(half, std::span(hello).subspan(half)), 1, 100);
  datagram.insert(datagram.end(), second.begin(), second.end());
  const auto info = parseQuicInitial(datagram);
  ASSERT_EQ(info.status, SniffStatus::Done) << info.error;
  EXPECT_EQ(info.sni, "blocked.test");
  EXPECT_TRUE(info.alpn.empty());
}

TEST(QuicInitial, RejectsForbiddenFramesAndOversizedCrypto) {
  Bytes stream{0x08, 0x00, 0x01, 0x00};  // STREAM frame: not allowed in Initial packets
  auto info = parseQuicInitial(sealInitial(kDcid, stream, 0, 100));
  EXPECT_EQ(info.status, SniffStatus::Invalid);
  EXPECT_NE(info.error.find("not allowed"), std::string::npos) << info.error;

  const Bytes far = cryptoFrame(kMaxQuicCryptoBytes - 1, Bytes{1, 2});  // ends at 16385
  info = parseQuicInitial(sealInitial(kDcid, far, 0, 100));
  EXPECT_EQ(info.status, SniffStatus::Invalid);

  const Bytes notHello = cryptoFrame(0, fromHex("0200000400000000"));  // a ServerHello type
  info = parseQuicInitial(sealInitial(kDcid, notHello, 0, 100));
  EXPECT_EQ(info.status, SniffStatus::Invalid);
}

TEST(QuicInitial, BareHandshakeSniffer) {
  const Bytes hello = clientHelloMessage("blocked.test", {"h2", "http/1.1"});
  auto r = sniffClientHelloHandshake(hello);
  ASSERT_EQ(r.status, SniffStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "blocked.test");
  EXPECT_EQ(r.info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(sniffClientHelloHandshake(std::span(hello).first(hello.size() - 1)).status,
            SniffStatus::NeedMore);
}

}  // namespace
}  // namespace tollgate::proxy

#pragma once

// HTTP/1.x request-head parser (RFC 9112) for the transparent proxy: method, target, version and
// Host of every request on a plaintext connection, with the framing checks that keep the proxy and
// the upstream agreeing on where each request ends (so no request's Host goes unchecked).
//
// Line endings: CRLF, and a lone LF as RFC 9112 §2.2 permits ("MAY recognize a single LF as a line
// terminator and ignore any preceding CR"), as nginx, Go and llhttp do. A bare CR (not followed by
// LF) is Invalid. Inside chunked bodies only CRLF is accepted: chunk framing is where lenient
// parsers disagree ("funky chunks" desync), and refusing costs only the odd broken client.
// Whitespace-separated fields of the request line are separated by exactly one SP.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/sniff.h"

namespace tollgate::proxy {

struct HttpRequestHead {
  std::string method;   // one of kHttpMethods except CONNECT, which is refused
  std::string target;   // request-target as written (origin-, absolute- or asterisk-form)
  std::string version;  // "HTTP/1.0", "HTTP/1.1" (any HTTP/1.<digit>)
  // The Host field value as written (port kept, OWS trimmed). When an HTTP/1.0 request has no
  // Host but an absolute-form target, its authority; empty when it has neither.
  std::string host;
  size_t headerBytes = 0;  // request line + field lines + the empty line, terminators included
  bool keepAlive = false;  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive
  std::optional<uint64_t> contentLength;
  bool chunked = false;  // Transfer-Encoding ends in chunked (Content-Length is then absent)
  // "Connection: upgrade" with an Upgrade field: if the server answers 101 the connection stops
  // being HTTP/1 (see HttpRequestStream::passThrough).
  bool upgrade = false;
  // The Upgrade field values as written, several fields joined by ", " ("websocket", "h2c").
  std::string upgradeProtocols;
};

struct HttpSniffResult {
  SniffStatus status = SniffStatus::NeedMore;
  HttpRequestHead head;  // filled when status == Done
  std::string error;     // why, when status is Invalid or NotThisProtocol
};

inline constexpr size_t kMaxHttpHeaderBytes = 16384;

// Parses the request head at the start of `bytes` (what follows the head is not looked at).
// @return NotThisProtocol as soon as the bytes cannot start "<method> " (see kHttpMethods);
//         NeedMore until the empty line ending the head; Invalid for a malformed request line or
//         field line, obsolete line folding, whitespace in a field name, a missing (HTTP/1.1),
//         duplicate or malformed Host, an absolute-form target whose authority disagrees with Host,
//         CONNECT, Content-Length together with Transfer-Encoding, differing Content-Length values,
//         Transfer-Encoding not ending in chunked or on HTTP/1.0, a head over maxHeaderBytes.
HttpSniffResult sniffHttpRequest(std::span<const uint8_t> bytes,
                                 size_t maxHeaderBytes = kMaxHttpHeaderBytes);

// Follows the client side of a keep-alive HTTP/1 connection and reports every request head in
// turn, skipping bodies (Content-Length, chunked with extensions and trailers) without buffering
// them, so the proxy can check each request's Host. Pipelined requests are all reported.
//
// Usage: feed() each chunk read from the client before forwarding it. A request the proxy denies
// starts at Request::offset: forward the bytes before it, not it. After Invalid, forward bytes
// before FeedResult::errorOffset at most, then close.
class HttpRequestStream {
 public:
  struct Request {
    HttpRequestHead head;
    uint64_t offset = 0;  // stream offset of the request's first byte
  };

  struct FeedResult {
    // NeedMore while the stream is well-formed (whether or not requests were completed);
    // NotThisProtocol (first request only) and Invalid are final: later feeds repeat them.
    SniffStatus status = SniffStatus::NeedMore;
    std::vector<Request> requests;  // heads completed by this feed, in stream order
    std::string error;
    uint64_t errorOffset = 0;  // stream offset where the malformed element starts
  };

  explicit HttpRequestStream(size_t maxHeaderBytes = kMaxHttpHeaderBytes);

  FeedResult feed(std::span<const uint8_t> bytes);

  // The server accepted an upgrade (101 Switching Protocols): bytes from now on are not HTTP/1 and
  // are no longer parsed. Only call it after the response to a request with head.upgrade.
  void passThrough();

  // True when every byte fed so far belongs to a complete message (nothing partial is pending).
  bool atMessageBoundary() const;

  // Bytes fed so far.
  uint64_t bytesFed() const { return fed_; }

 private:
  enum class State { Head, Body, ChunkLine, ChunkData, ChunkDataEnd, Trailer, PassThrough, Failed };

  void fail(FeedResult& out, SniffStatus status, std::string error);
  // One line-buffered step for ChunkLine / Trailer; returns false after fail().
  bool lineStep(std::string_view& in, FeedResult& out);

  size_t maxHeaderBytes_;
  State state_ = State::Head;
  std::string headBuf_;      // a request head not yet complete
  std::string lineBuf_;      // a chunk-size or trailer line not yet complete
  uint64_t remaining_ = 0;   // body or chunk-data bytes still to skip
  size_t chunkEndSeen_ = 0;  // bytes of the CRLF after chunk data seen so far
  size_t trailerBytes_ = 0;
  uint64_t offset_ = 0;  // stream offset of the first byte not yet consumed
  uint64_t fed_ = 0;
  uint64_t requests_ = 0;
  SniffStatus failedStatus_ = SniffStatus::Invalid;
  std::string error_;
};

// The status code of an HTTP/1.x status line ("HTTP/1.1 101 Switching Protocols\r\n"), nullopt when
// `statusLine` does not start with one.
std::optional<int> httpStatusCode(std::string_view statusLine);

// Why the proxy refuses the upgrade `head` asks for ("h2c_upgrade", "upgrade_not_allowed": only
// WebSocket is relayed, "upgrade_with_body"); nullopt when it asks for none or for WebSocket.
std::optional<std::string_view> refusedUpgrade(const HttpRequestHead& head);

}  // namespace tollgate::proxy

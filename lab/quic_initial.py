#!/usr/bin/env python3
"""Sends one real QUIC v1 client Initial (RFC 9000 §17.2.2) carrying a TLS 1.3 ClientHello with
the given SNI to host:port over UDP, padded to 1200 bytes, protected with the Initial keys of
RFC 9001 §5 (AES-128-GCM + AES header protection, from the `cryptography` package). What a
browser's first QUIC packet looks like; prints "sent <bytes> bytes, dcid <hex>" or the error.
--connect: connect() the socket first and send() on it, as most QUIC clients do (the default is
sendto() on an unconnected socket); --interval: seconds between Initials (a client resends its
Initial when nothing answers).

usage: quic_initial.py <host> <port> <sni> [--count N] [--connect] [--interval SECONDS]
"""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_label(secret, label, length):
    full = b"tls13 " + label.encode()
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def varint(v):
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", v | 0x4000)
    if v < 0x40000000:
        return struct.pack("!I", v | 0x80000000)
    return struct.pack("!Q", v | 0xC000000000000000)


def ext(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def client_hello(sni):
    name = sni.encode()
    server_name = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    alpn_list = b"\x02h3"
    exts = b"".join([
        ext(0x0000, server_name),
        ext(0x000A, struct.pack("!HH", 2, 0x001D)),                   # supported_groups x25519
        ext(0x000D, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401)),  # signature_algorithms
        ext(0x0010, struct.pack("!H", len(alpn_list)) + alpn_list),    # ALPN h3
        ext(0x002B, b"\x02\x03\x04"),                                  # supported_versions 1.3
        ext(0x0033, struct.pack("!HHH", 36, 0x001D, 32) + os.urandom(32)),  # key_share
        ext(0x0039, b"\x01\x04\x80\x00\x75\x30"),                      # quic_transport_parameters
    ])
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" +
            b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return b"\x01" + struct.pack("!I", len(body))[1:] + body


def initial_packet(sni, size=1200):
    dcid, scid = os.urandom(8), os.urandom(8)
    secret = hkdf_expand_label(hkdf_extract(INITIAL_SALT_V1, dcid), "client in", 32)
    key = hkdf_expand_label(secret, "quic key", 16)
    iv = hkdf_expand_label(secret, "quic iv", 12)
    hp = hkdf_expand_label(secret, "quic hp", 16)
    hello = client_hello(sni)
    frames = b"\x06" + varint(0) + varint(len(hello)) + hello  # CRYPTO frame at offset 0
    pn, pn_len = 0, 4
    head = (bytes([0xC0 | (pn_len - 1)]) + struct.pack("!I", 1) + bytes([len(dcid)]) + dcid +
            bytes([len(scid)]) + scid + varint(0))  # no token
    # Pad the frames (PADDING = 0x00) so the whole datagram is `size` bytes.
    length_field_len = 2
    payload_len = size - len(head) - length_field_len - pn_len - 16
    frames += b"\x00" * (payload_len - len(frames))
    header = head + varint(pn_len + len(frames) + 16) + struct.pack("!I", pn)
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    sealed = AESGCM(key).encrypt(nonce, frames, header)
    pn_offset = len(header) - pn_len
    sample = sealed[4 - pn_len:4 - pn_len + 16]
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    first = bytes([header[0] ^ (mask[0] & 0x0F)])
    pn_bytes = bytes(b ^ m for b, m in zip(header[pn_offset:], mask[1:1 + pn_len]))
    return first + header[1:pn_offset] + pn_bytes + sealed, dcid


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("sni")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--connect", action="store_true")
    p.add_argument("--interval", type=float, default=0.0)
    a = p.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.connect:
        try:
            s.connect((a.host, a.port))
        except OSError as e:
            print(f"connect failed: {e.strerror}")
            return
    for i in range(a.count):
        if i and a.interval:
            time.sleep(a.interval)
        pkt, dcid = initial_packet(a.sni)
        try:
            if a.connect:
                s.send(pkt)
            else:
                s.sendto(pkt, (a.host, a.port))
            print(f"sent {len(pkt)} bytes, dcid {dcid.hex()}")
        except OSError as e:
            print(f"send failed: {e.strerror}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The lab's opaque TCP service (opaque.test:9000 in tg-net): not HTTP, not TLS, so the proxy
can only name a flow to it by what the pod resolved. Logs one line per accepted connection
("<peer ip>:<port> [time] accepted") to stdout, greets and echoes one line back.
"""
import argparse
import socketserver
import time


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        peer = self.client_address
        print(f"{peer[0]}:{peer[1]} [{time.strftime('%Y-%m-%dT%H:%M:%S')}] accepted", flush=True)
        self.wfile.write(f"{self.server.banner}\n".encode())
        line = self.rfile.readline(4096)
        if line:
            self.wfile.write(b"echo " + line)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--banner", default="opaque hello")
    a = p.parse_args()
    with Server((a.listen, a.port), Handler) as s:
        s.banner = a.banner
        s.serve_forever()


if __name__ == "__main__":
    main()

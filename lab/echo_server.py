#!/usr/bin/env python3
"""The lab's httpbin: nginx proxies httpbin.test to this server (127.0.0.1:8080 in tg-net).

GET /headers        -> {"headers": {...request headers...}} (nginx adds X-Forwarded-For)
ANY /status/<code>  -> that status code, empty body
GET /               -> a short text naming the server
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tollgate-lab-echo/1"

    def _send(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        if path == "/headers":
            body = json.dumps({"headers": dict(self.headers.items())}, indent=2) + "\n"
            self._send(200, body.encode(), "application/json")
        elif path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
                if not 100 <= code <= 599:
                    raise ValueError
            except ValueError:
                self._send(400, b"bad status code\n")
                return
            self._send(code)
        elif path == "/":
            self._send(200, b"httpbin.test (tollgate lab echo server)\n")
        else:
            self._send(404, b"not found\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    def log_message(self, fmt, *args):
        pass  # nginx keeps the access log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((args.listen, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()

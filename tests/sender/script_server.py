#!/usr/bin/env python3
"""script_server.py -- a scripted HTTP server for the sender's unit tests.

Listens on 127.0.0.1 (port 0 unless --port), writes the port it got to
--port-file (atomically, by rename), and answers every request that is not a
control request with the next entry of its script, or with 202 and an
X-Message-Id when the script is empty.  It records each such request.

Control (never recorded):
  POST /script/script    JSON list of {"status": 429, "headers": {...},
                       "body": "...", "stall": true, "reset": true}; appended
                       to the script.  A stalled request gets no answer until
                       /script/reset; a reset one is read whole, recorded, and
                       its connection reset (RST) without an answer.
  GET  /script/requests  JSON list of {"method", "path", "headers", "body"};
                       header names are lower case.
  POST /script/reset     empties script and record, releases stalled requests.
"""
import argparse
import json
import os
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
script = []
requests = []
release = threading.Event()
counter = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as curl and SendGrid use it

    def log_message(self, fmt, *args):  # quiet: the test log is for the test
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def control(self, body):
        global release
        if self.command == "POST" and self.path == "/script/script":
            with lock:
                script.extend(json.loads(body or b"[]"))
            self.answer(200, b"{}")
        elif self.command == "GET" and self.path == "/script/requests":
            with lock:
                out = json.dumps(requests).encode()
            self.answer(200, out, {"Content-Type": "application/json"})
        elif self.command == "POST" and self.path == "/script/reset":
            with lock:
                script.clear()
                requests.clear()
                release.set()
                release = threading.Event()
            self.answer(200, b"{}")
        else:
            self.answer(404, b'{"error":"unknown control request"}')

    def serve(self):
        global counter
        body = self.read_body()
        if self.path.startswith("/script/"):
            self.control(body)
            return
        with lock:
            requests.append({
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            })
            step = script.pop(0) if script else None
            counter += 1
            n = counter
            ev = release
        if step is None:
            step = {"status": 202, "headers": {"X-Message-Id": "scripted server-%d" % n}}
        if step.get("reset"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if step.get("stall"):
            ev.wait(120)
            self.close_connection = True
            return
        self.answer(int(step.get("status", 202)), step.get("body", "").encode(),
                    step.get("headers"))

    do_POST = serve
    do_GET = serve
    do_PUT = serve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()

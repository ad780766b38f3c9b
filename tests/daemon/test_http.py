#!/usr/bin/env python3
"""The intake's HTTP framing: requests two parsers could read two ways are
refused and their connection closed, nothing hidden in them is stored; slow
clients are cut by the header timeout and held to a per-address limit.

usage: test_http.py WARMUPD FAKE_SENDGRID [unittest arguments]

warmupd runs with its new route paused (through the control API), so every
accepted mail stays in the store, where the test counts it.
"""
import json
import re
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for  # noqa: E402

WARMUPD = None
FAKE = None
TOKEN = "tok-Http-5c1e8a2f90d4b7361e0a"
API_KEY = "SG.Http-2a7d1f0c9e84b3651d2e.k9Qz"

BODY = json.dumps({
    "personalizations": [{"to": [{"email": "a@example.jp"}]}],
    "from": {"email": "news@example.com"},
    "subject": "hello",
    "content": [{"type": "text/plain", "value": "hi"}],
}).encode()


def raw_exchange(port, data, timeout=10):
    """Sends data on a fresh connection and reads until the server closes
    it (or timeout): (all bytes read, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    closed = False
    try:
        s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            out += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    finally:
        s.close()
    return out, closed


def status_line(resp):
    return resp.split(b"\r\n", 1)[0].decode("latin-1")


class HttpTest(warmuptest.ProcTestCase):
    prefix = "warmupd-http-"

    def start(self, listen_extra=""):
        fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(fake)

        warmuptest.write_file(self.dir, "schedule.csv", "# test\nday,cap\n1,1000\n2,1000\n")
        conf = warmuptest.write_file(self.dir, "warmupd.conf", f"""[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = defer

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN
{listen_extra}

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{fake.port}
api_key_env = WARMUP_TEST_KEY
""")
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, self.dir, conf, env, TOKEN)
        self.procs.append(d)

        st, _, body = d.request("POST", "/v1/pause", {"route": "new", "who": "test"})
        self.assertEqual(st, 200, body)
        self.d = d
        return d

    def accepted(self):
        return self.d.status()["intake"]["accepted"]

    def post(self, headers, body):
        head = b"POST /v3/mail/send HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers)
        return head + b"\r\n" + body

    def common(self):
        return [b"Host: 127.0.0.1", b"Authorization: Bearer " + TOKEN.encode(),
                b"Content-Type: application/json"]

    def assert_refused(self, data, status, what):
        before = self.accepted()
        resp, closed = raw_exchange(self.d.port, data)
        self.assertTrue(resp.startswith(b"HTTP/1.1 %d " % status),
                        "%s: %r" % (what, resp[:200]))
        self.assertTrue(closed, "%s: the connection stays open after the refusal" % what)
        self.assertEqual(len(re.findall(rb"(?:^|\r\n)HTTP/1\.1 \d{3} ", resp)), 1,
                         "%s: a second answer: %r" % (what, resp))
        self.assertEqual(self.accepted(), before, "%s: something was accepted" % what)

    def test_smuggling_refused(self):
        self.start()
        hidden = self.post(self.common() + [b"Content-Length: %d" % len(BODY)], BODY)
        # Content-Length and chunked together, a whole request in the body
        chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(hidden), hidden)
        self.assert_refused(
            self.post(self.common() + [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
                      chunk), 400, "CL + TE")
        self.assert_refused(
            self.post(self.common() + [b"Content-Length: %d" % len(BODY),
                                       b"Content-Length: %d" % (len(BODY) + 1)], BODY),
            400, "two Content-Length")
        self.assert_refused(
            self.post(self.common() + [b"Content-Length: %d" % len(BODY)] * 2, BODY),
            400, "the same Content-Length twice")
        self.assert_refused(
            self.post(self.common() + [b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"),
            501, "TE gzip, chunked")
        self.assert_refused(
            self.post(self.common() + [b"Authorization: Bearer other",
                                       b"Content-Length: %d" % len(BODY)], BODY),
            400, "two Authorization")
        self.assert_refused(
            self.post([h for h in self.common() if not h.startswith(b"Host")] +
                      [b"Content-Length: %d" % len(BODY)], BODY), 400, "no Host")
        self.assert_refused(
            self.post(self.common() + [b"Bad Name: x", b"Content-Length: %d" % len(BODY)],
                      BODY), 400, "a space in a header name")
        # the error is SendGrid's format
        resp, _ = raw_exchange(self.d.port, self.post(
            self.common() + [b"Content-Length: 2", b"Content-Length: 3"], b"{}"))
        body = json.loads(resp.split(b"\r\n\r\n", 1)[1])
        self.assertIn("Content-Length", body["errors"][0]["message"])
        # and a clean request on a kept-alive connection still works, twice
        ok = self.post(self.common() + [b"Content-Length: %d" % len(BODY)], BODY)
        resp, _ = raw_exchange(self.d.port, ok + ok, timeout=3)
        self.assertEqual(resp.count(b"HTTP/1.1 202 "), 2, resp[:300])
        wait_for(lambda: self.accepted() == 2, "two accepted")

    def test_connection_limit_recovers(self):
        # At the limit libmicrohttpd takes its listening socket out of its
        # epoll set; once connections close, the intake must accept again.
        self.start("max_connections = 4\nmax_connections_per_ip = 0\nheader_timeout = 1s")
        socks = [socket.create_connection(("127.0.0.1", self.d.port)) for _ in range(12)]
        for s in socks:
            s.setblocking(False)

        def ended():
            n = 0
            for s in socks:
                try:
                    if s.recv(1) == b"":
                        n += 1
                except BlockingIOError:
                    pass
                except OSError:
                    n += 1
            return n
        # the first four were taken (the server cut them for their missing
        # headers); the intake then took the next ones from the backlog
        wait_for(lambda: ended() >= 8, "the server taking connections past its limit",
                 interval=0.1)
        for s in socks:
            s.close()
        st = self.d.status()
        self.assertGreaterEqual(st["intake"]["header_timeouts"], 8)

    def test_header_timeout_and_per_ip_limit(self):
        self.start("max_connections = 8\nmax_connections_per_ip = 4\nheader_timeout = 1s")
        # a slow client from another loopback address: a header line now and
        # then, never the end of the headers
        slow = []
        for _ in range(20):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", self.d.port))
            s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        # a real client from 127.0.0.1 gets through: at most 4 slots are theirs
        st = self.d.status()
        self.assertIn("intake", st)

        def cut():
            n = 0
            for s in slow:
                try:
                    s.sendall(b"X-Drip: 1\r\n")
                    s.setblocking(False)
                    if s.recv(1) == b"":
                        n += 1
                except (BlockingIOError,):
                    pass
                except OSError:
                    n += 1
                finally:
                    s.setblocking(True)
            return n == len(slow)
        wait_for(cut, "every slow connection closed by the server", timeout=30, interval=0.2)
        self.assertGreaterEqual(self.d.status()["intake"]["header_timeouts"], 1)
        for s in slow:
            s.close()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_http.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

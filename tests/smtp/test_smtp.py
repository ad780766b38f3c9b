#!/usr/bin/env python3
"""test_smtp.py -- the SMTP route end to end, against loopback SMTP servers.

Drives tests/smtp/smtp_send (path in $SMTP_SEND), which sends units through
snd_route_send() on a real libuv loop, against two servers:

  * Capture, a small SMTP server in this file (socketserver, one thread per
    connection) that records each transaction's DATA verbatim, counts
    connections, advertises AUTH PLAIN LOGIN when asked, never offers
    STARTTLS, and answers scripted 4xx/5xx replies to chosen commands;
  * Postfix's smtp-sink ($SMTP_SINK), when installed, as the real relay.

The messages are checked with Python's email package.  Nothing sleeps to
wait: the driver runs until every unit has its result, and smtp-sink is
connected to once it has announced that it binds its port.
"""
import base64
import email.parser
import email.policy
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import free_port, unstuff  # noqa: E402

SMTP_SEND = os.environ.get("SMTP_SEND", "")
SMTP_SINK = os.environ.get("SMTP_SINK", "")

PASSWORD = "s3cret-Pa55word-xyz"

TEXT = ("こんにちは -name- さん\n"
        ".dot line stays\n"
        ".\n"
        + "x" * 5000 + "\n"
        "trailing spaces   \n"
        "last line")
HTML = ("<html><body><p>-name- 様</p>\n"
        ".<br>\n"
        "<p>" + "y" * 5000 + "</p>\n"
        "<img src=\"cid:logo1\"></body></html>\n")
BIN = bytes(range(256)) * 8
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))

CONTENT = {
    "from": {"email": "news@example.com", "name": "山田 太郎"},
    "reply_to": {"email": "support@example.com", "name": "Support, Team"},
    "subject": "global subject",
    "content": [{"type": "text/plain", "value": TEXT},
                {"type": "text/html", "value": HTML}],
    "attachments": [
        {"content": base64.b64encode(BIN).decode(), "filename": "data.bin",
         "type": "application/octet-stream"},
        {"content": base64.b64encode(PNG).decode(), "filename": "ロゴ.png",
         "type": "image/png", "content_id": "logo1"},
    ],
    "headers": {
        "List-Unsubscribe": "<https://example.com/unsubscribe?list=news&token="
                            + "t" * 60 + ">, <mailto:unsubscribe@example.com>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Campaign": "global",
        "X-Note": "日本語のヘッダー値",
    },
    "categories": ["warmup", "日本"],
    "custom_args": {"campaign": "c1", "kind": "news"},
}

PERS = {
    "to": [{"email": "hanako@example.jp", "name": "田中 花子"},
           {"email": "ichiro@example.jp", "name": "Ichiro \"One\" Suzuki"}],
    "cc": [{"email": "cc@example.net"}],
    "bcc": [{"email": "hidden@example.org", "name": "Hidden"}],
    "subject": "件名：テスト配信 -name-",
    "substitutions": {"-name-": "花子", "-name-full-": "田中花子"},
    "headers": {"x-campaign": "pers"},
    "custom_args": {"user": "u123", "campaign": "c2", "名前": "値😀"},
}

SIMPLE = {"from": {"email": "a@example.com"}, "subject": "hello",
          "content": [{"type": "text/plain", "value": "hi\n"}]}
SIMPLE_PERS = {"to": [{"email": "b@example.net"}]}


class Capture(warmuptest.SmtpServer):
    """A scripted SMTP server on 127.0.0.1 that records what it receives."""
    # socketserver's default backlog of 5 drops the SYNs of a route opening
    # 8 sessions at once, and the kernel retries them only after a second.
    request_queue_size = 64

    def __init__(self, script=None, auth=False, delay=0.0):
        super().__init__(CaptureHandler)
        self.script = script or {}   # "RCPT" -> "451 ...", "END" -> reply after data
        self.auth = auth
        self.delay = delay           # seconds before the reply to the body
        self.stopped = threading.Event()
        self.connections = 0
        self.messages = []           # dicts: from, rcpt, data, auth
        self.commands = []
        self.serve()

    def stop(self):
        self.stopped.set()
        # Also unblocks handlers a test left hanging on purpose.
        super().stop()


class CaptureHandler(warmuptest.SmtpHandler):
    def scripted(self, cmd, default):
        """The scripted reply for cmd, or default; None means hang."""
        srv = self.server
        if cmd in srv.script:
            r = srv.script[cmd]
            if r == "hang":
                # Wait for the client to give up: EOF ends the read.
                self.rfile.read()
                return None
            return r
        return default

    def handle(self):
        srv = self.server
        with srv.lock:
            srv.connections += 1
            srv.conns.append(self.request)
        r = self.scripted("GREETING", "220 capture ESMTP")
        if r is None:
            return
        self.reply(r)
        msg = None
        authed = False
        while True:
            line = self.rfile.readline()
            if not line:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            with srv.lock:
                srv.commands.append(verb)
            if verb in ("EHLO", "HELO"):
                r = self.scripted("EHLO", None if "EHLO" in srv.script else "")
                if r:
                    self.reply(r)
                    continue
                caps = ["250-capture", "250-PIPELINING", "250-8BITMIME", "250-SIZE 10240000"]
                if srv.auth:
                    caps.append("250-AUTH PLAIN LOGIN")
                caps.append("250 ENHANCEDSTATUSCODES")
                for c in caps:
                    self.wfile.write(c.encode() + b"\r\n")
                self.wfile.flush()
            elif verb == "AUTH":
                ok = self.auth(text)
                authed = ok
                self.reply("235 2.7.0 Authentication successful" if ok
                           else "535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                r = self.scripted("MAIL", "250 2.1.0 Ok")
                if r is None:
                    return
                if r.startswith("250"):
                    msg = {"from": text[10:].strip(), "rcpt": [], "data": b"",
                           "auth": authed}
                self.reply(r)
            elif verb == "RCPT":
                addr = text[8:].strip()
                r = self.scripted("RCPT " + addr, None) if "RCPT " + addr in srv.script \
                    else self.scripted("RCPT", "250 2.1.5 Ok")
                if r is None:
                    return
                if r.startswith("250") and msg is not None:
                    msg["rcpt"].append(text[8:].strip())
                self.reply(r)
            elif verb == "DATA":
                r = self.scripted("DATA", "354 End data with <CR><LF>.<CR><LF>")
                if r is None:
                    return
                self.reply(r)
                if not r.startswith("354"):
                    continue
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    data += chunk
                if srv.delay:
                    # A relay slow to queue: the verdict comes late, and
                    # the other connections must not wait for it.
                    srv.stopped.wait(srv.delay)
                r = self.scripted("END", None)
                if r is None and "END" in srv.script:
                    return
                with srv.lock:
                    n = len(srv.messages) + 1
                    msg["data"] = data
                    if r is None or r.startswith("250"):
                        srv.messages.append(msg)
                self.reply(r or "250 2.0.0 Ok: queued as CAP%04d" % n)
                msg = None
            elif verb == "RSET":
                msg = None
                self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Error: command not recognized")

    def auth(self, text):
        """AUTH PLAIN (with or without an initial response) and AUTH LOGIN."""
        parts = text.split()
        mech = parts[1].upper() if len(parts) > 1 else ""
        if mech == "PLAIN":
            if len(parts) > 2:
                resp = parts[2]
            else:
                self.reply("334 ")
                resp = self.rfile.readline().decode().strip()
            try:
                _, user, pw = base64.b64decode(resp).split(b"\0")
            except ValueError:
                return False
        elif mech == "LOGIN":
            self.reply("334 VXNlcm5hbWU6")
            user = base64.b64decode(self.rfile.readline().strip())
            self.reply("334 UGFzc3dvcmQ6")
            pw = base64.b64decode(self.rfile.readline().strip())
        else:
            return False
        return user == b"apikey" and pw == PASSWORD.encode()


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.tmp.cleanup()

    def capture(self, script=None, auth=False, delay=0.0):
        s = Capture(script, auth, delay)
        self.servers.append(s)
        return s

    def write(self, name, obj):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False)
        return path

    def send(self, url, content=CONTENT, pers=(PERS,), args=(), password=None, timeout=30):
        cmd = [SMTP_SEND, "--url", url, "--content", self.write("content.json", content)]
        for i, p in enumerate(pers):
            cmd += ["--pers", self.write("p%d.json" % i, p)]
        cmd += list(args)
        env = dict(os.environ)
        env.pop("SMTP_PASSWORD", None)
        if password is not None:
            env["SMTP_PASSWORD"] = password
        out = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        res = [json.loads(l) for l in out.stdout.decode().splitlines()]
        for r in res:
            self.assertNotIn(PASSWORD, json.dumps(r))
        return res


@unittest.skipUnless(SMTP_SEND, "SMTP_SEND not set")
class TestMessage(Base):
    """One rich message through the capture server, taken apart."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Capture()
        t = Base()
        t.tmp = tempfile.TemporaryDirectory()
        t.servers = []
        cls.res = t.send("smtp://127.0.0.1:%d" % cls.srv.port,
                         args=["--tls", "none", "--x-smtpapi", "--click", "--sub",
                               "--ip-pool", "warm", "--day", "7", "--route", "new",
                               "--msgid", "abcDEF123"])
        t.tmp.cleanup()
        cls.raw = cls.srv.messages[0]["data"] if cls.srv.messages else b""
        cls.msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            unstuff(cls.raw))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_accepted_with_queue_id(self):
        self.assertEqual(self.res[0]["status"], "accepted", self.res)
        self.assertEqual(self.res[0]["code"], 250)
        self.assertEqual(self.res[0]["provider_id"], "CAP0001")

    def test_envelope(self):
        m = self.srv.messages[0]
        self.assertEqual(m["from"], "<news@example.com>")
        self.assertEqual(sorted(m["rcpt"]), sorted(
            ["<hanako@example.jp>", "<ichiro@example.jp>", "<cc@example.net>",
             "<hidden@example.org>"]))

    def test_crlf_only_and_short_lines(self):
        self.assertTrue(self.raw)
        self.assertNotIn(b"\r\r", self.raw)
        for i, b in enumerate(self.raw):
            if b == 0x0A:
                self.assertEqual(self.raw[i - 1], 0x0D, "bare LF at %d" % i)
            if b == 0x0D:
                self.assertEqual(self.raw[i + 1], 0x0A, "bare CR at %d" % i)
        for line in self.raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)

    def test_headers_decode(self):
        m = self.msg
        self.assertEqual(str(m["Subject"]), "件名：テスト配信 花子")
        self.assertEqual(m["From"].addresses[0].display_name, "山田 太郎")
        self.assertEqual(m["From"].addresses[0].addr_spec, "news@example.com")
        to = m["To"].addresses
        self.assertEqual([a.display_name for a in to], ["田中 花子", "Ichiro \"One\" Suzuki"])
        self.assertEqual([a.addr_spec for a in to], ["hanako@example.jp", "ichiro@example.jp"])
        self.assertEqual(m["Cc"].addresses[0].addr_spec, "cc@example.net")
        self.assertEqual(m["Reply-To"].addresses[0].display_name, "Support, Team")
        self.assertIsNone(m["Bcc"])
        self.assertNotIn(b"hidden@example.org", self.raw)
        self.assertEqual(m["MIME-Version"], "1.0")
        self.assertIsNotNone(m["Date"].datetime)
        self.assertEqual(m["Message-ID"], "<abcDEF123.u1@example.com>")
        self.assertEqual(str(m["X-Note"]), "日本語のヘッダー値")

    def test_custom_headers_merged(self):
        m = self.msg
        self.assertEqual(m.get_all("X-Campaign"), ["pers"])
        self.assertEqual(m["List-Unsubscribe"], CONTENT["headers"]["List-Unsubscribe"])
        self.assertEqual(m["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")

    def test_headers_ascii_and_folded(self):
        head = self.raw.split(b"\r\n\r\n", 1)[0]
        head.decode("ascii")
        for line in head.split(b"\r\n"):
            self.assertLess(len(line), 200, line)

    def test_bodies(self):
        m = self.msg
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        alt = next(m.iter_parts())
        self.assertEqual(alt.get_content_type(), "multipart/alternative")
        text, html = list(alt.iter_parts())
        want_text = TEXT.replace("-name-", "花子")
        want_html = HTML.replace("-name-", "花子")
        self.assertEqual(text.get_content_type(), "text/plain")
        self.assertEqual(text.get_content_charset(), "utf-8")
        self.assertEqual(text.get_content().replace("\r\n", "\n"), want_text)
        self.assertEqual(html.get_content().replace("\r\n", "\n"), want_html)

    def test_attachments(self):
        atts = list(self.msg.iter_attachments())
        self.assertEqual(len(atts), 2)
        self.assertEqual(atts[0].get_filename(), "data.bin")
        self.assertEqual(atts[0].get_content(), BIN)
        self.assertEqual(atts[0].get_content_disposition(), "attachment")
        self.assertEqual(atts[1].get_filename(), "ロゴ.png")
        self.assertEqual(atts[1].get_content(), PNG)
        self.assertEqual(atts[1]["Content-ID"], "<logo1>")
        self.assertEqual(atts[1].get_content_disposition(), "inline")
        self.assertEqual(atts[1]["Content-Transfer-Encoding"], "base64")

    def test_x_smtpapi(self):
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        lines = head.split("\r\n")
        i = next(i for i, l in enumerate(lines) if l.lower().startswith("x-smtpapi:"))
        value = lines[i][len("X-SMTPAPI:"):]
        for l in lines[i + 1:]:
            if not l.startswith((" ", "\t")):
                break
            value += l
        for l in lines:
            self.assertLess(len(l), 1000)
        x = json.loads(value)
        self.assertEqual(x["filters"]["clicktrack"], {"settings": {"enable": 1}})
        self.assertEqual(x["filters"]["opentrack"], {"settings": {"enable": 0}})
        self.assertEqual(x["filters"]["subscriptiontrack"], {"settings": {"enable": 1}})
        self.assertEqual(x["category"], ["warmup", "日本"])
        self.assertEqual(x["ip_pool"], "warm")
        ua = x["unique_args"]
        self.assertEqual(ua["warmup_day"], "7")
        self.assertEqual(ua["warmup_route"], "new")
        self.assertEqual(ua["campaign"], "c2")
        self.assertEqual(ua["kind"], "news")
        self.assertEqual(ua["名前"], "値😀")
        self.assertIn("\\ud83d\\ude00", value)


@unittest.skipUnless(SMTP_SEND, "SMTP_SEND not set")
class TestReplies(Base):
    """Scripted answers and how they are classified."""

    def url(self, srv):
        return "smtp://127.0.0.1:%d" % srv.port

    def simple(self, srv, args=("--tls", "none"), password=None, n=1):
        return self.send(self.url(srv), SIMPLE, [SIMPLE_PERS] * n, args, password)

    def test_4xx_is_tempfail(self):
        srv = self.capture({"RCPT": "451 4.3.0 try again later"})
        r = self.simple(srv)[0]
        self.assertEqual((r["status"], r["code"]), ("tempfail", 451), r)
        self.assertIn("try again later", r["error"])
        self.assertIn("RCPT", r["error"])

    def test_5xx_rcpt_is_permfail(self):
        srv = self.capture({"RCPT": "550 5.1.1 no such user"})
        r = self.simple(srv)[0]
        self.assertEqual((r["status"], r["code"]), ("permfail", 550), r)
        self.assertIn("no such user", r["error"])

    def test_5xx_after_body_is_permfail(self):
        srv = self.capture({"END": "554 5.7.1 content rejected"})
        r = self.simple(srv)[0]
        self.assertEqual((r["status"], r["code"]), ("permfail", 554), r)

    def test_4xx_after_body_is_tempfail(self):
        srv = self.capture({"END": "452 4.3.1 insufficient system storage"})
        r = self.simple(srv)[0]
        self.assertEqual((r["status"], r["code"]), ("tempfail", 452), r)

    def test_5xx_greeting_pauses_route(self):
        srv = self.capture({"GREETING": "554 5.3.2 no service for you"})
        r = self.simple(srv)[0]
        self.assertEqual(r["status"], "authfail", r)

    def test_auth_ok(self):
        srv = self.capture(auth=True)
        r = self.simple(srv, ("--tls", "none", "--user", "apikey"), PASSWORD)[0]
        self.assertEqual(r["status"], "accepted", r)
        self.assertTrue(srv.messages[0]["auth"])

    def test_auth_535_is_authfail(self):
        srv = self.capture(auth=True)
        r = self.simple(srv, ("--tls", "none", "--user", "apikey"), PASSWORD + "-wrong")[0]
        self.assertEqual((r["status"], r["code"]), ("authfail", 535), r)
        self.assertIn("apikey", r["error"])
        self.assertNotIn("wrong", r["error"])
        self.assertEqual(srv.messages, [])

    def test_tls_required_without_starttls(self):
        srv = self.capture()
        r = self.simple(srv, ("--tls", "required"))[0]
        self.assertEqual(r["status"], "tempfail", r)
        self.assertIn("does not offer STARTTLS", r["error"])
        self.assertIn("in clear", r["error"])
        self.assertNotIn("MAIL", srv.commands)

    def test_tls_required_is_the_default(self):
        srv = self.capture()
        r = self.simple(srv, ())[0]
        self.assertEqual(r["status"], "tempfail", r)
        self.assertNotIn("MAIL", srv.commands)

    def test_tls_optional_sends_in_clear(self):
        srv = self.capture()
        r = self.simple(srv, ("--tls", "optional"))[0]
        self.assertEqual(r["status"], "accepted", r)

    def test_timeout(self):
        srv = self.capture({"END": "hang"})
        r = self.simple(srv, ("--tls", "none", "--timeout-ms", "700"))[0]
        self.assertEqual(r["status"], "timeout", r)

    def test_refused_is_tempfail(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        r = self.send("smtp://127.0.0.1:%d" % port, SIMPLE, [SIMPLE_PERS],
                      ("--tls", "none"))[0]
        self.assertEqual(r["status"], "tempfail", r)

    def test_bad_data_is_permfail(self):
        srv = self.capture()
        res = self.send(self.url(srv), SIMPLE, [{"to": []}, {"cc": [{"email": "x"}]}],
                        ("--tls", "none"))
        self.assertEqual([r["status"] for r in res], ["permfail", "permfail"], res)
        self.assertIn("no recipient", res[0]["error"])
        self.assertIn("cc.0", res[1]["error"])
        self.assertEqual(srv.connections, 0)

    def test_connection_reused(self):
        srv = self.capture()
        res = self.simple(srv, ("--tls", "none", "--max-conn", "1"), n=6)
        self.assertEqual([r["status"] for r in res], ["accepted"] * 6, res)
        self.assertEqual(len({r["provider_id"] for r in res}), 6)
        self.assertEqual(srv.connections, 1)
        self.assertEqual(len(srv.messages), 6)

    def test_connections_bounded_by_max_connections(self):
        srv = self.capture()
        res = self.simple(srv, ("--tls", "none", "--max-conn", "3"), n=12)
        self.assertEqual([r["status"] for r in res], ["accepted"] * 12, res)
        self.assertLessEqual(srv.connections, 3)

    def test_refused_recipient_fails_only_its_unit(self):
        srv = self.capture({"RCPT <c@example.net>": "550 5.1.1 <c@example.net>: unknown"})
        pers = [SIMPLE_PERS, {"to": [{"email": "c@example.net"}]}, SIMPLE_PERS]
        res = self.send(self.url(srv), SIMPLE, pers, ("--tls", "none", "--max-conn", "1"))
        self.assertEqual([r["status"] for r in res], ["accepted", "permfail", "accepted"], res)
        self.assertIn("unknown", res[1]["error"])
        self.assertEqual(len(srv.messages), 2)
        # curl ends the session after a refusal: two connections, not three.
        self.assertLessEqual(srv.connections, 2)

    def test_partly_refused_recipients_send_nothing(self):
        srv = self.capture({"RCPT <c@example.net>": "450 4.2.0 <c@example.net>: greylisted"})
        pers = [{"to": [{"email": "b@example.net"}, {"email": "c@example.net"}]}]
        r = self.send(self.url(srv), SIMPLE, pers, ("--tls", "none"))[0]
        self.assertEqual((r["status"], r["code"]), ("tempfail", 450), r)
        self.assertEqual(srv.messages, [])

    def test_timed_out_connection_is_not_reused(self):
        # The first message times out waiting for the reply to its body; the
        # second must not read that late reply on the same connection.
        srv = self.capture({"END": "hang"})
        res = self.send(self.url(srv), SIMPLE, [SIMPLE_PERS] * 2,
                        ("--tls", "none", "--max-conn", "1", "--timeout-ms", "700"))
        self.assertEqual([r["status"] for r in res], ["timeout", "timeout"], res)
        self.assertEqual(srv.connections, 2)


@unittest.skipUnless(SMTP_SEND, "SMTP_SEND not set")
class TestSlowRelay(Base):
    """A relay slow to answer the end of the message (libcurl waits for that
    reply with a blocking poll) must hold neither the loop nor the other
    connections."""

    DELAY = 0.2

    def run_stats(self, srv, n, args):
        """Runs smtp_send; returns (results, stats from its stderr)."""
        cmd = [SMTP_SEND, "--url", "smtp://127.0.0.1:%d" % srv.port,
               "--content", self.write("content.json", SIMPLE), "--tls", "none"]
        for i in range(n):
            cmd += ["--pers", self.write("p%d.json" % i, {"to": [{"email": "r%d@example.net" % i}]})]
        out = subprocess.run(cmd + list(args), capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        res = [json.loads(l) for l in out.stdout.decode().splitlines()]
        line = [l for l in out.stderr.decode().splitlines() if l.startswith("stats ")]
        self.assertEqual(len(line), 1, out.stderr.decode())
        return res, json.loads(line[0][6:])

    def test_loop_keeps_ticking_and_connections_overlap(self):
        srv = self.capture(delay=self.DELAY)
        res, st = self.run_stats(srv, 8, ["--max-conn", "8", "--tick-ms", "10"])
        self.assertEqual([r["status"] for r in res], ["accepted"] * 8, res)
        self.assertEqual(len(srv.messages), 8)
        # Eight messages at once finish in about one delay, not eight.
        self.assertGreaterEqual(st["elapsed_ms"], self.DELAY * 1000, st)
        self.assertLess(st["elapsed_ms"], self.DELAY * 1000 * 3, st)
        # The 10 ms timer never stood still for a whole delay: the loop
        # was free while the relay thought (a blocked loop shows one gap
        # of >= 200 ms and a handful of ticks).
        self.assertLess(st["max_gap_ms"], self.DELAY * 1000 / 2, st)
        self.assertGreaterEqual(st["ticks"], int(st["elapsed_ms"] / 10 / 2), st)

    def test_one_connection_waits_for_each_verdict(self):
        # The other side of the same coin: max_connections bounds it.
        srv = self.capture(delay=self.DELAY)
        res, st = self.run_stats(srv, 3, ["--max-conn", "1", "--tick-ms", "10"])
        self.assertEqual([r["status"] for r in res], ["accepted"] * 3, res)
        self.assertGreaterEqual(st["elapsed_ms"], 3 * self.DELAY * 1000, st)
        self.assertLess(st["max_gap_ms"], self.DELAY * 1000 / 2, st)
        self.assertEqual(srv.connections, 1)

    def test_free_aborts_what_is_under_way(self):
        # The verdict would come after 5 s; the route is freed after 300 ms.
        # Every unit still gets a result, a tempfail, from inside the free,
        # and the free does not wait for the relay.
        srv = self.capture(delay=5.0)
        res, st = self.run_stats(srv, 6, ["--max-conn", "4", "--stop-after-ms", "300",
                                          "--timeout-ms", "20000"])
        self.assertEqual([r["status"] for r in res], ["tempfail"] * 6, res)
        self.assertEqual([r["error"] for r in res[:4]],
                         ["aborted before the relay answered"] * 4, res)
        self.assertLess(st["free_ms"], 1000, st)
        self.assertLess(st["elapsed_ms"], 2000, st)

    def test_free_from_inside_a_callback(self):
        # The first unit fails at once (no recipient); its callback frees
        # the route while three slow messages are under way.
        srv = self.capture(delay=5.0)
        cmd = [SMTP_SEND, "--url", "smtp://127.0.0.1:%d" % srv.port,
               "--content", self.write("content.json", SIMPLE), "--tls", "none",
               "--max-conn", "4", "--timeout-ms", "20000", "--free-on-first",
               "--pers", self.write("bad.json", {"to": []})]
        for i in range(3):
            cmd += ["--pers", self.write("p%d.json" % i, SIMPLE_PERS)]
        out = subprocess.run(cmd, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        res = [json.loads(l) for l in out.stdout.decode().splitlines()]
        self.assertEqual([r["status"] for r in res],
                         ["permfail", "tempfail", "tempfail", "tempfail"], res)
        st = json.loads(out.stderr.decode().split("stats ", 1)[1])
        self.assertLess(st["free_ms"], 1000, st)


@unittest.skipUnless(SMTP_SEND and SMTP_SINK, "SMTP_SEND or SMTP_SINK not set")
class TestSmtpSink(Base):
    """Postfix's smtp-sink as the relay."""

    def sink(self, *opts):
        """Starts smtp-sink on a free port; returns (process, port, dump dir)."""
        dump = os.path.join(self.tmp.name, "dump")
        os.makedirs(dump, exist_ok=True)
        os.chmod(self.tmp.name, 0o755)
        os.chmod(dump, 0o777)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        for _ in range(10):
            port = free_port()
            p = subprocess.Popen([SMTP_SINK, "-v", *user, "-d", dump + "/%H%M%S.", *opts,
                                  "127.0.0.1:%d" % port, "64"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self.sink_ready(p, port):
                self.addCleanup(self.sink_stop, p)
                return p, port, dump
            self.sink_stop(p)
        self.fail("smtp-sink did not start")

    def sink_ready(self, p, port):
        """Reads smtp-sink's log until it binds, then connects once it listens."""
        buf = b""
        while b"trying..." not in buf:
            r, _, _ = select.select([p.stderr], [], [], 10)
            chunk = os.read(p.stderr.fileno(), 4096) if r else b""
            if not chunk:
                return False
            buf += chunk
        if b"fatal" in buf:
            return False
        # Between "trying..." and listen() there are two system calls; a
        # refused attempt means we were inside them, or the port was taken
        # (smtp-sink then exits, which the loop notices).
        for _ in range(100000):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                self.sink_log = b""
                return True
            except ConnectionRefusedError:
                if p.poll() is not None:
                    return False
        return False

    def sink_stop(self, p):
        if p.poll() is None:
            p.terminate()
        self.sink_log = p.stderr.read()
        p.wait()

    def connections(self, p):
        self.sink_stop(p)
        # One line per session, our readiness probe included.
        return self.sink_log.count(b"connect (AF_INET") - 1

    def test_rich_message_and_reuse(self):
        p, port, dump = self.sink()
        res = self.send("smtp://127.0.0.1:%d" % port, CONTENT, [PERS] * 3,
                        ["--tls", "none", "--max-conn", "1", "--x-smtpapi"])
        self.assertEqual([r["status"] for r in res], ["accepted"] * 3, res)
        self.assertEqual(self.connections(p), 1)
        files = sorted(os.listdir(dump))
        self.assertEqual(len(files), 3)
        with open(os.path.join(dump, files[0]), "rb") as f:
            raw = f.read()
        m = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
        self.assertEqual(str(m["Subject"]), "件名：テスト配信 花子")
        self.assertEqual(m["To"].addresses[0].display_name, "田中 花子")
        text = next(m.iter_parts()).get_body(("plain",))
        self.assertEqual(text.get_content().replace("\r\n", "\n"), TEXT.replace("-name-", "花子"))
        atts = list(m.iter_attachments())
        self.assertEqual(atts[0].get_content(), BIN)
        self.assertIn(b"X-Rcpt-Args: <hidden@example.org>", raw)

    def test_soft_reject_is_tempfail(self):
        p, port, _ = self.sink("-r", "rcpt")
        r = self.send("smtp://127.0.0.1:%d" % port, SIMPLE, [SIMPLE_PERS], ["--tls", "none"])[0]
        self.assertEqual(r["status"], "tempfail", r)
        self.assertTrue(400 <= r["code"] < 500, r)

    def test_hard_reject_is_permfail(self):
        p, port, _ = self.sink("-f", "rcpt")
        r = self.send("smtp://127.0.0.1:%d" % port, SIMPLE, [SIMPLE_PERS], ["--tls", "none"])[0]
        self.assertEqual(r["status"], "permfail", r)
        self.assertTrue(500 <= r["code"] < 600, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)

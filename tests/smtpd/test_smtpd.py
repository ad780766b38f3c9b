#!/usr/bin/env python3
"""The SMTP intake against real clients: Python's smtplib and raw sockets for
the protocol edges, STARTTLS with a private CA made by the openssl command,
AUTH against a users file, kill -9 after 250, and delivery of what it took
to the fake SendGrid.

usage: test_smtpd.py WARMUPD FAKE_SENDGRID [unittest arguments]
"""
import base64
import crypt
import json
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "smtp"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for, read_port, unstuff  # noqa: E402
from test_smtp import Capture  # noqa: E402

WARMUPD = None
FAKE = None
TOKEN = "tok-Smtpd-8e2f1c7a90b3d4651e0f"
API_KEY = "SG.Smtpd-1c9e4b7a2d0f8e3651a4.p2Wq"
PASSWORD = "Corr3ct-horse-battery"

JP_MESSAGE = (b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <news@example.com>\r\n"
              b"To: <a@example.jp>\r\n"
              b"Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n"
              b"Message-ID: <m1@example.com>\r\n"
              b"MIME-Version: 1.0\r\n"
              b"Content-Type: text/plain; charset=ISO-2022-JP\r\n"
              b"Content-Transfer-Encoding: 7bit\r\n"
              b"\r\n"
              b"\x1b$B$3$s$K$A$O\x1b(B\r\n"
              b"..a line that starts with a dot\r\n")


def plain(subject="hello", body=b"hi there\r\n", extra=b""):
    return (b"From: News <news@example.com>\r\nTo: <x@example.jp>\r\nSubject: " +
            subject.encode() + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n" + extra + b"\r\n" + body)


class Client:
    """A raw SMTP client: exact bytes out, whole replies in."""

    def __init__(self, port, source="127.0.0.1"):
        self.s = socket.socket()
        self.s.settimeout(30)
        self.s.bind((source, 0))
        self.s.connect(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def read(self):
        """One reply: (code, [lines])."""
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return (None, lines)
            lines.append(line.decode("latin-1").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return (int(line[:3]), lines)

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line)
        return self.read()

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.s.close()


class SmtpdTest(warmuptest.ProcTestCase):
    prefix = "warmupd-smtpd-"

    def start(self, smtp_extra="", paused=False, extra="", route=None):
        self.fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(self.fake)
        self.write("schedule.csv", "# test\nday,cap\n1,1000\n2,1000\n")
        if route is None:
            route = f"""type = sendgrid
url = http://127.0.0.1:{self.fake.port}
api_key_env = WARMUP_TEST_KEY"""
        self.conf = self.write("warmupd.conf", f"""[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = defer

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
{route}

[smtp]
address = 127.0.0.1:0
hostname = mx.test.example
{smtp_extra}
{extra}
""")
        self.daemon(paused)

    def daemon(self, paused=False):
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        self.smtp_port_file = os.path.join(self.dir, "smtp.port")
        try:
            os.unlink(self.smtp_port_file)
        except FileNotFoundError:
            pass
        d = warmuptest.Warmupd(WARMUPD, self.dir, self.conf, env, TOKEN)
        d.argv = d.argv + ["--smtp-port-file", self.smtp_port_file]
        d.stop()
        d.start()
        self.procs.append(d)
        self.d = d
        self.port = read_port(self.smtp_port_file, d.proc)
        if paused:
            st, _, b = d.request("POST", "/v1/pause", {"route": "new", "who": "test"})
            self.assertEqual(st, 200, b)
        return d

    def client(self, **kw):
        c = Client(self.port, **kw)
        code, lines = c.read()
        self.assertEqual(code, 220, lines)
        self.assertIn("mx.test.example", lines[0])
        return c

    def send_raw(self, c, rcpts, data, mail_from="news@example.com"):
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % mail_from)[0], 250)
        for r in rcpts:
            self.assertEqual(c.cmd("RCPT TO:<%s>" % r)[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        return c.cmd(data + b".\r\n")

    def stored(self):
        """(raw, mail_from, [recipients]) of every content; the daemon stops."""
        self.d.stop()
        db = sqlite3.connect(os.path.join(self.dir, "store.db"))
        try:
            out = []
            for cid, raw, mf in db.execute("SELECT id, raw, mail_from FROM contents"):
                rc = [json.loads(p)["to"][0]["email"] for (p,) in db.execute(
                    "SELECT personalization FROM units WHERE content_id = ?", (cid,))]
                out.append((raw, mf, rc))
            return out
        finally:
            db.close()

    # --- tests ---------------------------------------------------------------

    def test_delivery_pipelined(self):
        self.start()
        c = self.client()
        # everything in one write: PIPELINING
        c.send(b"EHLO client.example\r\nMAIL FROM:<news@example.com> SIZE=500\r\n"
               b"RCPT TO:<a@example.jp>\r\nRCPT TO:<b@gmail.com>\r\nDATA\r\n")
        code, ehlo = c.read()
        self.assertEqual(code, 250)
        for ext in ("PIPELINING", "SIZE 31457280", "8BITMIME", "SMTPUTF8",
                    "ENHANCEDSTATUSCODES"):
            self.assertTrue(any(l[4:] == ext for l in ehlo), (ext, ehlo))
        self.assertFalse(any("STARTTLS" in l for l in ehlo), "no certificate, no STARTTLS")
        self.assertEqual([c.read()[0] for _ in range(4)], [250, 250, 250, 354])
        code, lines = c.cmd(JP_MESSAGE + b".\r\n")
        self.assertEqual(code, 250, lines)
        self.assertIn("queued as", lines[0])
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()
        recs = wait_for(lambda: len(self.fake.sent_recipients()) == 2 and self.fake.records(),
                        "both recipients at the fake SendGrid")
        body = recs[0]["body"] if "body" in recs[0] else recs[0]
        self.assertEqual(body["subject"], "こんにちは")
        self.assertEqual(body["from"]["email"], "news@example.com")
        self.assertIn("こんにちは", body["content"][0]["value"])
        self.assertEqual(sorted(self.fake.sent_recipients()), ["a@example.jp", "b@gmail.com"])
        self.assertEqual(self.d.status()["intake"]["smtp_accepted"], 1)
        # byte for byte in the store, after dot-unstuffing
        (raw, mf, rc), = self.stored()
        self.assertEqual(raw, JP_MESSAGE.replace(b"\r\n..a line", b"\r\n.a line"))
        self.assertEqual(mf, "news@example.com")
        self.assertEqual(sorted(rc), ["a@example.jp", "b@gmail.com"])
        # stored once: the v3 body kept beside it has no copy of the text
        # (the API route made its content from the raw message, above)
        db = sqlite3.connect(os.path.join(self.dir, "store.db"))
        (stored_body,), = db.execute("SELECT body FROM contents").fetchall()
        db.close()
        stored_body = json.loads(stored_body)
        self.assertEqual(stored_body["subject"], "こんにちは")
        self.assertNotIn("content", stored_body)
        self.assertNotIn("attachments", stored_body)

    def test_end_during_the_wait(self):
        """A client that sends its message and its end at once (the input
        arrives while the message is converted and committed) gets every
        answer it earned (to what it pipelined after the message too), then
        the close; every message is kept."""
        self.start(paused=True)
        sent = 0
        for tail in (b"QUIT\r\n", b"NOOP\r\n"):
            c = self.client()
            self.assertEqual(c.cmd("EHLO client.example")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<news@example.com>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<a@example.jp>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(plain(body=b"line\r\n" * 200) + b".\r\n" + tail)
            c.s.shutdown(socket.SHUT_WR)
            code, lines = c.read()
            self.assertEqual(code, 250, lines)
            self.assertIn("queued as", lines[0])
            sent += 1
            self.assertEqual(c.read()[0], 221 if tail.startswith(b"QUIT") else 250)
            self.assertEqual(c.read(), (None, []), "closed after the answers")
            c.close()
        self.assertEqual(self.d.status()["intake"]["smtp_accepted"], sent)
        self.assertEqual(len(self.stored()), sent)

    def test_x_smtpapi_send_at(self):
        self.start()
        later = int(time.time()) + 3600
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("app.example")
            s.sendmail("news@example.com", ["held@example.jp"], plain(
                extra=b'X-SMTPAPI: {"send_at": %d}\r\n' % later))
            s.sendmail("news@example.com", ["now@example.jp"], plain())
            # More than 72 hours ahead: refused, as the HTTP intake refuses it.
            with self.assertRaises(smtplib.SMTPDataError) as e:
                s.sendmail("news@example.com", ["far@example.jp"], plain(
                    extra=b'X-SMTPAPI: {"send_at": %d}\r\n' % (later + 72 * 3600)))
            self.assertEqual(e.exception.smtp_code, 554)
            self.assertIn(b"72 hours", e.exception.smtp_error)
        wait_for(lambda: self.fake.sent_recipients() == ["now@example.jp"], "the unheld one sent")
        q = self.d.status()["queue"]
        self.assertEqual((q["sent"], q["queued"]), (1, 1))

    def test_smtplib_and_null_sender(self):
        self.start(paused=True)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("app.example")
            refused = s.sendmail("", ["x@example.jp"], plain())
            self.assertEqual(refused, {})
        (raw, mf, rc), = self.stored()
        self.assertEqual(mf, "")
        self.assertEqual(rc, ["x@example.jp"])

    def test_protocol_errors_keep_serving(self):
        self.start("max_errors = 50")
        c = self.client()
        other = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp>")[0], 503)     # before HELO
        self.assertEqual(c.cmd("EHLO")[0], 501)                   # no name
        self.assertEqual(c.cmd("EHLO client.example")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<a@b.jp>")[0], 503)       # before MAIL
        self.assertEqual(c.cmd("DATA")[0], 503)
        self.assertEqual(c.cmd("FOO bar")[0], 500)
        self.assertEqual(c.cmd("VRFY root")[0], 502)
        self.assertEqual(c.cmd("MAIL FROM:a@b.jp")[0], 501)       # no brackets
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp> RET=FULL")[0], 555)
        self.assertEqual(c.cmd(b"NOOP\n")[0], 500)                # bare LF
        self.assertEqual(c.cmd(b"NO\0OP\r\n")[0], 500)            # NUL
        code, lines = c.cmd(b"NOOP " + b"x" * 1200 + b"\r\n")     # over 1000 octets
        self.assertEqual(code, 500)
        self.assertIn("too long", lines[0])
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp>")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp>")[0], 503)     # nested
        self.assertEqual(c.cmd("RCPT TO:<not an address>")[0], 501)
        self.assertEqual(c.cmd("DATA")[0], 554)                   # no recipients
        self.assertEqual(c.cmd("RSET")[0], 250)
        # the other client was served all along
        self.assertEqual(other.cmd("EHLO other.example")[0], 250)
        self.assertEqual(other.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        other.close()
        c.close()

    def test_too_many_errors(self):
        self.start("max_errors = 3")
        c = self.client()
        codes = [c.cmd("BAD%d" % i)[0] for i in range(4)]
        self.assertEqual(codes[:3], [500, 500, 500])
        code, lines = c.read() if codes[3] == 500 else (codes[3], [])
        self.assertEqual(code, 421, (codes, lines))
        self.assertTrue(c.closed())
        c.close()

    def test_sizes_and_recipients(self):
        self.start("max_size = 2KB\nmax_recipients = 3", paused=True)
        c = self.client()
        c.cmd("EHLO client.example")
        code, lines = c.cmd("MAIL FROM:<a@b.jp> SIZE=999999")
        self.assertEqual(code, 552, lines)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp>")[0], 250)
        for i in range(3):
            self.assertEqual(c.cmd("RCPT TO:<r%d@example.jp>" % i)[0], 250)
        code, lines = c.cmd("RCPT TO:<r9@example.jp>")
        self.assertEqual(code, 452, lines)
        self.assertIn("4.5.3", lines[0])
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, lines = c.cmd(plain(body=b"0123456789abcdef\r\n" * 400) + b".\r\n")
        self.assertEqual(code, 552, lines)
        # the connection is kept, and the next message goes
        self.assertEqual(c.cmd("NOOP")[0], 250)
        code, lines = self.send_raw(c, ["ok@example.jp"], plain())
        self.assertEqual(code, 250, lines)
        # bare LF inside a message: refused at the end, session kept
        code, lines = self.send_raw(c, ["ok@example.jp"], plain(body=b"one\ntwo\r\n"))
        self.assertEqual(code, 554, lines)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()
        stored = self.stored()
        self.assertEqual([rc for _, _, rc in stored], [["ok@example.jp"]])

    def test_suppressed_recipient(self):
        self.start(extra="[suppress]\nmode = reject", paused=True)
        st, _, b = self.d.request("POST", "/v1/suppressions",
                                  {"emails": ["gone@example.jp"], "reason": "bounce"})
        self.assertEqual(st, 200, b)
        c = self.client()
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<a@b.jp>")
        code, lines = c.cmd("RCPT TO:<gone@example.jp>")
        self.assertEqual(code, 550, lines)
        self.assertIn("5.1.1", lines[0])
        self.assertIn("bounce", lines[0])
        self.assertEqual(c.cmd("RCPT TO:<here@example.jp>")[0], 250)
        c.close()

    def test_idle_timeout(self):
        self.start("timeout = 1s")
        c = self.client()
        self.assertEqual(c.cmd("EHLO client.example")[0], 250)
        # nothing more: the server ends the session with 421
        code, lines = c.read()
        self.assertEqual(code, 421, lines)
        self.assertIn("timeout", lines[0])
        self.assertTrue(c.closed())
        c.close()

    def test_suppressed_recipient_dropped(self):
        # [suppress] mode drop (the default): 250, and nothing goes to it
        self.start(paused=True)
        st, _, b = self.d.request("POST", "/v1/suppressions",
                                  {"emails": ["gone@example.jp"], "reason": "spamreport"})
        self.assertEqual(st, 200, b)
        c = self.client()
        c.cmd("EHLO client.example")
        code, lines = self.send_raw(c, ["gone@example.jp", "here@example.jp"], plain())
        self.assertEqual(code, 250, lines)
        code, lines = self.send_raw(c, ["gone@example.jp"], plain())
        self.assertEqual(code, 250, lines)  # taken, nothing kept
        c.close()
        self.assertEqual([rc for _, _, rc in self.stored()], [["here@example.jp"]])

    def test_connection_limit(self):
        self.start("max_connections = 2")
        a, b = self.client(), self.client()
        c = Client(self.port)
        code, lines = c.read()
        self.assertEqual(code, 421, lines)
        self.assertTrue(c.closed())
        c.close()
        a.cmd("QUIT")
        wait_for(a.closed, "the first session closed")
        d = self.client()  # a slot is free again
        self.assertEqual(d.cmd("NOOP")[0], 250)
        for x in (a, b, d):
            x.close()

    def test_auth_required_from_other_networks(self):
        users = self.write("users", "app:%s\n" % crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)))
        # loopback is not in networks: only AUTH lets a client send
        self.start("networks = 10.0.0.0/8\nusers_file = %s" % users, paused=True)
        c = self.client()
        code, ehlo = c.cmd("EHLO client.example")
        self.assertTrue(any("AUTH PLAIN LOGIN" in l for l in ehlo), ehlo)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp>")[0], 530)
        bad = base64.b64encode(b"\0app\0wrong").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + bad)[0], 535)
        self.assertEqual(c.cmd("AUTH LOGIN")[0], 334)
        self.assertEqual(c.cmd(base64.b64encode(b"app").decode())[0], 334)
        code, lines = c.cmd(base64.b64encode(PASSWORD.encode()).decode())
        self.assertEqual(code, 235, lines)
        code, lines = self.send_raw(c, ["x@example.jp"], plain())
        self.assertEqual(code, 250, lines)
        c.close()
        self.assertNotIn(PASSWORD, self.d.logtext())
        self.assertEqual(self.d.status()["intake"]["smtp_auth_failures"], 1)

    def test_starttls_required(self):
        if not shutil.which("openssl"):
            self.skipTest("no openssl command")
        pki = warmuptest.make_pki(os.path.join(self.dir, "pki"))
        users = self.write("users", "app:%s\n" % crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)))
        self.start("tls = required\ntls_cert_file = pki/mx.pem\ntls_key_file = pki/mx.key\n"
                   "networks = 10.0.0.0/8\nusers_file = %s" % users, paused=True)
        c = self.client()
        code, ehlo = c.cmd("EHLO client.example")
        self.assertTrue(any(l[4:] == "STARTTLS" for l in ehlo), ehlo)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.jp>")[0], 530)
        # input pipelined after STARTTLS is thrown away, not read inside TLS
        c.send(b"STARTTLS\r\nNOOP\r\n")
        self.assertEqual(c.read()[0], 220)
        c.close()
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("client.example")
            s.starttls(context=ctx)
            s.ehlo("client.example")
            self.assertIn("auth", s.esmtp_features)
            self.assertNotIn("starttls", s.esmtp_features)
            s.login("app", PASSWORD)
            self.assertEqual(s.sendmail("news@example.com", ["t@example.jp"], plain()), {})
        (raw, mf, rc), = self.stored()
        self.assertEqual(rc, ["t@example.jp"])

    def test_byte_for_byte_to_an_smtp_route(self):
        # Through the intake and out of an SMTP route: the bytes the relay
        # gets, dot-unstuffed, are the bytes the client sent (an app's DKIM
        # signature survives); the envelope is the client's.
        relay = Capture()
        self.addCleanup(relay.stop)
        self.start(route=f"type = smtp\nurl = smtp://127.0.0.1:{relay.port}\ntls = none")
        msg = (b"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=example.com;\r\n"
               b" s=sel; h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
               b" b=c2lnbmF0dXJlIGJ5dGVz\r\n" + JP_MESSAGE +
               b".\r\n"  # a line that is one dot (stuffed on the wire: "..")
               b"trailing   blanks \t\r\n"
               b"\xe6\x97\xa5\xe6\x9c\xac 8-bit\r\n")
        wire = msg.replace(b"\r\n.", b"\r\n..")
        c = self.client()
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL FROM:<bounce@example.com> BODY=8BITMIME")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<one@example.jp>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, lines = c.cmd(wire + b".\r\n")
        self.assertEqual(code, 250, lines)
        c.close()
        got = wait_for(lambda: relay.messages, "the message at the relay")[0]
        self.assertEqual(unstuff(got["data"]), msg)
        self.assertIn("bounce@example.com", got["from"])
        self.assertEqual([r.strip("<>") for r in got["rcpt"]], ["one@example.jp"])

    def test_commits_spaced(self):
        # [store] commit_every at its longest: the first message is committed
        # at once; the next ones come within the second after a commit, so
        # each waits for the held commit (its timer) and still gets its 250
        # only once it is in the store.
        self.start(paused=True, extra="[store]\ncommit_every = 1s\n")
        c = self.client()
        c.cmd("EHLO client.example")
        for i in range(3):
            code, lines = self.send_raw(c, ["s%d@example.jp" % i], plain(subject="s%d" % i))
            self.assertEqual(code, 250, lines)
        # killed without a chance to commit: what got 250 is on disk already
        os.kill(self.d.proc.pid, signal.SIGKILL)
        self.d.proc.wait()
        c.close()
        self.assertEqual(sorted(rc for (_, _, rc) in self.stored()),
                         [["s0@example.jp"], ["s1@example.jp"], ["s2@example.jp"]])

    def test_kill9_after_250(self):
        self.start(paused=True)
        c = self.client()
        c.cmd("EHLO client.example")
        accepted = []
        for i in range(5):
            code, lines = self.send_raw(c, ["k%d@example.jp" % i], plain(subject="k%d" % i))
            self.assertEqual(code, 250, lines)
            accepted.append("k%d@example.jp" % i)
        # one more in DATA when the process dies: never answered, may be lost
        c.cmd("MAIL FROM:<a@b.jp>")
        c.cmd("RCPT TO:<late@example.jp>")
        c.cmd("DATA")
        c.send(plain()[:40])
        os.kill(self.d.proc.pid, signal.SIGKILL)
        self.d.proc.wait()
        c.close()
        got = sorted(r for _, _, rcs in self.stored() for r in rcs)
        self.assertEqual(got, accepted)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_smtpd.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

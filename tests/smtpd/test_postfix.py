#!/usr/bin/env python3
"""warmupd behind a real Postfix, and swaks against it: the SMTP intake as
the teams it is for meet it.

usage: test_postfix.py WARMUPD FAKE_SENDGRID [unittest arguments]

A private Postfix instance (warmuptest.Postfix: its own config_directory,
queue_directory and log under the test's temporary directory, one smtpd on
a free loopback port, never /etc/postfix or port 25) relays with
`relayhost = [127.0.0.1]:<warmupd's SMTP port>` and the seed's header_checks
line, which prepends an X-SMTPAPI header that turns SendGrid's tracking off.
It is fed with Postfix's sendmail(1) and with smtp-source(1).  warmupd
sends today's small cap to fake-sendgrid (v3) and, with overflow = old, the
rest to Capture, an SMTP server that records each transaction.  Then:

- every recipient arrives exactly once, on one route or the other, and the
  new route carries exactly the cap;
- Postfix's queue empties and its log has one status=sent per recipient,
  relayed to warmupd's port;
- on the v3 route the header's filters arrive as tracking_settings with
  enable false;
- on the old route the message is the stored one (as Postfix handed it over,
  its Received header first) byte for byte, but for the X-SMTPAPI field,
  which is gone.

The seed's remote set-up is run too: Postfix with smtp_tls_security_level =
encrypt (verifying warmupd's certificate against a private CA) and SASL
PLAIN, against warmupd with tls = required and a users file.  And swaks
(STARTTLS, AUTH PLAIN, PIPELINING, an attachment) against warmupd directly.

Exits 77 (skipped, for meson) with the reason when a private Postfix cannot
run here: not root, or Postfix's programs or its user and group missing.
"""
import base64
import crypt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "smtp"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for, read_port, unstuff  # noqa: E402
from test_smtp import Capture  # noqa: E402

WARMUPD = None
FAKE = None
POSTFIX_UNAVAILABLE = warmuptest.postfix_unavailable()
TOKEN = "tok-Postfix-4b7e0c19a3d2f865e1c0"
API_KEY = "SG.Postfix-9d3a6e1b0c7f2a485e6d.Qw3r"
PASSWORD = "Batt3ry-staple-horse-Correct"

# The seed's header_checks line (Postfix regexp table), byte for byte.
TRACKING_OFF = ('{"filters":{"subscriptiontrack":{"settings":{"enable":0}},'
                '"clicktrack":{"settings":{"enable":0}},"opentrack":{"settings":{"enable":0}}}}')
HEADER_CHECKS = "/^From:/ PREPEND X-SMTPAPI: %s\n" % TRACKING_OFF


def app_message(i):
    """What an application hands to sendmail: LF line ends, as programs do."""
    return ("From: Shop News <news@example.com>\n"
            "To: <sm%d@example.jp>\n"
            "Subject: Your order %d\n"
            "Message-ID: <order%d@example.com>\n"
            "List-Unsubscribe: <mailto:unsub@example.com?subject=%d>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            "Thank you for order %d.\n"
            ".a line that starts with a dot\n"
            "ご注文ありがとうございます。\n" % (i, i, i, i, i)).encode()


def header_block(raw):
    """(header block with its last CRLF, the rest from the empty line on)."""
    i = raw.index(b"\r\n\r\n")
    return raw[:i + 2], raw[i + 2:]


def without_field(head, name):
    """The header block without every field `name` (continuation lines too)."""
    out, skipping = [], False
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.split(b":", 1)[0].strip().lower() == name.lower()
        if not skipping:
            out.append(line + b"\r\n")
    return b"".join(out)


class PostfixTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warmupd-postfix-")
        self.dir = self._tmp.name
        self.procs = []
        self.pf = None
        self.relay = Capture()
        self.addCleanup(self.relay.stop)

    def tearDown(self):
        failed = warmuptest.has_failed(self)
        if self.pf is not None:
            self.pf.stop()
            if failed:
                sys.stderr.write("\n--- Postfix maillog (tail) ---\n%s\n--- postqueue -p ---\n%s\n"
                                 % (self.pf.logtext()[-6000:], self.pf.queue_listing()))
        for p in reversed(self.procs):
            p.stop()
        if failed:
            warmuptest.dump_logs(self.procs)
        self._tmp.cleanup()

    def write(self, name, text, mode=0o600):
        return warmuptest.write_file(self.dir, name, text, mode)

    def daemon(self, cap, smtp_extra="", old=True):
        """fake-sendgrid, then warmupd: today's cap `cap` (burst = day), the
        rest to Capture (overflow = old); sets self.port, its SMTP port."""
        self.fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(self.fake)
        self.write("schedule.csv", "# test\nday,cap\n1,%d\n2,%d\n" % (cap, cap))
        old_route = f"""[route old]
type = smtp
url = smtp://127.0.0.1:{self.relay.port}
tls = none
timeout = 10s
max_connections = 2
""" if old else ""
        conf = self.write("warmupd.conf", f"""[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = {"old" if old else "defer"}

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{self.fake.port}
api_key_env = WARMUP_TEST_KEY

{old_route}
[smtp]
address = 127.0.0.1:0
hostname = mx.test.example
{smtp_extra}
""")
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        port_file = os.path.join(self.dir, "smtp.port")
        d = warmuptest.Warmupd(WARMUPD, self.dir, conf, env, TOKEN,
                               ["--smtp-port-file", port_file])
        self.procs.append(d)
        self.d = d
        self.port = read_port(port_file, d.proc)
        return d

    def postfix(self, main=""):
        if POSTFIX_UNAVAILABLE:
            self.skipTest(POSTFIX_UNAVAILABLE)
        self.write("header_checks", HEADER_CHECKS, 0o644)
        self.pf = warmuptest.Postfix(self.dir, "[127.0.0.1]:%d" % self.port,
                                     "header_checks = regexp:%s/header_checks\n%s" % (
                                         self.dir, main))
        return self.pf

    def postfix_done(self):
        """Waits until Postfix's queue is empty; fails at once if warmupd
        died meanwhile (Postfix would only defer and retry)."""
        def done():
            if self.d.proc.poll() is not None:
                raise AssertionError("warmupd exited with %d" % self.d.proc.returncode)
            return self.pf.queue_empty()
        wait_for(done, "Postfix's queue to empty", timeout=90, interval=0.2)

    def stored_raw(self):
        """{recipient: (raw message, envelope sender)} of what warmupd took."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, "store.db"), uri=True)
        try:
            out = {}
            for raw, mf, p in db.execute("SELECT c.raw, c.mail_from, u.personalization"
                                         " FROM units u JOIN contents c ON c.id = u.content_id"):
                out[json.loads(p)["to"][0]["email"]] = (raw, mf)
            return out
        finally:
            db.close()

    def settled(self, n):
        """Waits until warmupd has sent n units and holds none; its status."""
        def done():
            st = self.d.status()
            q = st["queue"]
            return st if q["sent"] == n and q["queued"] == 0 and q["inflight"] == 0 else None
        return wait_for(done, "%d units sent by warmupd" % n, timeout=90, interval=0.1)

    def old_messages(self):
        """{recipient: (envelope sender, dot-unstuffed data)} at the old relay."""
        out = {}
        for m in list(self.relay.messages):
            self.assertEqual(len(m["rcpt"]), 1, m["rcpt"])
            out[m["rcpt"][0].strip("<>")] = (m["from"], unstuff(m["data"]))
        return out

    def check_tracking_off(self, body):
        self.assertEqual(body.get("tracking_settings"), {
            "click_tracking": {"enable": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False}}, body)

    # --- tests ---------------------------------------------------------------

    def test_sendmail_and_smtp_source_through_postfix(self):
        cap = 4
        self.daemon(cap)
        pf = self.postfix()
        sm = ["sm%d@example.jp" % i for i in range(5)]
        for i, r in enumerate(sm):
            pf.sendmail("news@example.com", [r], app_message(i))
        # 12 messages in 3 parallel sessions; -N numbers the recipients
        # 1ss@, 2ss@, ... (the To header says ss@ in every one).
        pf.smtp_source("-s", "3", "-m", "12", "-l", "1500", "-N",
                       "-f", "src@example.com", "-t", "ss@example.net")
        ss = ["%dss@example.net" % i for i in range(1, 13)]
        everyone = sorted(sm + ss)

        self.postfix_done()
        sent = pf.deliveries("sent")
        self.assertEqual(sorted(to for to, _ in sent), everyone, pf.logtext()[-3000:])
        for _, line in sent:
            self.assertIn("relay=127.0.0.1[127.0.0.1]:%d," % self.port, line)
            self.assertIn("(250 2.0.0 Ok: queued as ", line)
        self.assertEqual(pf.deliveries("deferred"), [])
        self.assertEqual(pf.deliveries("bounced"), [])

        st = self.settled(len(everyone))
        self.assertEqual(st["intake"]["smtp_accepted"], len(everyone))
        self.assertEqual(st["routes"]["new"]["accepted"], cap)
        self.assertEqual(st["routes"]["old"]["accepted"], len(everyone) - cap)
        wait_for(lambda: len(self.old_messages()) == len(everyone) - cap,
                 "the old relay's messages", timeout=30)
        new = self.fake.sent_recipients()
        old = self.old_messages()
        self.assertEqual(len(new), cap)
        self.assertEqual(sorted(new + list(old)), everyone)

        # v3: the header's filters became tracking_settings, and what the
        # application wrote survived the conversion.
        for rec in self.fake.records():
            body = rec["body"]
            self.check_tracking_off(body)
            self.assertNotIn("X-SMTPAPI", json.dumps(body.get("headers", {})))
            for p in body["personalizations"]:
                to = p["to"][0]["email"]
                if to.startswith("sm"):
                    i = int(to[2])
                    self.assertEqual(body["from"], {"email": "news@example.com",
                                                    "name": "Shop News"})
                    self.assertEqual(body["subject"], "Your order %d" % i)
                    self.assertIn("ご注文ありがとうございます。", body["content"][0]["value"])
                    self.assertIn(".a line that starts", body["content"][0]["value"])
                    self.assertEqual(body["headers"]["Message-ID"], "<order%d@example.com>" % i)
                else:
                    self.assertEqual(body["from"]["email"], "src@example.com")

        # The old route: the stored bytes (Postfix's Received first, then the
        # prepended X-SMTPAPI, then the message) less the X-SMTPAPI field.
        stored = self.stored_raw()
        self.assertEqual(sorted(stored), everyone)
        for to, (mail_from, data) in old.items():
            raw, env_from = stored[to]
            # sendmail's: "Received: by pf... (Postfix, from userid 0)";
            # smtpd's: "Received: from vm (unknown [127.0.0.1])\r\n\tby pf..."
            self.assertTrue(raw.startswith(b"Received: "), raw[:200])
            self.assertIn(b"by pf.test.example (Postfix", raw.split(b"\r\nX-SMTPAPI:")[0])
            self.assertIn(b"\r\nX-SMTPAPI: " + TRACKING_OFF.encode() + b"\r\nFrom: ", raw)
            self.assertEqual(mail_from.split(" ")[0], "<%s>" % env_from)
            head, rest = header_block(data)
            self.assertNotIn(b"x-smtpapi", head.lower(), head)
            rhead, rrest = header_block(raw)
            self.assertEqual(head, without_field(rhead, b"X-SMTPAPI"))
            self.assertEqual(rest, rrest)
            self.assertTrue(data.startswith(b"Received: "), data[:200])
            if to.startswith("sm"):
                self.assertIn(".a line that starts with a dot\r\n".encode(), rest)
                self.assertIn("ご注文ありがとうございます。".encode(), rest)

    def test_postfix_encrypt_and_sasl_as_from_another_host(self):
        # The seed's remote set-up: Postfix requires TLS and authenticates;
        # warmupd lets only AUTH send (loopback is not in networks) and
        # refuses MAIL before STARTTLS.
        pki = warmuptest.make_pki(os.path.join(self.dir, "pki"))
        users = self.write("users", "relay:%s\n" % crypt.crypt(
            PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)))
        self.daemon(2, "tls = required\ntls_cert_file = pki/mx.pem\ntls_key_file = pki/mx.key\n"
                       "networks = 10.0.0.0/8\nusers_file = %s" % users)
        pf = self.postfix(f"""smtp_tls_security_level = secure
smtp_tls_secure_cert_match = nexthop
smtp_tls_CAfile = {pki}/ca.pem
smtp_tls_loglevel = 1
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:relay:{PASSWORD}
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
""")
        rcpts = ["tls%d@example.jp" % i for i in range(4)]
        for i, r in enumerate(rcpts):
            pf.sendmail("news@example.com", [r], app_message(i))
        self.postfix_done()
        sent = pf.deliveries("sent")
        self.assertEqual(sorted(to for to, _ in sent), rcpts)
        log = pf.logtext()
        # Verified against the private CA, not just encrypted.
        self.assertIn("Verified TLS connection established to 127.0.0.1[127.0.0.1]:%d"
                      % self.port, log)
        self.settled(len(rcpts))
        self.assertEqual(sorted(self.fake.sent_recipients() + list(self.old_messages())), rcpts)
        st = self.d.status()
        self.assertEqual(st["intake"]["smtp_accepted"], len(rcpts))
        self.assertEqual(st["intake"]["smtp_auth_failures"], 0)
        self.assertNotIn(PASSWORD, self.d.logtext())

    def test_swaks_starttls_auth_pipelining_attachment(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks not installed (tools/setup installs it)")
        pki = warmuptest.make_pki(os.path.join(self.dir, "pki"))
        users = self.write("users", "app:%s\n" % crypt.crypt(
            PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)))
        self.daemon(100, "tls = required\ntls_cert_file = pki/mx.pem\ntls_key_file = pki/mx.key\n"
                         "networks = 10.0.0.0/8\nusers_file = %s" % users, old=False)
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
        att = os.path.join(self.dir, "invoice.pdf")
        with open(att, "wb") as f:
            f.write(pdf)
        argv = ["swaks", "--server", "127.0.0.1", "--port", str(self.port),
                "--ehlo", "app.example", "--tls", "--tls-verify",
                "--tls-ca-path", os.path.join(pki, "ca.pem"),
                "--auth", "PLAIN", "--auth-user", "app", "--auth-password", PASSWORD,
                "--pipeline", "--from", "billing@example.com",
                "--to", "cust1@example.jp,cust2@gmail.com",
                "--header", "Subject: Invoice 42",
                "--body", "Your invoice is attached.",
                "--attach-type", "application/pdf", "--attach", "@" + att]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        lines = out.splitlines()
        # STARTTLS, verified against the private CA, then AUTH inside TLS
        # (swaks marks what goes inside TLS with ~).
        self.assertIn("<-  220 2.0.0 Ready to start TLS", lines)
        self.assertTrue(any(l.startswith("=== TLS started with cipher TLSv1.") for l in lines), out)
        self.assertIn("<~  235 2.7.0 Authentication successful", lines)
        # PIPELINING: MAIL, both RCPT and DATA written before the first reply.
        i = lines.index(" ~> MAIL FROM:<billing@example.com>")
        self.assertEqual(lines[i:i + 8], [
            " ~> MAIL FROM:<billing@example.com>", " ~> RCPT TO:<cust1@example.jp>",
            " ~> RCPT TO:<cust2@gmail.com>", " ~> DATA", "<~  250 2.1.0 Ok",
            "<~  250 2.1.5 Ok", "<~  250 2.1.5 Ok", "<~  354 End data with <CR><LF>.<CR><LF>"],
            out)
        self.assertTrue(any(l.startswith("<~  250 2.0.0 Ok: queued as ") for l in lines), out)
        self.assertNotIn(PASSWORD, self.d.logtext())

        recs = wait_for(lambda: len(self.fake.sent_recipients()) == 2 and self.fake.records(),
                        "both recipients at the fake SendGrid")
        self.assertEqual(sorted(self.fake.sent_recipients()), ["cust1@example.jp",
                                                              "cust2@gmail.com"])
        for rec in recs:
            body = rec["body"]
            self.assertEqual(body["subject"], "Invoice 42")
            self.assertEqual(body["from"]["email"], "billing@example.com")
            self.assertIn("Your invoice is attached.", body["content"][0]["value"])
            atts = body["attachments"]
            self.assertEqual(len(atts), 1, atts)
            self.assertEqual(atts[0]["filename"], "invoice.pdf")
            self.assertEqual(atts[0]["type"], "application/pdf")
            self.assertEqual(base64.b64decode(atts[0]["content"]), pdf)
        st = self.d.status()
        self.assertEqual(st["intake"]["smtp_accepted"], 1)
        self.assertEqual(st["intake"]["smtp_auth_failures"], 0)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_postfix.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2, exit=False)
    if not prog.result.wasSuccessful():
        sys.exit(1)
    if POSTFIX_UNAVAILABLE:
        # meson counts 77 as skipped: the Postfix tests, the point of this
        # file, did not run.
        sys.stderr.write("test_postfix.py: Postfix tests skipped: %s\n" % POSTFIX_UNAVAILABLE)
        sys.exit(77)

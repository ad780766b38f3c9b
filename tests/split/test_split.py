#!/usr/bin/env python3
"""Integration tests of the split: today's cap through the new route, the rest
through the old SMTP relay, with warmupd, fake-sendgrid and SMTP servers as
real processes on loopback.

usage: test_split.py WARMUPD FAKE_SENDGRID [unittest arguments]

The old relay (and, in one test, the new one: SendGrid's SMTP relay role) is
Capture, a small SMTP server in this file that records every transaction, or
Postfix itself relaying to Postfix's smtp-sink.  Every test gets a fresh
temporary directory with its own schedule, config and store.  Processes listen
on port 0 and report it through --port-file; a port for a server that cannot
do that is found by binding a socket and releasing it, with a retry when
someone else takes it first.  Waiting is polling a condition with a deadline,
never a fixed sleep.
"""
import base64
import datetime
import email.parser
import email.policy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import (TZ, today, wait_for, free_port, mail, unstuff)  # noqa: E402

WARMUPD = None
FAKE = None
SMTP_SINK = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink"
                                          if os.path.exists("/usr/sbin/smtp-sink") else None)
POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix"
                                      if os.path.exists("/usr/sbin/postfix") else None)

TOKEN = "tok-Split-5c1e9a77d2b04f36a8e1"
API_KEY = "SG.Split-3e8b41d07c9a2f56b1e4.kP2w"
PASSWORD = "SG.Relay-8a1f0c93e7d24b65a0c3.mQ7z"


def parse(raw):
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)


def header_value(raw, name):
    """The unfolded value of header `name` in a raw message, or None."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    for i, l in enumerate(lines):
        if l.lower().startswith(name.lower() + ":"):
            value = l[len(name) + 1:]
            for cont in lines[i + 1:]:
                if not cont.startswith((" ", "\t")):
                    break
                value += cont
            return value
    return None


# --- processes -----------------------------------------------------------

class Fake(warmuptest.Fake):
    def __init__(self, dir, key=API_KEY, args=()):
        super().__init__(FAKE, dir, key, args=args)


class Daemon(warmuptest.Warmupd):
    """One warmupd process; its stderr is appended to dir/warmupd.log."""

    def __init__(self, dir, config, token=TOKEN):
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY,
                   WARMUP_TEST_RELAY_PW=PASSWORD)
        super().__init__(WARMUPD, dir, config, env, token)


class Capture(warmuptest.SmtpServer):
    """A small SMTP server on 127.0.0.1 that records each transaction.

    Never offers STARTTLS.  With auth=True it advertises AUTH PLAIN and
    accepts user "apikey" with PASSWORD.  With tempfail_every=K it answers
    451 to every Kth DATA command (counted over all connections).  With
    delay > 0 it waits that long before answering the end of a message (a
    relay that takes its time to queue, to keep messages in flight)."""

    def __init__(self, auth=False, tempfail_every=0, delay=0.0):
        super().__init__(CaptureHandler)
        self.auth = auth
        self.tempfail_every = tempfail_every
        self.delay = delay
        self.connections = 0
        self.open_sessions = 0
        self.max_sessions = 0    # most sessions open at once
        self.data_commands = 0
        self.tempfails = 0
        self.messages = []   # dicts: from, rcpt, data, auth_user
        self.commands = []
        self.auth_users = []
        self.serve()

    def recipients(self):
        with self.lock:
            return [r.strip("<>") for m in self.messages for r in m["rcpt"]]


class CaptureHandler(warmuptest.SmtpHandler):
    def handle(self):
        srv = self.server
        with srv.lock:
            srv.open_sessions += 1
            srv.max_sessions = max(srv.max_sessions, srv.open_sessions)
        try:
            self.session()
        except OSError:
            pass  # the client went away (a daemon killed mid-transaction)
        finally:
            with srv.lock:
                srv.open_sessions -= 1

    def session(self):
        srv = self.server
        with srv.lock:
            srv.connections += 1
            srv.conns.append(self.request)
        self.reply("220 capture ESMTP")
        msg = None
        user = None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            with srv.lock:
                srv.commands.append(verb)
            if verb in ("EHLO", "HELO"):
                caps = ["250-capture", "250-PIPELINING", "250-8BITMIME", "250-SIZE 10240000"]
                if srv.auth:
                    caps.append("250-AUTH PLAIN")
                caps.append("250 ENHANCEDSTATUSCODES")
                self.wfile.write(b"".join(c.encode() + b"\r\n" for c in caps))
                self.wfile.flush()
            elif verb == "AUTH":
                u = self.auth(text)
                if u is not None:
                    user = u
                    with srv.lock:
                        srv.auth_users.append(u)
                    self.reply("235 2.7.0 Authentication successful")
                else:
                    self.reply("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                msg = {"from": text[10:].strip(), "rcpt": [], "data": b"", "auth_user": user}
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                if msg is not None:
                    msg["rcpt"].append(text[8:].strip())
                self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                with srv.lock:
                    srv.data_commands += 1
                    refuse = srv.tempfail_every and srv.data_commands % srv.tempfail_every == 0
                    if refuse:
                        srv.tempfails += 1
                if refuse:
                    self.reply("451 4.3.0 Error: queue file write error, try again")
                    msg = None
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    chunk = self.rfile.readline()
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    chunks.append(chunk)
                if srv.delay:
                    # A slow relay, not synchronisation: keeps messages in flight.
                    time.sleep(srv.delay)
                with srv.lock:
                    msg["data"] = b"".join(chunks)
                    srv.messages.append(msg)
                    n = len(srv.messages)
                self.reply("250 2.0.0 Ok: queued as CAP%05d" % n)
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
        """AUTH PLAIN, with or without an initial response: the user name, or
        None when refused."""
        parts = text.split()
        if len(parts) < 2 or parts[1].upper() != "PLAIN":
            return None
        if len(parts) > 2:
            resp = parts[2]
        else:
            self.reply("334 ")
            resp = self.rfile.readline().decode().strip()
        try:
            _, user, pw = base64.b64decode(resp).split(b"\0")
        except ValueError:
            return None
        if user == b"apikey" and pw == PASSWORD.encode():
            return user.decode()
        return None


class SmtpSink:
    """Postfix's smtp-sink on a free port, saving each message under dump/."""

    def __init__(self, dir):
        self.dump = os.path.join(dir, "sink")
        os.makedirs(self.dump, exist_ok=True)
        self.log_path = os.path.join(dir, "smtp-sink.log")
        user = ["-u", "root"] if os.geteuid() == 0 else []
        for _ in range(20):
            port = free_port()
            self.log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([SMTP_SINK, *user, "-d", self.dump + "/%H%M%S.",
                                          "127.0.0.1:%d" % port, "64"],
                                         stdout=self.log, stderr=subprocess.STDOUT)
            self.port = port
            try:
                wait_for(lambda: self._listening(), "smtp-sink listening on %d" % port,
                         timeout=10)
                return
            except AssertionError:
                self.stop()
        raise AssertionError("smtp-sink did not start")

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("smtp-sink exited with %d" % self.proc.returncode)
        # Only a listener owned by our process counts; a connect probe would
        # also succeed against someone else who took the port.
        out = subprocess.run(["ss", "-ltnpH", "sport = :%d" % self.port],
                             capture_output=True, text=True).stdout
        return "pid=%d," % self.proc.pid in out

    def messages(self):
        out = []
        for name in sorted(os.listdir(self.dump)):
            with open(os.path.join(self.dump, name), "rb") as f:
                out.append(f.read())
        return out

    def stop(self):
        warmuptest.stop_process(self.proc)
        self.log.close()


# --- tests ---------------------------------------------------------------

class SplitTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warmupd-split-")
        self.dir = self._tmp.name
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.servers = []
        self.stoppers = []   # run in tearDown, before the directory goes

    def tearDown(self):
        for f in reversed(self.stoppers):
            f()
        for p in reversed(self.procs):
            p.stop()
        for s in self.servers:
            s.stop()
        if warmuptest.has_failed(self):
            warmuptest.dump_logs(self.procs)
        self._tmp.cleanup()

    # --- building blocks ---------------------------------------------------

    def write(self, name, text, mode=0o600):
        return warmuptest.write_file(self.dir, name, text, mode)

    def config(self, new, old=None, cap=40, start=None, overflow="old", log_level="info"):
        """new, old: the bodies of [route new] and [route old] (None: no old)."""
        self.write("schedule.csv", "# test schedule\nday,cap\n" +
                   "".join("%d,%d\n" % (i + 1, cap) for i in range(3)))
        if start is None:
            start = today().isoformat()
        old_section = "" if old is None else "[route old]\n" + old + "\n"
        text = f"""; split test config
[warmup]
schedule = schedule.csv
start = {start}
timezone = {TZ}
burst = day
overflow = {overflow}
after = hold

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
{new}

{old_section}
[backoff]
retry_min = 1s
retry_max = 2s
suspend = 1s

[log]
level = {log_level}
"""
        return self.write("warmupd.conf", text)

    def v3_new(self, fake):
        return ("type = sendgrid\nurl = http://127.0.0.1:%d\napi_key_env = WARMUP_TEST_KEY\n"
                "timeout = 5s\nmax_connections = 4" % fake.port)

    def smtp_route(self, port, tls="none", extra=""):
        return ("type = smtp\nurl = smtp://127.0.0.1:%d\ntls = %s\ntimeout = 5s\n"
                "max_connections = 4\n%s" % (port, tls, extra))

    def fake(self, **kw):
        f = Fake(self.dir, **kw)
        self.procs.append(f)
        return f

    def capture(self, **kw):
        s = Capture(**kw)
        self.servers.append(s)
        return s

    def daemon(self, config):
        d = Daemon(self.dir, config)
        self.procs.append(d)
        return d

    # A mix of ISPs, so that per-ISP figures are exercised too.
    DOMAINS = ["example.com", "gmail.com", "yahoo.co.jp", "outlook.com", "docomo.ne.jp"]
    SPLITS = [1, 3, 10, 1, 25, 7, 1, 20, 12, 20]  # 100 personalizations, 10 requests

    def offer(self, d, splits=None, tag="u", start=0):
        """POSTs one request per entry of splits; returns {msgid: recipients}."""
        offered = {}
        n = start
        for i, k in enumerate(splits or self.SPLITS):
            rcpts = ["%s%03d@%s" % (tag, n + j, self.DOMAINS[(n + j) % len(self.DOMAINS)])
                     for j in range(k)]
            n += k
            st, mid, b = d.send(mail(rcpts, subject="Offer %s%d" % (tag, i)))
            self.assertEqual(st, 202, b)
            self.assertTrue(mid)
            offered[mid] = rcpts
        return offered

    def settled(self, d, sent, queued=0):
        """Waits until the store holds `sent` sent units, `queued` queued, none
        in flight; returns the status."""
        return wait_for(lambda: (lambda s: s if s["queue"]["sent"] == sent and
                                 s["queue"]["queued"] == queued and
                                 s["queue"]["inflight"] == 0 else None)(d.status()),
                        "%d sent, %d queued, none in flight" % (sent, queued))

    def assert_exact_split(self, st, new_rcpts, old_rcpts, everyone, cap):
        n = len(everyone)
        self.assertEqual(len(new_rcpts), cap, "new route carried %d, cap %d" % (len(new_rcpts), cap))
        self.assertEqual(len(set(new_rcpts)), cap, "duplicates on the new route")
        self.assertEqual(len(old_rcpts), n - cap, "old route carried %d of %d" % (len(old_rcpts), n - cap))
        self.assertEqual(len(set(old_rcpts)), n - cap, "duplicates on the old route")
        self.assertEqual(set(new_rcpts) & set(old_rcpts), set(), "sent through both routes")
        self.assertEqual(set(new_rcpts) | set(old_rcpts), set(everyone), "lost or invented")
        # What status says matches what the servers saw.
        self.assertEqual(st["cap"], cap)
        self.assertEqual(st["used"], cap)
        self.assertEqual(st["remaining"], 0)
        self.assertEqual(st["routes"]["new"]["sent"], cap)
        self.assertEqual(st["routes"]["new"]["accepted"], cap)
        self.assertEqual(st["routes"]["old"]["sent"], n - cap)
        self.assertEqual(st["routes"]["old"]["accepted"], n - cap)
        self.assertEqual(st["routes"]["old"]["type"], "smtp")
        self.assertEqual(st["queue"]["failed"], 0)
        # Per ISP: the sum over ISPs is the route's figure, and each ISP's
        # figures match the recipients' domains at the servers.
        isps = st["isps"]
        self.assertEqual(sum(i["new"]["sent"] for i in isps.values()), cap)
        self.assertEqual(sum(i["old"]["sent"] for i in isps.values()), n - cap)
        self.assertEqual(sum(i["new"]["accepted"] for i in isps.values()), cap)
        self.assertEqual(sum(i["old"]["accepted"] for i in isps.values()), n - cap)
        isp_of = {"gmail.com": "google", "yahoo.co.jp": "yahoo", "outlook.com": "microsoft",
                  "docomo.ne.jp": "docomo", "example.com": "other"}
        for route, rcpts in (("new", new_rcpts), ("old", old_rcpts)):
            want = {}
            for r in rcpts:
                isp = isp_of[r.split("@")[1]]
                want[isp] = want.get(isp, 0) + 1
            got = {k: v[route]["sent"] for k, v in isps.items() if v[route]["sent"]}
            self.assertEqual(got, want, "isps.*.%s.sent" % route)

    # --- a: the cap split exactly -----------------------------------------

    def test_a_v3_new_smtp_old_split_exact(self):
        cap = 40
        fake = self.fake()
        old = self.capture()
        d = self.daemon(self.config(self.v3_new(fake), self.smtp_route(old.port), cap=cap))
        offered = self.offer(d)
        everyone = [r for rs in offered.values() for r in rs]
        self.assertEqual(len(everyone), 100)
        st = self.settled(d, 100)
        self.assert_exact_split(st, fake.sent_recipients(), old.recipients(), everyone, cap)
        self.assertEqual(fake.stats()["personalizations"], cap)
        # One message per unit at the relay, each to its own recipient.
        self.assertEqual(len(old.messages), 100 - cap)
        for m in old.messages:
            self.assertEqual(len(m["rcpt"]), 1)
            self.assertEqual(m["from"].split()[0], "<news@example.org>")
            msg = parse(unstuff(m["data"]))
            self.assertEqual(msg["To"].addresses[0].addr_spec, m["rcpt"][0].strip("<>"))
            self.assertTrue(str(msg["Subject"]).startswith("Offer u"))
        # max_connections = 4: never more sessions than that at once.
        self.assertLessEqual(old.max_sessions, 4)

    def test_a2_smtp_sink_as_old_relay(self):
        # The same split with Postfix's smtp-sink as the old relay.
        if not SMTP_SINK:
            self.skipTest("smtp-sink not installed (Debian package postfix)")
        cap = 13
        fake = self.fake()
        sink = SmtpSink(self.dir)
        self.procs.append(sink)
        d = self.daemon(self.config(self.v3_new(fake), self.smtp_route(sink.port), cap=cap))
        offered = self.offer(d, [5, 20, 5])
        everyone = [r for rs in offered.values() for r in rs]
        st = self.settled(d, 30)
        msgs = wait_for(lambda: (lambda m: m if len(m) >= 30 - cap else None)(sink.messages()),
                        "%d messages at smtp-sink" % (30 - cap))
        old_rcpts = [parse(m)["To"].addresses[0].addr_spec for m in msgs]
        self.assert_exact_split(st, fake.sent_recipients(), old_rcpts, everyone, cap)

    # --- b: across a restart ----------------------------------------------

    def restart_run(self, phases, kill9, smtp_new=False):
        """Offers 100 personalizations in phases (lists of personalizations
        per request), stopping the daemon in the middle of each phase but the
        last -- once something of the phase was delivered and more is under
        way -- and starting it again on the same store.  Returns the cap, the
        servers, everything offered, the final status and the log."""
        cap = 40
        # Slow answers on both sides keep sends in flight when the daemon stops.
        if smtp_new:
            fake = self.capture(auth=True, delay=0.2)
            fake.sent_recipients = fake.recipients
            fake.faults = lambda **kw: None
            new = self.smtp_route(fake.port, extra="username = apikey\n"
                                  "password_env = WARMUP_TEST_RELAY_PW\nx_smtpapi = on\n")
        else:
            fake = self.fake()
            fake.faults(slow_rate=1, slow_ms=400)
            new = self.v3_new(fake)
        old = self.capture(delay=0.1)
        d = self.daemon(self.config(new, self.smtp_route(old.port), cap=cap))
        offered = {}
        n = 0
        stops = []
        for i, splits in enumerate(phases):
            before = len(fake.sent_recipients()) + len(old.recipients())
            offered.update(self.offer(d, splits, tag="p%d-" % i, start=n))
            n += sum(splits)
            if i == len(phases) - 1:
                break
            # Requests to the provider go in waves of four (max_connections),
            # so the stop comes between waves.
            wait_for(lambda: len(fake.sent_recipients()) + len(old.recipients()) > before,
                     "phase %d under way" % i)
            if kill9:
                d.kill9()
            else:
                self.assertEqual(d.terminate(), 0, "SIGTERM: exit status")
            stops.append((len(fake.sent_recipients()), len(old.recipients())))
            d.start()
        everyone = [r for rs in offered.values() for r in rs]
        self.assertEqual(len(everyone), 100)
        self.assertEqual(len(set(everyone)), 100)
        fake.faults(slow_rate=0, slow_ms=0)
        st = self.settled(d, 100)
        self.assertEqual(d.terminate(), 0)
        sys.stderr.write("  (at the stops, (provider, relay) had: %s) " % stops)
        return cap, fake, old, everyone, st, d.logtext()

    def test_b1_sigterm_mid_way(self):
        # 30 offered (all within the cap), stop; 40 more (the cap runs out
        # in them), stop; 30 more (all overflow).
        cap, fake, old, everyone, st, log = self.restart_run(
            [[3] * 10, [5] * 8, [10, 5, 15]], kill9=False)
        # A clean stop finishes or requeues what is in flight: nothing twice.
        self.assertNotIn("left in flight by the last run", log)
        self.assert_exact_split(st, fake.sent_recipients(), old.recipients(), everyone, cap)

    def test_b1b_sigterm_with_overflow_under_way(self):
        cap, fake, old, everyone, st, log = self.restart_run(
            [[5] * 10, [15, 5, 20, 10]], kill9=False)
        self.assertNotIn("left in flight by the last run", log)
        self.assert_exact_split(st, fake.sent_recipients(), old.recipients(), everyone, cap)

    def test_b2_kill9_mid_way(self):
        self.check_kill9(self.restart_run([[3] * 10, [5] * 8, [10, 5, 15]], kill9=True))

    def test_b3_kill9_smtp_new(self):
        # The same with SendGrid's SMTP relay in the new route's role.
        self.check_kill9(self.restart_run([[3] * 10, [5] * 8, [10, 5, 15]], kill9=True,
                                          smtp_new=True))

    def check_kill9(self, run):
        cap, fake, old, everyone, st, log = run
        new_rcpts = fake.sent_recipients()
        old_rcpts = old.recipients()
        requeued = 0
        for line in log.splitlines():
            if "left in flight by the last run" in line:
                requeued += int(line.split("store: ")[1].split()[0])
        # The cap is never exceeded, duplicates included.
        self.assertLessEqual(len(new_rcpts), cap, "more than the cap at the provider")
        self.assertEqual(st["used"], cap)
        # A crash can waste a unit of the cap, never more than were in flight.
        self.assertGreaterEqual(len(new_rcpts), cap - requeued)
        # Nothing lost: every accepted personalization reached a side.
        missing = set(everyone) - set(new_rcpts) - set(old_rcpts)
        self.assertEqual(missing, set(), "accepted (202) but delivered nowhere")
        self.assertTrue(set(new_rcpts) | set(old_rcpts) <= set(everyone))
        # Duplicates (twice on a side, or on both) only for units in flight.
        dups = len(new_rcpts) + len(old_rcpts) - len(everyone)
        sys.stderr.write("(%d requeued after kill -9, %d duplicates, %d at the provider) "
                         % (requeued, dups, len(new_rcpts)))
        self.assertLessEqual(dups, requeued, "%d duplicates, %d requeued" % (dups, requeued))

    # --- c: tempfails at the relay ----------------------------------------

    def test_c_relay_tempfails_retried(self):
        cap = 10
        fake = self.fake()
        old = self.capture(tempfail_every=3)
        d = self.daemon(self.config(self.v3_new(fake), self.smtp_route(old.port), cap=cap))
        offered = self.offer(d, [5, 20, 15, 20])
        everyone = [r for rs in offered.values() for r in rs]
        st = wait_for(lambda: (lambda s: s if s["queue"]["sent"] == 60 and
                               s["queue"]["inflight"] == 0 else None)(d.status()),
                      "all 60 sent despite the 451s", timeout=180, interval=0.1)
        self.assertGreater(old.tempfails, 0)
        # Every third DATA refused: at least a third of the tries failed.
        self.assertGreaterEqual(old.tempfails, (60 - cap) // 3)
        self.assertEqual(st["routes"]["old"]["tempfail"], old.tempfails)
        self.assertEqual(sum(i["old"]["tempfail"] for i in st["isps"].values()), old.tempfails)
        self.assert_exact_split(st, fake.sent_recipients(), old.recipients(), everyone, cap)
        self.assertIn("451", d.logtext())

    # --- d: tls = required without STARTTLS ---------------------------------

    def test_d_tls_required_refuses_clear(self):
        cap = 3
        fake = self.fake()
        old = self.capture()
        d = self.daemon(self.config(self.v3_new(fake), self.smtp_route(old.port, tls="required"),
                                    cap=cap))
        self.offer(d, [4, 6])
        st = wait_for(lambda: (lambda s: s if s["routes"]["old"]["tempfail"] >= 7 and
                               s["used"] == cap else None)(d.status()),
                      "tempfails on the old route")
        self.assertEqual(st["routes"]["old"]["accepted"], 0)
        self.assertEqual(st["routes"]["new"]["accepted"], cap)
        self.assertEqual(st["queue"]["sent"], cap)
        self.assertEqual(len(fake.sent_recipients()), cap)
        self.assertGreater(old.connections, 0, "the relay was never tried")
        with old.lock:
            cmds = list(old.commands)
        self.assertEqual(old.messages, [])
        for verb in ("MAIL", "RCPT", "DATA", "AUTH"):
            self.assertNotIn(verb, cmds)
        log = wait_for(lambda: (lambda t: t if "refuses to send in clear" in t else None)(
            d.logtext()), "the reason in the log")
        self.assertIn("STARTTLS", log)
        self.assertIn("does not offer STARTTLS", log)

    # --- e: SendGrid's SMTP relay as the new route ------------------------

    def smtp_new_run(self, extra):
        cap = 25
        new = self.capture(auth=True)
        old = self.capture()
        d = self.daemon(self.config(
            self.smtp_route(new.port, extra="username = apikey\npassword_env = WARMUP_TEST_RELAY_PW\n"
                            "x_smtpapi = on\n" + extra),
            self.smtp_route(old.port), cap=cap))
        offered = self.offer(d, [10, 30, 20])
        everyone = [r for rs in offered.values() for r in rs]
        st = self.settled(d, 60)
        self.assert_exact_split(st, new.recipients(), old.recipients(), everyone, cap)
        self.assertEqual(st["routes"]["new"]["type"], "smtp")
        # AUTH as "apikey" on the new relay's sessions, none on the old one.
        self.assertTrue(new.auth_users)
        self.assertEqual(set(new.auth_users), {"apikey"})
        for m in new.messages:
            self.assertEqual(m["auth_user"], "apikey")
        self.assertEqual(old.auth_users, [])
        for m in old.messages:
            self.assertIsNone(header_value(m["data"], "X-SMTPAPI"))
        out = []
        for m in new.messages:
            raw = m["data"]
            for line in raw.split(b"\r\n"):
                self.assertLess(len(line), 1000)
            value = header_value(raw, "X-SMTPAPI")
            self.assertIsNotNone(value, "no X-SMTPAPI header")
            out.append(json.loads(value))
        self.assertEqual(len(out), cap)
        self.assertNotIn(PASSWORD, d.logtext())
        self.assertNotIn(PASSWORD, json.dumps(st))
        return st, out

    def test_e1_smtp_new_x_smtpapi(self):
        st, xs = self.smtp_new_run("click_tracking = on\nopen_tracking = off\n"
                                   "subscription_tracking = on\nip_pool = warmup-pool\n")
        for x in xs:
            self.assertEqual(x["filters"]["clicktrack"], {"settings": {"enable": 1}})
            self.assertEqual(x["filters"]["opentrack"], {"settings": {"enable": 0}})
            self.assertEqual(x["filters"]["subscriptiontrack"], {"settings": {"enable": 1}})
            self.assertEqual(x["unique_args"]["warmup_day"], str(st["day"]))
            self.assertEqual(x["unique_args"]["warmup_route"], "new")
            self.assertEqual(x["ip_pool"], "warmup-pool")

    def test_e2_smtp_new_defaults_no_pool(self):
        st, xs = self.smtp_new_run("open_tracking = on\n")
        for x in xs:
            self.assertEqual(x["filters"]["clicktrack"], {"settings": {"enable": 0}})
            self.assertEqual(x["filters"]["opentrack"], {"settings": {"enable": 1}})
            self.assertEqual(x["filters"]["subscriptiontrack"], {"settings": {"enable": 0}})
            self.assertEqual(x["unique_args"]["warmup_day"], "1")
            self.assertEqual(x["unique_args"]["warmup_route"], "new")
            self.assertNotIn("ip_pool", x)

    # --- f: v3 new alone, overflow = defer --------------------------------

    def test_f_v3_alone_defer(self):
        cap = 40
        fake = self.fake()
        d = self.daemon(self.config(self.v3_new(fake), None, cap=cap, overflow="defer"))
        offered = self.offer(d)
        everyone = [r for rs in offered.values() for r in rs]
        st = self.settled(d, cap, queued=100 - cap)
        self.assertEqual(st["used"], cap)
        self.assertEqual(st["remaining"], 0)
        self.assertEqual(st["routes"]["new"]["sent"], cap)
        self.assertEqual(st["routes"]["old"]["sent"], 0)
        self.assertEqual(sum(i["queued"] for i in st["isps"].values()), 100 - cap)
        sent = fake.sent_recipients()
        self.assertEqual(len(sent), cap)
        self.assertEqual(len(set(sent)), cap)
        self.assertTrue(set(sent) <= set(everyone))
        # Another message kicks the dispatcher: still nothing more.
        st2, _, _ = d.send(mail(["late@example.com"]))
        self.assertEqual(st2, 202)
        self.settled(d, cap, queued=100 - cap + 1)
        self.assertEqual(fake.stats()["personalizations"], cap)

    # --- g: the MIME of a message through the old route -------------------

    TEXT = ("こんにちは、花子さん。\n"
            ".a line starting with a dot\n"
            ".\n"
            "..two dots\n"
            + "z" * 5000 + "\n"
            "最後の行")
    HTML = ("<html><body><p>こんにちは</p>\n"
            ".<br>\n<p>" + "w" * 5000 + "</p></body></html>\n")
    ATT = bytes(range(256)) * 20 + b"\r\n.\r\n\n\r\x00"

    def test_g_mime_through_old_route(self):
        fake = self.fake()
        old = self.capture()
        # Before the start date the new route carries nothing: all goes old.
        start = (today() + datetime.timedelta(days=2)).isoformat()
        d = self.daemon(self.config(self.v3_new(fake), self.smtp_route(old.port), cap=5,
                                    start=start))
        m = {
            "personalizations": [{"to": [{"email": "hanako@example.jp", "name": "田中 花子"}],
                                  "cc": [{"email": "jiro@example.jp", "name": "鈴木 次郎"}]}],
            "from": {"email": "news@example.org", "name": "山田商店 お知らせ係"},
            "subject": "【重要】ご注文の確認：テスト配信のお知らせ（長めの件名で折り返しを確かめます）",
            "content": [{"type": "text/plain", "value": self.TEXT},
                        {"type": "text/html", "value": self.HTML}],
            "attachments": [{"content": base64.b64encode(self.ATT).decode(),
                             "filename": "請求書.pdf", "type": "application/pdf"}],
        }
        st, mid, b = d.send(m)
        self.assertEqual(st, 202, b)
        s = self.settled(d, 1)
        self.assertEqual(s["day"], 0)
        self.assertEqual(s["routes"]["old"]["accepted"], 1)
        self.assertEqual(fake.stats()["requests"], 0)
        self.assertEqual(len(old.messages), 1)
        cap = old.messages[0]
        self.assertEqual(sorted(cap["rcpt"]), ["<hanako@example.jp>", "<jiro@example.jp>"])
        raw = cap["data"]
        # Only CRLF line endings, no line over 998 octets (on the wire, and
        # after unstuffing).
        for i, c in enumerate(raw):
            if c == 0x0A:
                self.assertEqual(raw[i - 1], 0x0D, "bare LF at %d" % i)
            if c == 0x0D:
                self.assertEqual(raw[i + 1], 0x0A, "bare CR at %d" % i)
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)
        # Lines starting with a dot are stuffed on the wire.
        for line in raw.split(b"\r\n"):
            if line.startswith(b"."):
                self.assertTrue(line.startswith(b".."), line)
        msg = parse(unstuff(raw))
        self.assertEqual(str(msg["Subject"]), m["subject"])
        self.assertEqual(msg["From"].addresses[0].display_name, "山田商店 お知らせ係")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "news@example.org")
        self.assertEqual(msg["To"].addresses[0].display_name, "田中 花子")
        self.assertEqual(msg["To"].addresses[0].addr_spec, "hanako@example.jp")
        self.assertEqual(msg["Cc"].addresses[0].display_name, "鈴木 次郎")
        head = raw.split(b"\r\n\r\n", 1)[0]
        head.decode("ascii")   # encoded-words: the header is pure ASCII
        self.assertEqual(msg["MIME-Version"], "1.0")
        self.assertIsNotNone(msg["Date"].datetime)
        # <X-Message-Id.uUNIT@from-domain>: a retry carries the same id.
        self.assertTrue(msg["Message-ID"].startswith("<%s.u" % mid), msg["Message-ID"])
        self.assertTrue(msg["Message-ID"].endswith("@example.org>"), msg["Message-ID"])
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        self.assertEqual(text.get_content_charset(), "utf-8")
        self.assertEqual(text.get_content().replace("\r\n", "\n"), self.TEXT)
        self.assertEqual(html.get_content().replace("\r\n", "\n"), self.HTML)
        atts = list(msg.iter_attachments())
        self.assertEqual(len(atts), 1)
        self.assertEqual(atts[0].get_filename(), "請求書.pdf")
        self.assertEqual(atts[0].get_content_type(), "application/pdf")
        self.assertEqual(atts[0].get_content(), self.ATT)

    # --- h: real Postfix as the old relay ---------------------------------

    def postfix(self, sink_port):
        """A private Postfix instance relaying to 127.0.0.1:sink_port; returns
        its smtpd port.  Skips the test when Postfix cannot run here."""
        if not POSTFIX or not SMTP_SINK:
            self.skipTest("postfix or smtp-sink not installed (Debian package postfix)")
        if os.geteuid() != 0:
            self.skipTest("a private Postfix instance needs root here (postfix start)")
        try:
            import pwd, grp
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
        except KeyError as e:
            self.skipTest("user postfix or group postdrop missing: %s" % e)
        cdir = os.path.join(self.dir, "pf-conf")
        qdir = os.path.join(self.dir, "pf-queue")
        ddir = os.path.join(self.dir, "pf-data")
        for p in (cdir, qdir, ddir):
            os.makedirs(p, exist_ok=True)
        os.chmod(qdir, 0o755)
        shutil.chown(ddir, "postfix", "postfix")
        self.pf_log = os.path.join(self.dir, "pf-mail.log")
        main_cf = f"""compatibility_level = 3.6
queue_directory = {qdir}
data_directory = {ddir}
mail_owner = postfix
setgid_group = postdrop
myhostname = warmup-test.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
relay_domains =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no
smtp_host_lookup = native
disable_dns_lookups = yes
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = {self.pf_log}
maillog_file_prefixes = {self.dir}
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
biff = no
"""
        with open(os.path.join(cdir, "main.cf"), "w") as f:
            f.write(main_cf)
        self.pf_dir = cdir
        last = ""
        for _ in range(5):
            port = free_port()
            master_cf = (f"127.0.0.1:{port} inet n - n - - smtpd\n" +
                         warmuptest.Postfix.MASTER_CF)
            with open(os.path.join(cdir, "master.cf"), "w") as f:
                f.write(master_cf)
            chk = subprocess.run([POSTFIX, "-c", cdir, "check"], capture_output=True,
                                 text=True, timeout=60)
            if chk.returncode != 0:
                self.skipTest("postfix -c %s check failed: %s %s" % (
                    cdir, (chk.stdout + chk.stderr).strip(), self.pf_log_text()))
            r = subprocess.run([POSTFIX, "-c", cdir, "start"], capture_output=True,
                               text=True, timeout=60)
            last = (r.stdout + r.stderr).strip()
            if r.returncode == 0:
                self.stoppers.append(self.postfix_stop)
                try:
                    wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)
                             .close() or True, "Postfix smtpd on %d" % port, timeout=20)
                except AssertionError:
                    self.postfix_stop()
                    continue
                return port
            subprocess.run([POSTFIX, "-c", cdir, "stop"], capture_output=True, timeout=60)
        self.skipTest("postfix -c %s start failed: %s %s" % (cdir, last, self.pf_log_text()))

    def pf_log_text(self):
        try:
            with open(self.pf_log, errors="replace") as f:
                return f.read()[-2000:]
        except FileNotFoundError:
            return "(no log)"

    def postfix_stop(self):
        pidfile = os.path.join(self.dir, "pf-queue", "pid", "master.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (FileNotFoundError, ValueError):
            pid = None
        subprocess.run([POSTFIX, "-c", self.pf_dir, "stop"], capture_output=True, timeout=60)
        if pid is None:
            return

        # postfix stop returns before the master is gone; wait for it (a
        # zombie child of init counts as gone).
        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().split(") ", 1)[1].startswith("Z")
            except FileNotFoundError:
                return True
        try:
            wait_for(gone, "the Postfix master (pid %d) to exit" % pid, timeout=30)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            raise

    def test_h_postfix_relay_to_smtp_sink(self):
        if not SMTP_SINK:
            self.skipTest("smtp-sink not installed (Debian package postfix)")
        cap = 12
        fake = self.fake()
        sink = SmtpSink(self.dir)
        self.procs.append(sink)
        pf_port = self.postfix(sink.port)
        d = self.daemon(self.config(self.v3_new(fake), self.smtp_route(pf_port), cap=cap))
        offered = self.offer(d, [2, 20, 8, 10])
        everyone = [r for rs in offered.values() for r in rs]
        st = self.settled(d, 40)
        self.assertEqual(st["routes"]["old"]["accepted"], 40 - cap)

        def at_sink():
            msgs = sink.messages()
            return msgs if len(msgs) >= 40 - cap else None
        try:
            msgs = wait_for(at_sink, "%d messages through Postfix at smtp-sink" % (40 - cap),
                            timeout=90, interval=0.1)
        except AssertionError:
            if os.path.exists(self.pf_log):
                with open(self.pf_log, errors="replace") as f:
                    sys.stderr.write("\n--- Postfix log (tail) ---\n" + f.read()[-5000:])
            raise
        old_rcpts = [parse(m)["To"].addresses[0].addr_spec for m in msgs]
        self.assert_exact_split(st, fake.sent_recipients(), old_rcpts, everyone, cap)
        # Postfix added its Received header: the messages really went through it.
        for m in msgs:
            self.assertIn(b"by warmup-test.localdomain", m)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_split.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

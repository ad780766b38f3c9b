#!/usr/bin/env python3
"""Integration tests of warmupd's SendGrid Event Webhook (POST
/v1/events/sendgrid), with warmupd and fake-sendgrid as real processes on
loopback.

usage: test_webhook.py WARMUPD FAKE_SENDGRID [unittest arguments]

Batches are signed the way SendGrid signs them, with a P-256 key the test
makes with the openssl command line.  Processes listen on port 0 and report
their port through --port-file; waiting is polling a condition with a
deadline, never a fixed sleep.
"""
import base64
import datetime
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, DEADLINE, today  # noqa: E402

WARMUPD = None
FAKE = None
API_KEY = "SG.Webhook-Test-5c1e9a7d3b.k2Pq"
EVENTS = "/v1/events/sendgrid"


def wait_for(cond, what, timeout=DEADLINE, interval=0.02):
    """warmuptest.wait_for, retrying a missing key as well."""
    return warmuptest.wait_for(cond, what, timeout, interval,
                               warmuptest.RETRY_ON + (KeyError,))


def make_key(dir, name="k"):
    """A P-256 key pair: (PEM private key path, base64 DER public key)."""
    pem = os.path.join(dir, name + ".pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                    "-out", pem], check=True, capture_output=True)
    der = subprocess.run(["openssl", "ec", "-in", pem, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return pem, base64.b64encode(der).decode()


def sign(pem, ts, body):
    """SendGrid's scheme: ECDSA over SHA-256 of timestamp + body, base64 DER."""
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", pem],
                         input=ts.encode() + body, check=True, capture_output=True).stdout
    return base64.b64encode(der).decode()


SEQ = [0]


def event(kind, email, route="new", **kw):
    SEQ[0] += 1
    e = {"email": email, "timestamp": int(time.time()), "event": kind,
         "sg_event_id": "ev-%d-%d" % (os.getpid(), SEQ[0]),
         "sg_message_id": "nosuchmsg%d.filterdrecv-1.0" % SEQ[0]}
    if route:
        e["warmup_route"] = route
        e["warmup_day"] = "1"
    e.update(kw)
    return e


class Fake(warmuptest.Fake):
    def __init__(self, dir, args=()):
        super().__init__(FAKE, dir, API_KEY, seed=11, args=args)

    def stats(self):
        st, b = self.request("GET", "/fake/stats")
        return json.loads(b)


class Daemon(warmuptest.Proc):
    def __init__(self, dir, config, env=None):
        self.config = config
        super().__init__([WARMUPD, "--config", config], dir, "warmupd",
                         dict(os.environ, WU_SG_KEY=API_KEY, **(env or {})), stop_timeout=30)

    def request(self, method, path, body=None, headers=None):
        st, _, data = warmuptest.http_request(self.port, method, path, raw=body,
                                              headers=headers, ctype=None)
        return st, data

    def status(self):
        st, b = self.request("GET", "/v1/status")
        assert st == 200, (st, b)
        return json.loads(b)

    def metrics(self):
        st, b = self.request("GET", "/metrics")
        assert st == 200, st
        return b.decode()

    def send(self, recipients):
        body = {"personalizations": [{"to": [{"email": r}]} for r in recipients],
                "from": {"email": "news@example.org"}, "subject": "hi",
                "content": [{"type": "text/plain", "value": "hello"}]}
        st, b = self.request("POST", "/v3/mail/send", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
        assert st == 202, (st, b)

    def post(self, events, pem=None, ts=None, raw=None, headers=None):
        body = raw if raw is not None else json.dumps(events).encode()
        h = {"Content-Type": "application/json"}
        if pem:
            ts = ts if ts is not None else str(int(time.time()))
            h["X-Twilio-Email-Event-Webhook-Timestamp"] = ts
            h["X-Twilio-Email-Event-Webhook-Signature"] = sign(pem, ts, body)
        h.update(headers or {})
        st, b = self.request("POST", EVENTS, body, h)
        try:
            return st, json.loads(b)
        except ValueError:
            return st, b


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    key = "%s{%s}" % (name, want) if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    raise KeyError(key)


class WebhookTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="wu-webhook-")
        self.dir = self.tmp.name
        with open(os.path.join(self.dir, "sched.csv"), "w") as f:
            f.write("day,cap\n1,100000\n2,100000\n")
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        if hasattr(self, "_outcome") and any(
                e for _, e in getattr(self._outcome, "errors", []) if e):
            for name in ("warmupd.log", "fake.log"):
                path = os.path.join(self.dir, name)
                if os.path.exists(path):
                    sys.stderr.write("---- %s\n%s\n" % (name, open(path).read()[-4000:]))
        self.tmp.cleanup()

    def config(self, webhook, extra="", fake_port=9, name="w.conf", overflow="defer"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("""[warmup]
schedule = sched.csv
start = %s
timezone = %s
overflow = %s
[listen]
address = 127.0.0.1:0
auth = none
[store]
path = w.db
[route new]
type = sendgrid
url = http://127.0.0.1:%d
api_key_env = WU_SG_KEY
[isp google]
new_rate = 36000/h
[isp yahoo]
new_rate = 36000/h
[webhook]
%s
%s
""" % (today().isoformat(), TZ, overflow, fake_port, webhook, extra))
        return path

    def daemon(self, webhook, extra="", fake_port=9, env=None, overflow="defer"):
        d = Daemon(self.dir, self.config(webhook, extra, fake_port, overflow=overflow), env)
        self.procs.append(d)
        return d

    def fake(self, args=()):
        f = Fake(self.dir, args)
        self.procs.append(f)
        return f

    def signed_daemon(self, extra="", fake_port=9):
        pem, pub = make_key(self.dir)
        return self.daemon("public_key = " + pub, extra, fake_port), pem

    # ---- counters and dedup --------------------------------------------------

    def test_counters_and_dedup(self):
        d, pem = self.signed_daemon()
        batch = [event("processed", "a@gmail.com"),
                 event("delivered", "a@gmail.com"), event("delivered", "b@gmail.com"),
                 event("delivered", "c@yahoo.com"),
                 event("bounce", "d@gmail.com", type="bounce", status="5.1.1",
                       reason="550 5.1.1 no such user"),
                 event("bounce", "e@yahoo.com", type="blocked", status="5.7.1",
                       reason="554 5.7.1 blocked"),
                 event("deferred", "f@example.net", response="451 try later"),
                 event("dropped", "g@gmail.com", reason="Bounced Address"),
                 event("spamreport", "h@gmail.com"),
                 event("unsubscribe", "i@gmail.com"),
                 event("group_unsubscribe", "j@yahoo.com", asm_group_id=1),
                 event("open", "a@gmail.com"), event("click", "a@gmail.com")]
        st, b = d.post(batch, pem)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["received"], 13)
        self.assertEqual(b["applied"], 10)
        self.assertEqual(b["ignored"], 3)
        s = d.status()
        new = s["routes"]["new"]
        want = {"delivered": 3, "bounce": 1, "blocked": 1, "deferred": 1, "dropped": 1,
                "complaint": 1, "unsubscribe": 2}
        self.assertEqual({k: new[k] for k in want}, want)
        self.assertEqual(s["routes"]["old"]["delivered"], 0)
        # The same batch again (SendGrid retries): nothing counts twice.
        st, b = d.post(batch, pem)
        self.assertEqual((st, b["applied"], b["duplicate"]), (200, 0, 10))
        s = d.status()
        self.assertEqual({k: s["routes"]["new"][k] for k in want}, want)
        self.assertEqual(s["webhook"]["duplicate"], 10)
        self.assertEqual(s["webhook"]["applied"], 10)
        # The hard bounce, the spam report and the unsubscribe put their
        # addresses on the suppression list, the group unsubscribe on its
        # group's; a block, a deferral and a drop do not.
        self.assertEqual(s["suppressions"]["entries"], 3)
        db = sqlite3.connect(os.path.join(self.dir, "w.db"))
        try:
            listed = dict(db.execute("select address, reason from suppressions"))
            groups = list(db.execute("select address, group_id from group_suppressions"))
        finally:
            db.close()
        self.assertEqual(listed, {"d@gmail.com": "bounce", "h@gmail.com": "spamreport",
                                  "i@gmail.com": "unsubscribe"})
        self.assertEqual(groups, [("j@yahoo.com", 1)])
        # Mail to a suppressed address is dropped at intake (drop mode).
        d.send(["d@gmail.com", "k@gmail.com"])
        self.assertEqual(d.status()["suppressions"]["dropped"], 1)
        m = d.metrics()
        self.assertEqual(metric(m, "warmup_results_total", route="new", isp="google",
                                result="delivered"), 2)
        self.assertEqual(metric(m, "warmup_results_total", route="new", isp="yahoo",
                                result="unsubscribe"), 1)
        self.assertEqual(metric(m, "warmup_webhook_outcomes_total", outcome="duplicate"), 10)
        # The store's day counters have them too, on today's date.
        db = sqlite3.connect(os.path.join(self.dir, "w.db"))
        try:
            date = (today() - datetime.date(1970, 1, 1)).days
            n = db.execute("SELECT sum(n) FROM counters WHERE date = ? AND route = 0 AND"
                           " result = 4", (date,)).fetchone()[0]  # WU_DELIVERED
            self.assertEqual(n, 3)
            seen = db.execute("SELECT count(*) FROM webhook_seen").fetchone()[0]
            self.assertEqual(seen, 10)
        finally:
            db.close()

    def test_attribution_by_unit(self):
        fake = self.fake()
        d, pem = self.signed_daemon(fake_port=fake.port)
        d.send(["u1@gmail.com", "u2@yahoo.com"])
        wait_for(lambda: d.status()["queue"]["sent"] == 2, "both units sent")
        msgid = fake.records()[0]["message_id"]
        # No custom args: the unit found by X-Message-Id gives route and ISP.
        evs = [{"email": "u1@gmail.com", "timestamp": int(time.time()), "event": "delivered",
                "sg_event_id": "attr-1", "sg_message_id": msgid + ".filterdrecv-9.0.0"},
               {"email": "u2@yahoo.com", "timestamp": int(time.time()), "event": "bounce",
                "type": "bounce", "sg_event_id": "attr-2",
                "sg_message_id": msgid + ".filterdrecv-9.1.0"},
               {"email": "x@gmail.com", "timestamp": int(time.time()), "event": "delivered",
                "sg_event_id": "attr-3", "sg_message_id": "unknown.filter"}]
        st, b = d.post(evs, pem)
        self.assertEqual((st, b["applied"], b["unattributed"]), (200, 2, 1), b)
        m = d.metrics()
        self.assertEqual(metric(m, "warmup_results_total", route="new", isp="google",
                                result="delivered"), 1)
        self.assertEqual(metric(m, "warmup_results_total", route="new", isp="yahoo",
                                result="bounce"), 1)
        self.assertEqual(d.status()["webhook"]["unattributed"], 1)

    # ---- suppressions that hold ----------------------------------------------

    def send_body(self, d, recipients, **extra):
        body = {"personalizations": [{"to": [{"email": r}]} for r in recipients],
                "from": {"email": "news@example.org"}, "subject": "hi",
                "content": [{"type": "text/plain", "value": "hello"}]}
        body.update(extra)
        st, b = d.request("POST", "/v3/mail/send", json.dumps(body).encode(),
                          {"Content-Type": "application/json"})
        self.assertEqual(st, 202, b)

    def test_unattributed_events_still_suppress(self):
        d, pem = self.signed_daemon()
        # Mail sent before warmupd or by another system: no unit, no
        # warmup_route.  It moves no gate, but the addresses are kept off.
        evs = [event("bounce", "ub@gmail.com", route=None, type="bounce"),
               event("spamreport", "us@gmail.com", route=None),
               event("unsubscribe", "uu@gmail.com", route=None),
               event("bounce", "blk@gmail.com", route=None, type="blocked"),
               event("delivered", "ud@gmail.com", route=None)]
        st, b = d.post(evs, pem)
        self.assertEqual((st, b["applied"], b["unattributed"]), (200, 0, 5), b)
        s = d.status()
        self.assertEqual(s["suppressions"]["entries"], 3)
        self.assertEqual(s["routes"]["new"]["bounce"], 0)
        db = sqlite3.connect(os.path.join(self.dir, "w.db"))
        try:
            listed = dict(db.execute("select address, reason from suppressions"))
        finally:
            db.close()
        self.assertEqual(listed, {"ub@gmail.com": "bounce", "us@gmail.com": "spamreport",
                                  "uu@gmail.com": "unsubscribe"})
        # An unauthenticated batch suppresses nothing.
        st, _ = d.post([event("bounce", "forged@gmail.com", route=None, type="bounce")])
        self.assertNotEqual(st, 200)
        self.assertEqual(d.status()["suppressions"]["entries"], 3)

    def test_group_unsubscribe_is_for_its_group(self):
        fake = self.fake()
        d, pem = self.signed_daemon(fake_port=fake.port)
        st, b = d.post([event("group_unsubscribe", "g@gmail.com", asm_group_id=7),
                        event("unsubscribe", "all@gmail.com")], pem)
        self.assertEqual((st, b["applied"]), (200, 2), b)
        # Group 7's mail: g@ dropped; group 8's mail: g@ sent; the global
        # unsubscribe is dropped from both groups and from mail of none.
        self.send_body(d, ["g@gmail.com", "all@gmail.com", "x7@gmail.com"], asm={"group_id": 7})
        self.send_body(d, ["g@gmail.com", "all@gmail.com", "x8@gmail.com"], asm={"group_id": 8})
        self.send_body(d, ["g@gmail.com", "all@gmail.com"])
        wait_for(lambda: d.status()["queue"]["sent"] == 4, "4 sent")
        got = sorted(fake.sent_recipients())
        self.assertEqual(got, ["g@gmail.com", "g@gmail.com", "x7@gmail.com", "x8@gmail.com"])
        by_group = {}
        for r in fake.records():
            g = r["body"].get("asm", {}).get("group_id")
            for p in r["body"]["personalizations"]:
                by_group.setdefault(g, []).append(p["to"][0]["email"])
        self.assertNotIn("g@gmail.com", by_group[7])
        self.assertIn("g@gmail.com", by_group[8])
        self.assertEqual(d.status()["suppressions"]["dropped"], 4)

    def test_bypass_settings(self):
        fake = self.fake()
        d, pem = self.signed_daemon(fake_port=fake.port)
        st, b = d.post([event("bounce", "b@gmail.com", type="bounce"),
                        event("spamreport", "s@gmail.com"),
                        event("unsubscribe", "u@gmail.com"),
                        event("group_unsubscribe", "g@gmail.com", asm_group_id=3)], pem)
        self.assertEqual((st, b["applied"]), (200, 4), b)
        everyone = ["b@gmail.com", "s@gmail.com", "u@gmail.com", "g@gmail.com"]

        def sent_with(setting):
            before = len(fake.sent_recipients())
            n0 = d.status()["queue"]["sent"]
            ms = {setting: {"enable": True}} if setting else {}
            self.send_body(d, everyone + ["ok@gmail.com"], asm={"group_id": 3},
                           mail_settings=ms)
            wait_for(lambda: d.status()["queue"]["queued"] == 0 and
                     d.status()["queue"]["inflight"] == 0, "queue drained")
            return sorted(fake.sent_recipients()[before:]), d.status()["queue"]["sent"] - n0

        self.assertEqual(sent_with(None)[0], ["ok@gmail.com"])
        self.assertEqual(sent_with("bypass_bounce_management")[0], ["b@gmail.com", "ok@gmail.com"])
        self.assertEqual(sent_with("bypass_spam_management")[0], ["ok@gmail.com", "s@gmail.com"])
        self.assertEqual(sent_with("bypass_unsubscribe_management")[0],
                         ["g@gmail.com", "ok@gmail.com", "u@gmail.com"])
        self.assertEqual(sent_with("bypass_list_management")[0], sorted(everyone + ["ok@gmail.com"]))

    def test_queued_mail_rechecked_at_dispatch(self):
        fake = self.fake()
        d, pem = self.signed_daemon(fake_port=fake.port)
        st, b = d.request("POST", "/v1/pause", b'{"route":"new","who":"test"}',
                          {"Content-Type": "application/json"})
        self.assertEqual(st, 200, b)
        self.send_body(d, ["a@gmail.com", "b@gmail.com"])
        self.send_body(d, ["g@gmail.com", "cc@gmail.com"], asm={"group_id": 5})
        self.send_body(d, ["g@gmail.com"], asm={"group_id": 6})
        self.send_body(d, ["a@gmail.com"],
                       mail_settings={"bypass_bounce_management": {"enable": True}})
        wait_for(lambda: d.status()["queue"]["queued"] == 6, "6 queued")
        # While they wait: an unattributed bounce, a group unsubscribe.
        st, b = d.post([event("bounce", "a@gmail.com", route=None, type="bounce"),
                        event("group_unsubscribe", "g@gmail.com", asm_group_id=5)], pem)
        self.assertEqual(st, 200, b)
        st, b = d.request("POST", "/v1/resume", b'{"route":"new","who":"test"}',
                          {"Content-Type": "application/json"})
        self.assertEqual(st, 200, b)
        wait_for(lambda: (lambda q: q["queued"] == 0 and q["inflight"] == 0)(
            d.status()["queue"]), "queue drained")
        q = d.status()["queue"]
        self.assertEqual((q["sent"], q["failed"]), (4, 2))
        self.assertEqual(sorted(fake.sent_recipients()),
                         ["a@gmail.com", "b@gmail.com", "cc@gmail.com", "g@gmail.com"])
        db = sqlite3.connect(os.path.join(self.dir, "w.db"))
        try:
            failed = sorted(db.execute("select personalization, error from units"
                                       " where state = 3"))
        finally:
            db.close()
        self.assertEqual(len(failed), 2)
        self.assertIn("a@gmail.com", failed[0][0])
        self.assertEqual(failed[0][1], "suppressed when its turn came: a@gmail.com (bounce)")
        self.assertIn("g@gmail.com", failed[1][0])
        self.assertEqual(failed[1][1],
                         "suppressed when its turn came: g@gmail.com (group_unsubscribe)")

    # ---- the gate --------------------------------------------------------------

    def test_gate_halts_new_route(self):
        fake = self.fake()
        d, pem = self.signed_daemon(fake_port=fake.port)
        batch = [event("delivered", "r%d@gmail.com" % i) for i in range(100)]
        batch += [event("bounce", "b%d@gmail.com" % i, type="bounce") for i in range(20)]
        st, b = d.post(batch, pem)
        self.assertEqual((st, b["applied"]), (200, 120), b)
        s = d.status()
        self.assertEqual(s["gate"]["state"], "halt", s["gate"])
        self.assertTrue(s["routes"]["new"]["paused"])
        self.assertIn("halt", d.logtext())
        # overflow = defer: later mail waits in the queue instead of going out.
        d.send(["later%d@gmail.com" % i for i in range(5)])
        wait_for(lambda: d.status()["intake"]["accepted"] == 1, "the send accepted")
        for _ in range(5):  # several loop turns, each with a dispatcher round
            s = d.status()
            self.assertEqual(s["queue"]["queued"], 5)
        self.assertEqual(fake.stats()["accepted"], 0)
        self.assertEqual(s["routes"]["new"]["sent"], 0)

    def test_gate_halt_hands_new_mail_to_the_old_relay(self):
        # overflow = old: once bounces halt the new route, the mail it would
        # have taken goes to the old relay instead of waiting.
        class Relay(warmuptest.SmtpHandler):
            def handle(self):
                self.server.conns.append(self.connection)
                self.reply("220 relay ready")
                for line in self.rfile:
                    cmd = line.strip().upper()
                    if cmd == b"DATA":
                        self.reply("354 go on")
                        for body in self.rfile:
                            if body == b".\r\n":
                                break
                        with self.server.lock:
                            self.server.messages += 1
                        self.reply("250 2.0.0 Ok: queued as R%d" % self.server.messages)
                    elif cmd == b"QUIT":
                        self.reply("221 bye")
                        return
                    elif cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                        self.reply("250 relay")
                    else:
                        self.reply("250 ok")

        relay = warmuptest.SmtpServer(Relay)
        relay.messages = 0
        relay.serve()
        self.addCleanup(relay.stop)
        fake = self.fake()
        old = "[route old]\ntype = smtp\nurl = smtp://127.0.0.1:%d\ntls = none\n" % relay.port
        pem, pub = make_key(self.dir)
        d = self.daemon("public_key = " + pub, old, fake.port, overflow="old")
        d.send(["before%d@gmail.com" % i for i in range(3)])
        wait_for(lambda: len(fake.sent_recipients()) == 3, "3 sent through the new route")
        batch = [event("delivered", "r%d@gmail.com" % i) for i in range(100)]
        batch += [event("bounce", "b%d@gmail.com" % i, type="bounce") for i in range(20)]
        st, b = d.post(batch, pem)
        self.assertEqual((st, b["applied"]), (200, 120), b)
        self.assertEqual(d.status()["gate"]["state"], "halt")
        d.send(["after%d@gmail.com" % i for i in range(5)])
        wait_for(lambda: relay.messages == 5, "5 messages at the old relay")
        s = d.status()
        self.assertEqual(len(fake.sent_recipients()), 3)
        self.assertEqual(s["routes"]["old"]["accepted"], 5)
        self.assertEqual(s["queue"]["queued"], 0)

    def test_small_sample_does_not_halt(self):
        d, pem = self.signed_daemon()
        batch = [event("delivered", "r%d@gmail.com" % i) for i in range(37)]
        batch += [event("bounce", "b%d@gmail.com" % i, type="bounce") for i in range(3)]
        self.assertEqual(d.post(batch, pem)[0], 200)
        s = d.status()
        self.assertEqual(s["gate"]["state"], "ok")
        self.assertFalse(s["routes"]["new"]["paused"])

    # ---- deferral rules ------------------------------------------------------

    def test_default_rule_cuts_one_isp(self):
        d, pem = self.signed_daemon()
        batch = [event("deferred", "g%d@gmail.com" % i,
                       response="421-4.7.28 Our system has detected an unusual rate of "
                                "unsolicited mail") for i in range(30)]
        batch += [event("deferred", "y%d@yahoo.com" % i, response="451 greylisted, retry")
                  for i in range(30)]
        st, b = d.post(batch, pem)
        self.assertEqual((st, b["applied"]), (200, 60), b)
        cuts = d.status()["webhook"]["cuts"]
        self.assertEqual(set(cuts), {"google"})
        self.assertTrue(cuts["google"]["active"])
        self.assertEqual(cuts["google"]["factor"], 0.5)
        self.assertEqual(cuts["google"]["rule"], "gmail-rate")
        self.assertEqual(cuts["google"]["hits"], 30)
        m = d.metrics()
        self.assertEqual(metric(m, "warmup_isp_cut", isp="google"), 0.5)
        self.assertEqual(metric(m, "warmup_isp_cut", isp="yahoo"), 1)
        # Logged once for the rule, not once per event.
        self.assertEqual(d.logtext().count("[defer_rule gmail-rate]: "), 1)

    def test_cut_recovers_with_deliveries_on_v3_route(self):
        # The new route is SendGrid's v3 API: its 202s say nothing about
        # Gmail, so the step back up after a cut comes from the webhook's
        # delivered events, one step per delivery once the hold is over.
        rules = """[defer_rule gmail-fast]
isp = google
match = 4.7.28
cut = 50%
hold = 1s
[backoff]
step = 10%
"""
        d, pem = self.signed_daemon(extra=rules)
        batch = [event("deferred", "g%d@gmail.com" % i, response="421-4.7.28 unusual rate")
                 for i in range(30)]
        self.assertEqual(d.post(batch, pem)[0], 200)
        cut = d.status()["webhook"]["cuts"]["google"]
        self.assertEqual((cut["factor"], cut["cut"], cut["active"]), (0.5, 0.5, True))

        def stepped():
            # a delivery during the hold does nothing; after it, one step
            self.assertEqual(d.post([event("delivered", "ok@gmail.com")], pem)[0], 200)
            return d.status()["webhook"]["cuts"]["google"]["factor"] > 0.5
        wait_for(stepped, "a delivery after the hold to step the rate up", interval=0.2)
        f = d.status()["webhook"]["cuts"]["google"]["factor"]
        self.assertAlmostEqual(f, 0.6, places=6)
        self.assertEqual(d.post([event("delivered", "ok%d@gmail.com" % i) for i in range(3)],
                                pem)[0], 200)
        self.assertAlmostEqual(d.status()["webhook"]["cuts"]["google"]["factor"], 0.9, places=6)
        self.assertEqual(d.post([event("delivered", "ok%d@gmail.com" % i) for i in range(5)],
                                pem)[0], 200)
        cut = d.status()["webhook"]["cuts"]["google"]
        self.assertEqual((cut["factor"], cut["active"]), (1, False))
        self.assertEqual(metric(d.metrics(), "warmup_isp_cut", isp="google"), 1)

    def test_configured_rule_replaces_defaults(self):
        rules = """[defer_rule yahoo-slow]
isp = yahoo
match = slow down | TSS04
events = deferred
cut = 25%
hold = 2h
[isp apple]
"""
        d, pem = self.signed_daemon(extra=rules)
        batch = [event("deferred", "y@yahoo.com", response="421 4.7.0 [TSS04] Messages "
                       "temporarily deferred"),
                 # blocked events are not what this rule watches
                 event("bounce", "y2@yahoo.com", type="blocked", reason="Slow down"),
                 # defaults are off once a rule is given
                 event("deferred", "g@gmail.com", response="421 4.7.28 unusual rate"),
                 # a rule on an ISP without a new_rate has nothing to cut
                 event("deferred", "a@icloud.com", response="slow down")]
        st, b = d.post(batch, pem)
        self.assertEqual((st, b["applied"]), (200, 4), b)
        cuts = d.status()["webhook"]["cuts"]
        self.assertEqual(set(cuts), {"yahoo"})
        self.assertEqual(cuts["yahoo"]["cut"], 0.25)
        # the blocked event backs Yahoo off once more (a tempfail for it)
        self.assertEqual(cuts["yahoo"]["factor"], 0.125)
        self.assertEqual(cuts["yahoo"]["hits"], 1)

    def test_rule_on_isp_without_rate_cuts_pacing(self):
        # Without a new_rate of its own, the ISP is cut to a share of today's
        # pacing rate (the cap here is limited, so there is one).
        rules = "[defer_rule apple-slow]\nisp = apple\nmatch = slow down\n"
        d, pem = self.signed_daemon(extra=rules)
        st, b = d.post([event("deferred", "a@icloud.com", response="421 Slow Down")], pem)
        self.assertEqual(st, 200, b)
        c = d.status()["webhook"]["cuts"]["apple"]
        self.assertTrue(c["effective"])
        self.assertTrue(c["active"])
        self.assertEqual(metric(d.metrics(), "warmup_isp_cut", isp="apple"), 0.5)

    def test_cut_slows_one_isp_only(self):
        """With a cut, sends to the cut ISP slow down while the other ISP's go on."""
        fake = self.fake()
        # 2/s and a burst of 1: a cut to 5% leaves one message in 10 s.
        extra = "[isp icloudish]\ndomains = slow.example\nnew_rate = 2/s\nnew_burst = 1\n" \
                "[isp fastish]\ndomains = fast.example\nnew_rate = 2/s\nnew_burst = 1\n" \
                "[defer_rule slow]\nisp = icloudish\nmatch = try later\ncut = 5%\nhold = 1h\n"
        d, pem = self.signed_daemon(extra=extra, fake_port=fake.port)
        st, b = d.post([event("deferred", "x@slow.example", response="421 try later")], pem)
        self.assertEqual(st, 200, b)
        d.send(["s%d@slow.example" % i for i in range(6)] +
               ["f%d@fast.example" % i for i in range(6)])
        wait_for(lambda: d.status()["isps"]["fastish"]["new"]["sent"] == 6,
                 "all fast-ISP mail sent")
        self.assertLessEqual(d.status()["isps"]["icloudish"]["new"]["sent"], 2)

    # ---- authentication ------------------------------------------------------

    def test_bad_signature_and_stale_timestamp(self):
        d, pem = self.signed_daemon()
        other, _ = make_key(self.dir, "other")
        ev = [event("delivered", "a@gmail.com")]
        self.assertEqual(d.post(ev, other)[0], 403)  # signed by another key
        stale = str(int(time.time()) - 3600)
        self.assertEqual(d.post(ev, pem, ts=stale)[0], 403)
        future = str(int(time.time()) + 3600)
        self.assertEqual(d.post(ev, pem, ts=future)[0], 403)
        self.assertEqual(d.post(ev)[0], 403)  # no signature at all
        # A signature over another body does not carry over.
        body = json.dumps(ev).encode()
        ts = str(int(time.time()))
        st, _ = d.request("POST", EVENTS, body.replace(b"delivered", b"spamreport"),
                          {"X-Twilio-Email-Event-Webhook-Timestamp": ts,
                           "X-Twilio-Email-Event-Webhook-Signature": sign(pem, ts, body)})
        self.assertEqual(st, 403)
        # The intake's auth is not the webhook's: a bearer token means nothing.
        self.assertEqual(d.post(ev, headers={"Authorization": "Bearer x"})[0], 403)
        s = d.status()
        self.assertEqual(s["webhook"]["refused_batches"], 6)
        self.assertEqual(s["routes"]["new"]["delivered"], 0)
        self.assertEqual(d.post(ev, pem)[0], 200)
        self.assertEqual(d.status()["routes"]["new"]["delivered"], 1)

    def test_basic_auth(self):
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write("s3cret-Hook\n")
        os.chmod(pw, 0o600)
        d = self.daemon("username = sendgrid\npassword_file = pw")
        ev = [event("delivered", "a@gmail.com")]

        def auth(u, p):
            return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (u, p))
                                                                 .encode()).decode()}
        self.assertEqual(d.post(ev, headers=auth("sendgrid", "s3cret-Hook"))[0], 200)
        self.assertEqual(d.post(ev, headers=auth("sendgrid", "s3cret-Hoo"))[0], 401)
        self.assertEqual(d.post(ev, headers=auth("sendgrid", "s3cret-Hookx"))[0], 401)
        self.assertEqual(d.post(ev, headers=auth("other", "s3cret-Hook"))[0], 401)
        self.assertEqual(d.post(ev)[0], 401)
        self.assertNotIn("s3cret", d.logtext())
        self.assertEqual(d.status()["routes"]["new"]["delivered"], 1)

    def test_auth_required_unless_none(self):
        path = self.config("max_skew = 5min")
        r = subprocess.run([WARMUPD, "--check", "--config", path], capture_output=True,
                           text=True, env=dict(os.environ, WU_SG_KEY=API_KEY))
        self.assertEqual(r.returncode, 1)
        self.assertIn("[webhook]: the event webhook needs authentication", r.stderr)
        d = self.daemon("auth = none")
        st, b = d.post([event("delivered", "a@gmail.com")])
        self.assertEqual((st, b["applied"]), (200, 1))

    def test_off_without_section(self):
        path = os.path.join(self.dir, "off.conf")
        with open(self.config("auth = none")) as f:
            text = f.read().replace("[webhook]\nauth = none", "")
        with open(path, "w") as f:
            f.write(text)
        d = Daemon(self.dir, path)
        self.procs.append(d)
        st, _ = d.post([event("delivered", "a@gmail.com")])
        self.assertEqual(st, 404)

    # ---- bad input -----------------------------------------------------------

    def test_malformed_batches(self):
        d = self.daemon("auth = none\nmax_body = 64KB")
        st, b = d.post(None, raw=b"this is not json")
        self.assertEqual(st, 400)
        self.assertIn("not JSON", b["error"])
        st, b = d.post(None, raw=b'{"event":"delivered"}')
        self.assertEqual(st, 400)
        self.assertIn("not an array", b["error"])
        self.assertEqual(d.post(None, raw=b"")[0], 400)
        self.assertEqual(d.post(None, raw=b"[1,2")[0], 400)
        # Parsed strictly, as every JSON body: no duplicate keys, nothing after the array.
        st, b = d.post(None, raw=b'[{"event":"bounce","event":"delivered"}]')
        self.assertEqual(st, 400)
        self.assertIn("more than once", b["error"])
        self.assertEqual(d.post(None, raw=b'[] []')[0], 400)
        self.assertEqual(d.post(None, raw=b"[" + b"1," * 40000 + b"1]")[0], 413)
        garbage = [1, "x", None, [], {}, {"event": "delivered"},
                   {"event": 5, "email": "a@gmail.com", "sg_event_id": "g1", "timestamp": 1},
                   {"event": "delivered", "email": "a@gmail.com", "sg_event_id": "g2",
                    "timestamp": "yesterday"},
                   {"event": "no-such-event", "email": "a@gmail.com", "sg_event_id": "g3",
                    "timestamp": 1},
                   event("delivered", "ok@gmail.com")]
        st, b = d.post(garbage)
        self.assertEqual(st, 200, b)
        self.assertEqual((b["malformed"], b["ignored"], b["applied"]), (8, 1, 1))
        st, _ = d.request("GET", EVENTS)
        self.assertEqual(st, 405)
        s = d.status()
        self.assertEqual(s["webhook"]["bad_batches"], 7)
        self.assertEqual(s["routes"]["new"]["delivered"], 1)
        d.send(["still@serving.example"])
        self.assertEqual(d.status()["intake"]["accepted"], 1)

    # ---- the whole loop ------------------------------------------------------

    def test_fake_sendgrid_posts_events_back(self):
        """fake-sendgrid --events-url: sends go out, events come back, the
        daemon counts them."""
        pem, pub = make_key(self.dir)
        # The fake must know the daemon's port before the daemon knows the
        # fake's: reserve one for the daemon (loopback, kept only briefly).
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        fake = self.fake(["--events-url", "http://127.0.0.1:%d%s" % (port, EVENTS),
                          "--events-key-file", pem, "--events-batch", "25",
                          "--bounce-rate", "0.1", "--defer-rate", "0.1"])
        path = self.config("public_key = " + pub, fake_port=fake.port)
        with open(path) as f:
            text = f.read().replace("address = 127.0.0.1:0", "address = 127.0.0.1:%d" % port)
        with open(path, "w") as f:
            f.write(text)
        d = Daemon(self.dir, path)
        self.procs.insert(0, d)
        d.send(["loop%d@gmail.com" % i for i in range(40)])
        wait_for(lambda: fake.stats()["events_posted"] >= 80 and
                 fake.stats()["events_queued"] == fake.stats()["events_posted"],
                 "fake-sendgrid posted its events")
        s = d.status()
        new = s["routes"]["new"]
        self.assertGreater(new["delivered"], 0)
        self.assertEqual(new["delivered"] + new["bounce"], 40)
        self.assertEqual(s["webhook"]["unattributed"], 0)
        self.assertEqual(s["webhook"]["refused_batches"], 0)
        self.assertEqual(fake.stats()["events_failed"], 0)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_webhook.py WARMUPD FAKE_SENDGRID [unittest args]")
    WARMUPD, FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

#!/usr/bin/env python3
"""Integration tests of warmupd against fake-sendgrid, both real processes on
loopback.

usage: test_daemon.py WARMUPD FAKE_SENDGRID [unittest arguments]

Every test gets a fresh temporary directory with its own schedule, config,
store and record file.  Processes listen on port 0 and report their port
through --port-file; waiting for anything is polling a condition with a
deadline, never a fixed sleep.
"""
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for, mail, recipients_of  # noqa: E402

WARMUPD = None
FAKE = None

TOKEN = "tok-Intake-7f3a9c21e4b8d6051fa2"
API_KEY = "SG.Key-9d2e71c4b05a8f36e1d7.q0Zx"
OTHER_KEY = "SG.Other-4b1f9e08a7c3d2651e90.wY3v"


class Fake(warmuptest.Fake):
    def __init__(self, dir, key=API_KEY, args=()):
        super().__init__(FAKE, dir, key, args=args)


class Daemon(warmuptest.Warmupd):
    """One warmupd process; its stderr is appended to dir/warmupd.log."""

    def __init__(self, dir, config, env_extra=None, token=TOKEN):
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        if env_extra:
            env.update(env_extra)
        super().__init__(WARMUPD, dir, config, env, token)

    def terminate(self, timeout=30):
        return super().terminate(timeout)


class DaemonTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warmupd-test-")
        self.dir = self._tmp.name
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        if warmuptest.has_failed(self):
            warmuptest.dump_logs(self.procs)
        self._tmp.cleanup()

    # --- building blocks ---------------------------------------------------

    def write(self, name, text, mode=0o600):
        return warmuptest.write_file(self.dir, name, text, mode)

    def config(self, fake_port, cap=None, rows=None, start=None, after="hold", name="warmupd.conf",
               listen_extra="", route_extra="", backoff_extra="", log_level="info",
               store="store.db", extra=""):
        if rows is None:
            rows = [cap] * 3
        self.write("schedule.csv", "# test schedule\nday,cap\n" +
                   "".join("%d,%d\n" % (i + 1, c) for i, c in enumerate(rows)))
        if start is None:
            start = today().isoformat()
        text = f"""; test config
[warmup]
schedule = schedule.csv
start = {start}
timezone = {TZ}
burst = day
overflow = defer
after = {after}

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN
{listen_extra}

[store]
path = {store}

[route new]
type = sendgrid
url = http://127.0.0.1:{fake_port}
api_key_env = WARMUP_TEST_KEY
timeout = 2s
max_connections = 4
{route_extra}

[backoff]
retry_min = 1s
retry_max = 2s
suspend = 1s
{backoff_extra}

[log]
level = {log_level}
{extra}
"""
        return self.write(name, text)

    def fake(self, **kw):
        f = Fake(self.dir, **kw)
        self.procs.append(f)
        return f

    def daemon(self, config, **kw):
        d = Daemon(self.dir, config, **kw)
        self.procs.append(d)
        return d

    def store_units(self, path="store.db"):
        """(msgid, recipients, state) of every unit; the daemon must be stopped."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, path), uri=True)
        try:
            rows = db.execute("SELECT c.msgid, u.personalization, u.state FROM units u"
                              " JOIN contents c ON c.id = u.content_id").fetchall()
        finally:
            db.close()
        out = []
        for msgid, p, state in rows:
            out.append((msgid, recipients_of({"personalizations": [json.loads(p)]}), state))
        return out

    # --- a, b: the cap ---------------------------------------------------

    SPLITS = [1, 3, 10, 1, 25, 7, 1, 20, 12, 20]  # 100 personalizations, 10 requests

    def offer_100(self, d):
        offered = {}
        n = 0
        for i, k in enumerate(self.SPLITS):
            rcpts = ["u%03d@example.com" % (n + j) for j in range(k)]
            n += k
            st, mid, b = d.send(mail(rcpts, subject="Offer %d" % i))
            self.assertEqual(st, 202, b)
            self.assertTrue(mid)
            offered[mid] = rcpts
        self.assertEqual(n, 100)
        return offered

    def assert_capped(self, d, fake, cap, queued):
        st = wait_for(lambda: (lambda s: s if s["used"] == cap and s["queue"]["queued"] == queued
                               and s["queue"]["inflight"] == 0 else None)(d.status()),
                      "used == %d and %d queued" % (cap, queued))
        self.assertEqual(st["cap"], cap)
        self.assertEqual(st["remaining"], 0)
        self.assertEqual(st["queue"]["sent"], cap)
        self.assertEqual(st["routes"]["new"]["sent"], cap)
        self.assertEqual(fake.stats()["personalizations"], cap)
        sent = fake.sent_recipients()
        self.assertEqual(len(sent), cap)
        self.assertEqual(len(set(sent)), cap)
        return st

    def test_a_cap_reached_never_passed(self):
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=40))
        st = d.status()
        self.assertEqual(st["day"], 1)
        self.assertEqual(st["cap"], 40)
        self.offer_100(d)
        self.assert_capped(d, fake, 40, 60)
        # Another accepted message kicks the dispatcher; still nothing more.
        st, _, _ = d.send(mail(["late@example.com"]))
        self.assertEqual(st, 202)
        self.assert_capped(d, fake, 40, 61)
        m = d.metrics()
        self.assertIn("warmup_", m)

    def test_j_store_pruned_on_a_timer(self):
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=40,
                                    store="store.db\nkeep = 2s\nprune_every = 1s"))
        # One mail held by send_at: queued units are never pruned.
        st, _, _ = d.send(mail(["later@example.com"], send_at=int(time.time()) + 3600))
        self.assertEqual(st, 202)
        st, _, _ = d.send(mail(["a@example.com", "b@example.com", "c@example.com"]))
        self.assertEqual(st, 202)
        wait_for(lambda: d.status()["queue"]["sent"] == 3, "3 sent")
        # The timer removes the sent units, then their content, keep later.
        wait_for(lambda: d.status()["queue"]["sent"] == 0, "sent units pruned")
        self.assertEqual(d.status()["queue"]["queued"], 1)
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, "store.db"), uri=True)
        try:
            self.assertEqual(db.execute("select count(*) from contents").fetchone()[0], 1)
            self.assertEqual(db.execute("pragma auto_vacuum").fetchone()[0], 2)
        finally:
            db.close()

    def test_b1_cap_holds_across_restart(self):
        fake = self.fake()
        conf = self.config(fake.port, cap=40)
        d = self.daemon(conf)
        offered = self.offer_100(d)
        self.assert_capped(d, fake, 40, 60)
        self.assertEqual(d.terminate(), 0)
        d.start()
        self.assert_capped(d, fake, 40, 60)
        st, _, _ = d.send(mail(["after-restart@example.com"]))
        self.assertEqual(st, 202)
        self.assert_capped(d, fake, 40, 61)
        self.assertEqual(d.terminate(), 0)
        # What is not sent is queued, each offered recipient exactly once.
        units = self.store_units()
        queued = {r for mid, rs, state in units if state == 0 for r in rs}
        sent = set(fake.sent_recipients())
        everyone = {r for rs in offered.values() for r in rs}
        self.assertEqual(queued & sent, set())
        self.assertEqual(queued | sent, everyone | {"after-restart@example.com"})

    def test_b2_kill9_mid_burst(self):
        cap = 40
        fake = self.fake()
        # Slow answers keep sends in flight when the daemon dies.
        fake.faults(slow_rate=1, slow_ms=300)
        conf = self.config(fake.port, cap=cap)
        d = self.daemon(conf)
        accepted = {}           # msgid -> recipients, for each 202
        attempted = set()
        lock = threading.Lock()
        n202 = [0]
        half = threading.Event()
        stop = threading.Event()

        def worker(w):
            for i in range(60):
                if stop.is_set():
                    return
                rcpts = ["k%d-%d-%d@example.com" % (w, i, j) for j in range(1 + i % 3)]
                with lock:
                    attempted.update(rcpts)
                try:
                    st, mid, _ = d.send(mail(rcpts, subject="Burst %d/%d" % (w, i)))
                except (OSError, http.client.HTTPException):
                    return  # the daemon died under us
                if st == 202:
                    with lock:
                        accepted[mid] = rcpts
                        n202[0] += 1
                        if n202[0] >= 150:
                            half.set()

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        try:
            # Kill once sends are under way and the burst is still running.
            wait_for(lambda: half.is_set() and fake.stats()["requests"] > 0,
                     "150 accepted requests and a send started")
            d.kill9()
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertGreaterEqual(len(accepted), 150)

        fake.faults(slow_rate=0, slow_ms=0)
        d.start()
        st = wait_for(lambda: (lambda s: s if s["queue"]["inflight"] == 0 else None)(d.status()),
                      "nothing in flight after the restart")
        # Give the restarted dispatcher a round: an accepted POST kicks it.
        s, _, _ = d.send(mail(["after-kill@example.com"]))
        self.assertEqual(s, 202)
        wait_for(lambda: d.status()["queue"]["inflight"] == 0 and
                 fake.stats()["requests"] == len(fake.records()) and
                 d.status()["queue"]["inflight"] == 0, "settled")
        st = d.status()
        self.assertLessEqual(st["used"], cap)
        self.assertEqual(d.terminate(), 0)
        log = d.logtext()

        sent = fake.sent_recipients()
        # Every personalization that reached the provider counted against the
        # cap, duplicates included.
        self.assertLessEqual(len(sent), cap, "more than the cap reached the provider")
        units = self.store_units()
        queued = {r for mid, rs, state in units if state == 0 for r in rs}
        inflight = [r for mid, rs, state in units if state == 1 for r in rs]
        self.assertEqual(inflight, [], "units left in flight after a clean stop")
        missing = []
        for mid, rcpts in accepted.items():
            for r in rcpts:
                if r not in queued and r not in sent:
                    missing.append((mid, r))
        self.assertEqual(missing, [], "accepted (202) but neither sent nor queued")
        # Nothing appears that was never offered.
        self.assertTrue(set(sent) <= attempted)
        # Duplicates only for what was in flight at the kill.
        requeued = 0
        for line in log.splitlines():
            if "left in flight by the last run" in line:
                requeued += int(line.split("store: ")[1].split()[0])
        dups = len(sent) - len(set(sent))
        self.assertLessEqual(dups, requeued)
        # A unit is either sent or queued, not both -- unless it was in flight.
        both = queued & set(sent)
        self.assertLessEqual(len(both), requeued)

    def test_b3_cap_raised_midday(self):
        # burst = day is a plain daily cap: when the operator raises today's
        # cap (bigger table, same start) and restarts, the rest of the new
        # cap is available at once.
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=10))
        rcpts = ["c%02d@example.com" % i for i in range(30)]
        for i in range(3):
            st, _, _ = d.send(mail(rcpts[i * 10:(i + 1) * 10], subject="Raise %d" % i))
            self.assertEqual(st, 202)
        self.assert_capped(d, fake, 10, 20)
        self.assertEqual(d.terminate(), 0)
        self.config(fake.port, cap=1000)
        d.start()
        # The 20 queued may already be on their way under the raised cap.
        self.assertIn(d.status()["remaining"], range(970, 991))
        wait_for(lambda: d.status()["queue"]["sent"] == 30, "the 20 queued sent under the "
                 "raised cap", timeout=20)
        self.assertEqual(sorted(set(fake.sent_recipients())), rcpts)

    def test_b4_sigterm_under_load(self):
        # SIGTERM while clients are posting: a graceful stop (exit 0), and
        # every 202 is in the store.
        fake = self.fake()
        conf = self.config(fake.port, cap=40)
        d = self.daemon(conf)
        accepted = {}
        lock = threading.Lock()
        some = threading.Event()

        def worker(w):
            for i in range(200):
                try:
                    st, mid, _ = d.send(mail(["t%d-%d@example.com" % (w, i)]))
                except (OSError, http.client.HTTPException):
                    return
                if st != 202:
                    return
                with lock:
                    accepted[mid] = "t%d-%d@example.com" % (w, i)
                    if len(accepted) >= 100:
                        some.set()

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
        for t in threads:
            t.start()
        try:
            wait_for(some.is_set, "100 accepted")
            d.proc.send_signal(signal.SIGTERM)
            rc = d.proc.wait(60)
        finally:
            for t in threads:
                t.join(60)
        d.log.close()
        self.assertEqual(rc, 0, "warmupd did not stop cleanly on SIGTERM under load:\n" +
                         d.logtext()[-2000:])
        stored = {r for _, rs, _ in self.store_units() for r in rs}
        self.assertEqual([m for m, r in accepted.items() if r not in stored], [])

    # --- c: retries ------------------------------------------------------

    def test_c_faults_retried_until_delivered(self):
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=1000000))
        fake.faults(rate_429=0.5, rate_500=0.3, slow_rate=0.2, slow_ms=3000)
        offered = []
        for i in range(30):
            rcpts = ["r%d-%d@example.com" % (i, j) for j in range(10)]
            offered += rcpts
            st, _, b = d.send(mail(rcpts, subject="Retry %d" % i))
            self.assertEqual(st, 202, b)
        wait_for(lambda: (lambda s: s["throttled_429"] > 0 and s["failed_500"] > 0 and
                          s["slowed"] > 0)(fake.stats()), "429s, 500s and slow answers")
        wait_for(lambda: d.status()["routes"]["new"]["tempfail"] > 0, "tempfails counted")
        fake.faults(rate_429=0, rate_500=0, slow_rate=0, slow_ms=0)
        st = wait_for(lambda: (lambda s: s if s["queue"]["sent"] == len(offered) else None)(
            d.status()), "all %d sent" % len(offered), timeout=120)
        self.assertEqual(st["queue"]["queued"], 0)
        self.assertEqual(st["queue"]["failed"], 0)
        self.assertEqual(set(fake.sent_recipients()), set(offered))
        r = st["routes"]["new"]
        self.assertGreater(r["tempfail"] + r.get("timeout", 0), 0)

    # --- d: batching ---------------------------------------------------

    def test_d_rebatching(self):
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=1000000))
        rcpts = ["b%03d@example.com" % i for i in range(300)]
        st, mid, b = d.send(mail(rcpts, subject="Batch"))
        self.assertEqual(st, 202, b)
        wait_for(lambda: d.status()["queue"]["sent"] == 300, "300 sent")
        recs = fake.records()
        self.assertEqual(len(recs), 1, [len(r["body"]["personalizations"]) for r in recs])
        self.assertEqual(sorted(recipients_of(recs[0]["body"])), rcpts)
        self.assertEqual(recs[0]["body"]["subject"], "Batch")

        st1, _, _ = d.send(mail(["x1@example.com", "x2@example.com"], subject="First"))
        st2, _, _ = d.send(mail(["y1@example.com", "y2@example.com"], subject="Second",
                                body="Other body"))
        self.assertEqual((st1, st2), (202, 202))
        wait_for(lambda: d.status()["queue"]["sent"] == 304, "304 sent")
        recs = fake.records()[1:]
        self.assertEqual(len(recs), 2)
        by = {r["body"]["subject"]: sorted(recipients_of(r["body"])) for r in recs}
        self.assertEqual(by, {"First": ["x1@example.com", "x2@example.com"],
                              "Second": ["y1@example.com", "y2@example.com"]})
        self.assertEqual(
            {r["body"]["subject"]: r["body"]["content"][0]["value"] for r in recs},
            {"First": "Hello there", "Second": "Other body"})

    def test_d2_retry_keeps_batch(self):
        # A batch refused as a whole (429) is retried as a batch, not split
        # into one request per personalization.
        fake = self.fake()
        fake.faults(rate_429=1)
        d = self.daemon(self.config(fake.port, cap=1000000))
        rcpts = ["t%03d@example.com" % i for i in range(300)]
        st, _, b = d.send(mail(rcpts, subject="Retried batch"))
        self.assertEqual(st, 202, b)
        # (Polls the daemon too: see test_h for why it must.)
        wait_for(lambda: d.status() and fake.stats()["throttled_429"] >= 1, "a 429")
        fake.faults(rate_429=0)
        wait_for(lambda: d.status()["queue"]["sent"] == 300, "300 sent")
        recs = fake.records()
        self.assertEqual(sorted(r for rec in recs for r in recipients_of(rec["body"])), rcpts)
        self.assertLessEqual(len(recs), 3, "300 personalizations of one content retried in "
                             "%d requests: %s" % (len(recs), [len(r["body"]["personalizations"])
                                                             for r in recs][:20]))

    def test_h_sends_without_other_traffic(self):
        # Nothing but the provider talks to the daemon after a POST: the
        # message must still go out promptly, and so must a retry, which
        # only the daemon's own timer starts.  Polls the fake, not warmupd:
        # a request to warmupd would wake its loop.
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=1000000))
        for i in range(3):
            st, _, _ = d.send(mail(["quiet%d-%d@example.com" % (i, j) for j in range(300)],
                                   subject="Quiet %d" % i))
            self.assertEqual(st, 202)
            wait_for(lambda: fake.stats()["personalizations"] == 300 * (i + 1),
                     "message %d at the provider without another request to warmupd" % i,
                     timeout=10, interval=0.1)
        fake.faults(rate_429=1)
        st, _, _ = d.send(mail(["retry@example.com"], subject="Retry"))
        self.assertEqual(st, 202)
        wait_for(lambda: fake.stats()["throttled_429"] >= 1, "a 429", timeout=10, interval=0.1)
        fake.faults(rate_429=0)
        wait_for(lambda: fake.stats()["personalizations"] == 901,
                 "the retry (retry_max = 2s) at the provider without another request to "
                 "warmupd", timeout=10, interval=0.1)

    # --- e: bad input ------------------------------------------------------

    def assert_sg_error(self, body):
        j = json.loads(body)
        self.assertIsInstance(j["errors"], list)
        self.assertGreaterEqual(len(j["errors"]), 1)
        for e in j["errors"]:
            self.assertIn("message", e)
            self.assertIn("field", e)
            self.assertIn("help", e)
            self.assertTrue(e["message"])

    def upload_reading(self, d, body):
        """POSTs body the way curl does: stops sending once an answer comes
        (the daemon answers 413 from Content-Length alone).  Returns the status."""
        import select
        import socket
        sk = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        try:
            head = ("POST /v3/mail/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % (d.token, len(body))).encode()
            sk.sendall(head)
            off, answer = 0, b""
            end = time.monotonic() + 30
            while b"\r\n" not in answer and time.monotonic() < end:
                r, w, _ = select.select([sk], [sk] if off < len(body) else [], [], 1)
                if r:
                    chunk = sk.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
                elif w:
                    try:
                        off += sk.send(body[off:off + 65536])
                    except (BrokenPipeError, ConnectionResetError):
                        off = len(body)
            return int(answer.split(b" ", 2)[1])
        finally:
            sk.close()

    def test_e_bad_inputs(self):
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=1000000, listen_extra="max_body = 1MB"))
        good = mail(["ok@example.com"])

        st, _, b = d.request("POST", "/v3/mail/send", raw=b'{"personalizations": [')
        self.assertEqual(st, 400)
        self.assert_sg_error(b)
        st, _, b = d.request("POST", "/v3/mail/send", raw=b'[1,2]')
        self.assertEqual(st, 400)
        self.assert_sg_error(b)

        m = mail(["a@example.com"])
        del m["from"]
        st, _, b = d.request("POST", "/v3/mail/send", m)
        self.assertEqual(st, 400)
        self.assert_sg_error(b)
        self.assertIn("from", b.decode())

        st, _, b = d.request("POST", "/v3/mail/send", dict(good, headers={"Subject": "x"}))
        self.assertEqual(st, 400)
        self.assert_sg_error(b)
        st, _, b = d.request("POST", "/v3/mail/send",
                             dict(good, headers={"X-Thing": "a\r\nBcc: evil@example.net"}))
        self.assertEqual(st, 400)
        self.assert_sg_error(b)
        st, _, b = d.request("POST", "/v3/mail/send", dict(good, subject="Hi\nBcc: x@y.z"))
        self.assertEqual(st, 400)
        self.assert_sg_error(b)

        many = mail(["m%d@example.com" % i for i in range(1001)])
        st, _, b = d.request("POST", "/v3/mail/send", many)
        self.assertEqual(st, 400)
        self.assert_sg_error(b)

        st, _, b = d.request("POST", "/v3/mail/send", good, token="Bearer wrong-token")
        self.assertEqual(st, 401)
        self.assert_sg_error(b)
        st, _, b = d.request("POST", "/v3/mail/send", good, token=None)
        self.assertEqual(st, 401)
        st, _, b = d.request("POST", "/v3/mail/send", good, token="Bearer " + TOKEN + "x")
        self.assertEqual(st, 401)
        # [status] open_to lets loopback read the status without a token,
        # but a wrong one is refused even there.
        st, _, b = d.request("GET", "/v1/status", token="Bearer " + TOKEN + "x")
        self.assertEqual(st, 401)
        st, _, b = d.request("GET", "/metrics", token=None)
        self.assertEqual(st, 401)
        st, _, b = d.request("GET", "/metrics", token="Bearer nope")
        self.assertEqual(st, 401)

        st, _, b = d.request("POST", "/v3/mail/send", raw=json.dumps(good).encode(),
                             ctype="text/plain")
        self.assertEqual(st, 415)

        big = json.dumps(mail(["big@example.com"], body="x" * (1024 * 1024 + 10))).encode()
        self.assertEqual(self.upload_reading(d, big), 413)

        st, _, b = d.request("GET", "/nope")
        self.assertEqual(st, 404)

        self.assertIsNone(d.proc.poll(), "warmupd exited")
        st, mid, b = d.send(good)
        self.assertEqual(st, 202, b)
        self.assertTrue(mid)
        wait_for(lambda: d.status()["queue"]["sent"] == 1, "the valid message sent")
        self.assertEqual(fake.sent_recipients(), ["ok@example.com"])

    def test_e2_accepted_only_what_both_routes_can_send(self):
        """Bodies the old intake answered 202 and the SMTP route then refused
        for good (or that cJSON read otherwise than the caller meant) are
        400s naming the field; the daemon keeps serving."""
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=1000000))
        good = json.dumps(mail(["ok@example.com"], subject="hello"))

        def refused(raw, field, why):
            st, _, b = d.request("POST", "/v3/mail/send", raw=raw)
            self.assertEqual(st, 400, "%s: %r answered %d %r" % (why, raw[:120], st, b))
            self.assert_sg_error(b)
            fields = [e["field"] for e in json.loads(b)["errors"]]
            self.assertIn(field, fields, "%s: %s" % (why, b))

        def good_with(**kw):
            return json.dumps(mail(["ok@example.com"], **kw)).encode()

        nul = good.replace('"hello"', '"hel\\u0000lo"').encode()
        refused(nul, "subject", "NUL as an escape (cut the subject to 'hel')")
        refused(good.replace('"hello"', '"hel\0lo"').encode(), "subject", "NUL as a raw byte")
        refused(good.replace('"hello"', '"he\x01llo"').encode(), "subject",
                "a raw control byte")
        refused(good.encode() + b' {"subject":"x"}', None, "trailing data")
        refused(good.replace('"subject": "hello"',
                             '"subject": "a", "subject": "b"').encode(), "subject",
                "a duplicate key")
        refused(good.replace('"hello"', '"caf\xe9"').encode("latin-1"), "subject",
                "invalid UTF-8")
        refused(good_with(content=[{"type": "foo", "value": "x"}]), "content.0.type",
                "content type foo")
        refused(good_with(attachments=[{"content": "AAEC", "filename": "a",
                                        "type": "application/pdf\x01"}]),
                "attachments.0.type", "a control character in an attachment type")
        m = mail(["ok@example.com"])
        m["personalizations"][0]["to"][0]["name"] = "Ann\r\nBcc: evil@example.net"
        refused(json.dumps(m).encode(), "personalizations.0.to.0.name", "CR/LF in a name")
        m["personalizations"][0]["to"][0]["name"] = "Ann\x0b"
        refused(json.dumps(m).encode(), "personalizations.0.to.0.name",
                "a vertical tab in a name")
        m = mail(["ok@example.com"], headers={"X-Tag": "tag -t-"})
        m["personalizations"][0]["substitutions"] = {"-t-": "a\x01b"}
        refused(json.dumps(m).encode(), "personalizations.0.substitutions.-t-",
                "\\u0001 in a header value via a substitution")

        # The other JSON endpoints parse as strictly.
        st, _, b = d.request("POST", "/v1/suppressions",
                             raw=b'{"emails":["a@example.com"],"emails":["b@example.com"]}')
        self.assertEqual(st, 400, b)
        self.assertEqual(json.loads(b)["errors"][0]["field"], "emails")
        st, _, b = d.request("POST", "/v1/suppressions", raw=b'{"emails":[]} []')
        self.assertEqual(st, 400, b)

        self.assertIsNone(d.proc.poll(), "warmupd exited")
        self.assertEqual(d.status()["queue"].get("queued", 0), 0)
        st, mid, b = d.send(json.loads(good))
        self.assertEqual(st, 202, b)
        wait_for(lambda: d.status()["queue"]["sent"] == 1, "the valid message sent")
        self.assertEqual(fake.sent_recipients(), ["ok@example.com"])

    # --- f: secrets --------------------------------------------------------

    def assert_no_secret(self, text, where):
        for s in (TOKEN, API_KEY, OTHER_KEY):
            self.assertNotIn(s, text, "%s contains a secret" % where)
            # Also a good part of it (a truncated or partly masked leak).
            self.assertNotIn(s[4:20], text, "%s contains part of a secret" % where)

    def test_f1_secrets_absent(self):
        fake = self.fake()
        d = self.daemon(self.config(fake.port, cap=1000000, log_level="debug"))
        st, _, _ = d.send(mail(["s1@example.com", "s2@example.com"]))
        self.assertEqual(st, 202)
        d.request("POST", "/v3/mail/send", mail(["x@example.com"]), token="Bearer bad")
        wait_for(lambda: d.status()["queue"]["sent"] == 2, "sent")
        self.assert_no_secret(json.dumps(d.status()), "status")
        self.assert_no_secret(d.metrics(), "metrics")
        self.assertEqual(d.terminate(), 0)
        self.assert_no_secret(d.logtext(), "warmupd's log")

    def test_f2_provider_401_pauses_route(self):
        fake = self.fake(key=OTHER_KEY)
        d = self.daemon(self.config(fake.port, cap=1000000, log_level="debug"))
        st, _, _ = d.send(mail(["p1@example.com", "p2@example.com"]))
        self.assertEqual(st, 202)
        wait_for(lambda: fake.stats()["rejected_401"] > 0, "a 401 from the provider")
        s = wait_for(lambda: (lambda s: s if s["routes"]["new"]["paused"] else None)(d.status()),
                     "the new route paused")
        s = wait_for(lambda: (lambda s: s if s["queue"]["queued"] == 2 and
                              s["queue"]["inflight"] == 0 else None)(d.status()),
                     "both units back in the queue")
        self.assertEqual(s["queue"]["sent"], 0)
        self.assertEqual(s["queue"]["failed"], 0)
        # A new message is accepted and waits too.
        st, _, _ = d.send(mail(["p3@example.com"]))
        self.assertEqual(st, 202)
        s = wait_for(lambda: (lambda s: s if s["queue"]["queued"] == 3 else None)(d.status()),
                     "three queued")
        self.assertTrue(s["routes"]["new"]["paused"])
        self.assertEqual(fake.stats()["accepted"], 0)
        self.assert_no_secret(json.dumps(s), "status")
        self.assert_no_secret(d.metrics(), "metrics")
        self.assertEqual(d.terminate(), 0)
        log = d.logtext()
        self.assert_no_secret(log, "warmupd's log")
        with open(fake.log_path, "rb") as f:
            self.assert_no_secret(f.read().decode("utf-8", "replace"), "fake's log")

    # --- g: --check ----------------------------------------------------------

    def check(self, conf, env=None):
        e = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        if env is not None:
            e = env
        p = subprocess.run([WARMUPD, "--check", "--config", conf], env=e,
                           capture_output=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    def line_of(self, path, needle):
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if needle in line:
                    return i
        raise AssertionError("%s not in %s" % (needle, path))

    def test_g_check(self):
        conf = self.config(12345, cap=100)
        rc, out = self.check(conf)
        self.assertEqual(rc, 0, out)
        self.assert_no_secret(out, "--check output")

        bad = self.config(12345, cap=100, name="unknown.conf", route_extra="colour = blue")
        rc, out = self.check(bad)
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown.conf:%d:" % self.line_of(bad, "colour"), out)
        self.assertIn("colour", out)
        self.assertNotIn("blue", out)

        bad = self.config(12345, cap=100, name="rate.conf",
                          extra="[isp google]\nnew_rate = 10/fortnight")
        rc, out = self.check(bad)
        self.assertNotEqual(rc, 0)
        self.assertIn("rate.conf:%d:" % self.line_of(bad, "10/fortnight"), out)
        self.assertIn("new_rate", out)

        env = dict(os.environ, WARMUP_TEST_KEY=API_KEY)
        env.pop("WARMUP_TEST_TOKEN", None)
        rc, out = self.check(conf, env=env)
        self.assertNotEqual(rc, 0)
        self.assertIn("warmupd.conf:%d:" % self.line_of(conf, "token_env"), out)
        self.assertIn("token_env", out)
        self.assertIn("WARMUP_TEST_TOKEN", out)
        self.assert_no_secret(out, "--check output")

    def test_g_check_every_error(self):
        """One run names every problem: bad lines, missing secrets (by
        name, never by value), the store's directory and a port in use."""
        import socket
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        self.addCleanup(busy.close)
        conf = self.config(12345, cap=100, name="many.conf", store="nowhere/deeper/store.db",
                           listen_extra="max_body = lots",
                           route_extra="colour = blue",
                           extra="[gate]\nbounce_warn = 9%%\n"
                                 "[smtp]\naddress = 127.0.0.1:%d" % port)
        env = dict(os.environ, WARMUP_TEST_KEY=API_KEY)
        env.pop("WARMUP_TEST_TOKEN", None)
        rc, out = self.check(conf, env=env)
        self.assertEqual(rc, 1, out)
        want = [
            ("max_body = lots", "[listen] max_body: expected a size"),
            ("colour", "[route new] colour: unknown key"),
            ("bounce_warn", "[gate] bounce_warn: must not be above bounce_halt"),
            ("token_env", "[listen] token_env: environment variable WARMUP_TEST_TOKEN is not set"),
            ("path = nowhere", "[store] path: the directory %s/nowhere/deeper does not exist"
             % os.path.realpath(self.dir)),
            ("address = 127.0.0.1:%d" % port, "[smtp] address: cannot listen on 127.0.0.1:%d: "
             "Address already in use" % port),
        ]
        for needle, msg in want:
            self.assertIn("many.conf:%d: %s" % (self.line_of(conf, needle), msg), out)
        self.assertIn("many.conf: %d errors" % len(want), out)
        self.assertNotIn("blue", out)
        self.assert_no_secret(out, "--check output")

        # A missing last directory can be made: --check passes, and the
        # daemon's start makes it.
        busy.close()
        conf = self.config(12345, cap=100, name="mkdir.conf", store="state/store.db")
        rc, out = self.check(conf)
        self.assertEqual(rc, 0, out)
        self.assertIn("store %s/state/store.db" % os.path.realpath(self.dir), out)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state")))
        d = self.daemon(conf)
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "state")))
        self.assertEqual(d.terminate(), 0)

        # A directory that is not writable is named (not checkable as root).
        if os.geteuid() != 0:
            os.makedirs(os.path.join(self.dir, "ro"))
            os.chmod(os.path.join(self.dir, "ro"), 0o555)
            conf = self.config(12345, cap=100, name="ro.conf", store="ro/store.db")
            rc, out = self.check(conf)
            self.assertEqual(rc, 1, out)
            self.assertIn("is not writable", out)

    def test_g_check_files(self):
        """--check loads what a start reads besides the file: the SMTP users,
        its certificate and key, the status page's viewers; each bad one is
        named by its key and line, and no password is printed."""
        users = os.path.join(self.dir, "users")
        with open(users, "w") as f:
            f.write("app:plain-secret-password\n")
        cert = os.path.join(self.dir, "cert.pem")
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        conf = self.config(12345, cap=100, name="files.conf",
                           extra="[smtp]\naddress = 127.0.0.1:0\nusers_file = %s\n"
                                 "tls_cert_file = %s\ntls_key_file = %s\n"
                                 "[status]\nviewers_file = %s/missing-viewers"
                                 % (users, cert, cert, self.dir))
        rc, out = self.check(conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("files.conf:%d: [smtp] users_file: " % self.line_of(conf, "users_file"), out)
        self.assertIn("files.conf:%d: [smtp] tls_cert_file: " % self.line_of(conf, "tls_cert_file"),
                      out)
        self.assertIn("files.conf:%d: [status] viewers_file: " % self.line_of(conf, "viewers_file"),
                      out)
        self.assertIn("files.conf: 3 errors", out)
        self.assertNotIn("plain-secret-password", out)

    def run_warmupd(self, *args):
        e = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        p = subprocess.run([WARMUPD] + list(args), env=e, capture_output=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    def test_i_bad_state_refused_then_reset(self):
        fake = self.fake()
        conf = self.config(fake.port, cap=40)
        d = self.daemon(conf)
        self.offer_100(d)
        self.assert_capped(d, fake, 40, 60)
        self.assertEqual(d.terminate(), 0)

        # A damaged row: a negative count would hand out the cap again.
        db = sqlite3.connect(os.path.join(self.dir, "store.db"))
        state = db.execute("SELECT state FROM engine WHERE id = 1").fetchone()[0]
        self.assertIn("\nused 40\n", state)
        db.execute("UPDATE engine SET state = ? WHERE id = 1",
                   (state.replace("\nused 40\n", "\nused -5\n"),))
        db.commit()
        db.close()
        rc, out = self.run_warmupd("--config", conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("saved engine state, line 6: used: '-5'", out)
        self.assertIn("--reset-state", out)

        rc, out = self.run_warmupd("--reset-state", "--config", conf)
        self.assertEqual(rc, 0, out)
        self.assertIn("engine state reset", out)
        self.assertIn("used: '-5'", out)
        # Today's cap counts as used: nothing more goes out today.
        d.start()
        st = d.status()
        self.assertEqual(st["used"], 40)
        self.assertEqual(st["remaining"], 0)
        self.assertEqual(st["queue"]["queued"], 60)
        self.assertEqual(d.terminate(), 0)
        self.assertEqual(fake.stats()["personalizations"], 40)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_daemon.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

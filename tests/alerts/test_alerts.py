#!/usr/bin/env python3
"""Push alerts for what an operator must act on, with warmupd and
fake-sendgrid as real processes on loopback and the alert webhook a small
HTTP server in this process recording every POST body.

usage: test_alerts.py WARMUPD FAKE_SENDGRID [unittest arguments]

Provoked for real: an ISP cut by a deferral rule and its recovery (Event
Webhook batches), a storm of them (one alert each way, then one summary
with the count), permanent failures above the rate (fake-sendgrid's
rate_400), a route paused by the provider's 401 and resumed, the store's
disk below disk_min_free (a threshold of 100% free), and the structured
fields every body carries.  Waiting is polling with a deadline.
"""
import datetime
import http.server
import json
import os
import subprocess
import tempfile
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today  # noqa: E402

WARMUPD = FAKE = None
TOKEN = "tok-Alerts-8d2f61c0a9b7e534"
API_KEY = "SG.AlertsKey-3f9a0c7e21b4d658.Zq1x"
HOOK_SECRET = "T000/B000/AlertsHookSecret77"
DEADLINE = 30.0
SEQ = [0]


def wait_for(cond, what, timeout=DEADLINE):
    return warmuptest.wait_for(cond, what, timeout,
                               retry_on=warmuptest.RETRY_ON + (KeyError, IndexError))


class Hook(http.server.BaseHTTPRequestHandler):
    """The alert webhook: records the JSON bodies it is sent."""

    lock = threading.Lock()
    bodies = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Hook.lock:
            Hook.bodies.append(json.loads(data))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    @classmethod
    def of(cls, *kinds):
        with cls.lock:
            return [b for b in cls.bodies if b.get("kind") in kinds]


def event(kind, email, **kw):
    SEQ[0] += 1
    e = {"email": email, "timestamp": int(time.time()), "event": kind,
         "sg_event_id": "ev-%d-%d" % (os.getpid(), SEQ[0]),
         "sg_message_id": "nosuchmsg%d.filterdrecv-1.0" % SEQ[0],
         "warmup_route": "new", "warmup_day": "1"}
    e.update(kw)
    return e


class AlertsTest(warmuptest.ProcTestCase):
    prefix = "warmup-alerts-"

    @classmethod
    def setUpClass(cls):
        cls.hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=cls.hook.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()
        cls.hook.server_close()

    def setUp(self):
        super().setUp()
        with Hook.lock:
            Hook.bodies.clear()

    def start(self, alert="", extra="", fake_key=API_KEY, fake_args=(), store="store.db"):
        env = dict(os.environ, AL_TOKEN=TOKEN, AL_KEY=API_KEY)
        self.fake = warmuptest.Fake(FAKE, self.dir, fake_key, seed=5, args=fake_args, env=env,
                                    stop_timeout=15, port_timeout=DEADLINE)
        self.procs.append(self.fake)
        self.write("schedule.csv", "day,cap\n1,1000\n2,1000\n")
        self.write("hook.url", "http://127.0.0.1:%d/services/%s\n"
                   % (self.hook.server_address[1], HOOK_SECRET))
        conf = self.write("warmupd.conf", f"""[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = defer

[listen]
address = 127.0.0.1:0
token_env = AL_TOKEN

[store]
path = {store}

[route new]
type = sendgrid
url = http://127.0.0.1:{self.fake.port}
api_key_env = AL_KEY
timeout = 5s

[webhook]
auth = none

[alert]
webhook_url_file = hook.url
backlog_check = 1s
source = node-a
{alert}
{extra}""")
        self.d = warmuptest.Warmupd(WARMUPD, self.dir, conf, env, TOKEN)
        self.procs.append(self.d)

    def post_events(self, batch):
        st, _, b = self.d.request("POST", "/v1/events/sendgrid", batch)
        self.assertEqual(st, 200, b)

    def deliver_until(self, cond):
        """Posts one delivery to google, then asks cond."""
        self.post_events([event("delivered", "ok@gmail.com")])
        return cond()

    def send(self, n, prefix="r"):
        m = warmuptest.mail(["%s%d@example.com" % (prefix, i) for i in range(n)])
        st, _, b = self.d.send(m)
        self.assertEqual(st, 202, b)

    def assert_structured(self, b, kind, severity, status):
        self.assertEqual(b["kind"], kind)
        self.assertEqual(b["severity"], severity)
        self.assertEqual(b["status"], status)
        self.assertEqual(b["source"], "node-a")
        self.assertIn("node-a", b["text"])
        self.assertIn(b["summary"], b["text"])
        ts = datetime.datetime.strptime(b["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        age = abs(datetime.datetime.utcnow() - ts)
        self.assertLess(age, datetime.timedelta(minutes=5), b["timestamp"])
        self.assertEqual(b["dedup_key"], b["fingerprint"])
        self.assertTrue(b["dedup_key"].startswith("warmupd/node-a/"), b["dedup_key"])
        self.assertIsInstance(b["details"], dict)
        for k in ("date", "day", "cap", "backlog"):
            self.assertIn(k, b["details"])
        # The flat fields of the first alerts are still there.
        for k in ("event", "route", "date", "day", "cap", "bounce_rate", "complaint_rate",
                  "host"):
            self.assertIn(k, b)
        self.assertNotIn(HOOK_SECRET, json.dumps(b))

    def assert_secrets_absent(self):
        st = json.dumps(self.d.status())
        log = self.d.logtext()
        for secret in (TOKEN, API_KEY, HOOK_SECRET):
            self.assertNotIn(secret, st)
            self.assertNotIn(secret, log)

    # --- an ISP cut by a deferral rule ---------------------------------------

    RULE = """[defer_rule gmail-fast]
isp = google
match = 4.7.28
cut = 50%
hold = 1s

[defer_rule yahoo-slow]
isp = yahoo
match = TSS04
cut = 50%
hold = 1s

[backoff]
step = 100%
"""

    def test_isp_cut_and_recovery(self):
        self.start(extra=self.RULE)
        # A deferral no rule matches cuts nothing; the rule's text does.
        self.post_events([event("deferred", "g0@gmail.com", response="451 greylisted")])
        self.post_events([event("deferred", "g1@gmail.com",
                                response="421-4.7.28 unusual rate of unsolicited mail")])
        cut = wait_for(lambda: Hook.of("isp_cut")[0], "the isp_cut alert")
        self.assert_structured(cut, "isp_cut", "warning", "firing")
        self.assertEqual(cut["details"]["isp"], "google")
        self.assertEqual(cut["details"]["rule"], "gmail-fast")
        self.assertEqual(cut["details"]["factor"], 0.5)
        self.assertEqual(cut["details"]["route"], "new")
        self.assertEqual(cut["count"], 1)
        self.assertEqual(cut["event"], "isp_cut")
        self.assertIn("google cut to 50% of its rate by rule gmail-fast", cut["text"])
        self.assertTrue(cut["dedup_key"].endswith("/isp_cut/google"), cut["dedup_key"])
        self.assertTrue(self.d.status()["webhook"]["cuts"]["google"]["active"])
        # A delivery after the hold brings the rate back (step 100%); one
        # during it does nothing.
        rec = wait_for(lambda: self.deliver_until(lambda: Hook.of("isp_recovered")[0]),
                       "the isp_recovered alert")
        self.assert_structured(rec, "isp_recovered", "info", "resolved")
        self.assertEqual(rec["dedup_key"], cut["dedup_key"])
        self.assertEqual(rec["details"]["factor"], 1)
        self.assertEqual(len(Hook.of("isp_cut", "isp_recovered")), 2)
        # Both are in the store's event list too.
        kinds = [e["kind"] for e in self.d.status()["recent_events"]]
        self.assertIn("isp_cut", kinds)
        self.assertIn("isp_recovered", kinds)
        self.assert_secrets_absent()

    def test_cut_storm_is_one_summary(self):
        # Three cuts, each recovered, within one window: the first cut and
        # the first recovery go out, the other four are one summary at the
        # window's end, as the latest of them (a recovery).
        self.start(alert="repeat_window = 8s\n", extra=self.RULE)
        t0 = time.monotonic()
        for i in range(3):
            self.post_events([event("deferred", "s%d@gmail.com" % i,
                                    response="421 4.7.28 slow")])
            self.assertTrue(self.d.status()["webhook"]["cuts"]["google"]["active"])
            wait_for(lambda: self.deliver_until(
                lambda: self.d.status()["webhook"]["cuts"]["google"]["factor"] == 1),
                "google's rate back after cut %d" % (i + 1))
        stormed = time.monotonic() - t0
        self.assertLess(stormed, 7, "the storm outlasted the window; the test proves nothing")
        got = Hook.of("isp_cut", "isp_recovered")
        self.assertEqual([(b["kind"], b["count"]) for b in got],
                         [("isp_cut", 1), ("isp_recovered", 1)])
        summary = wait_for(lambda: [b for b in Hook.of("isp_cut", "isp_recovered")
                                    if b["count"] > 1][0], "the storm's summary")
        waited = time.monotonic() - t0
        got = Hook.of("isp_cut", "isp_recovered")
        self.assertEqual([(b["kind"], b["count"]) for b in got],
                         [("isp_cut", 1), ("isp_recovered", 1), ("isp_recovered", 4)])
        self.assertEqual(summary["status"], "resolved")
        self.assertIn("(and 3 more in the last 8 s)", summary["text"])
        self.assertIn("(and 3 more in the last 8 s)", summary["summary"])
        self.assertEqual(summary["dedup_key"], got[0]["dedup_key"])
        # Held until the window ended, not sent at once.
        self.assertGreaterEqual(waited, 7.5)
        # Another ISP's key is not held behind google's.
        self.post_events([event("deferred", "y@yahoo.com",
                                response="421 4.7.0 [TSS04] Messages temporarily deferred")])
        y = wait_for(lambda: [b for b in Hook.of("isp_cut")
                              if b["details"].get("isp") == "yahoo"][0], "yahoo's cut")
        self.assertEqual(y["count"], 1)
        # The storm went quiet: nothing more of google's key came.
        self.assertEqual(len([b for b in Hook.of("isp_cut", "isp_recovered")
                              if b["details"].get("isp") == "google"]), 3)

    # --- permanent failures ---------------------------------------------------

    def test_permfail_rate(self):
        self.start(alert="permfail_window = 10\npermfail_rate = 50%\n",
                   fake_args=["--rate-400", "1"])
        self.send(10, "p")
        b = wait_for(lambda: Hook.of("permfail_rate")[0], "the permfail_rate alert")
        self.assert_structured(b, "permfail_rate", "critical", "firing")
        self.assertEqual(b["details"]["rate"], 1)
        self.assertEqual(b["details"]["threshold"], 0.5)
        self.assertEqual(b["details"]["window"], 10)
        self.assertEqual(b["route"], "new")
        self.assertIn("100.0% of the last 10 sends refused for good", b["text"])
        self.assertTrue(b["dedup_key"].endswith("/permfail_rate/new"), b["dedup_key"])
        self.assertEqual(self.fake.stats()["rejected_400"], 1)
        # The provider takes mail again: ten acceptances push the failures
        # out of the window and the alert resolves.
        self.fake.faults(rate_400=0)
        self.send(10, "q")
        ok = wait_for(lambda: Hook.of("permfail_ok")[0], "the permfail_ok alert")
        self.assert_structured(ok, "permfail_ok", "info", "resolved")
        self.assertEqual(ok["dedup_key"], b["dedup_key"])
        self.assertEqual(ok["details"]["rate"], 0)
        self.assertEqual(len(Hook.of("permfail_rate")), 1)

    # --- a route paused by the provider's answers -----------------------------

    def test_auth_pause_and_resume(self):
        self.start(fake_key="SG.another-key-the-daemon-does-not-have")
        self.send(2, "a")
        b = wait_for(lambda: Hook.of("paused")[0], "the paused alert")
        self.assert_structured(b, "paused", "critical", "firing")
        self.assertEqual(b["event"], "pause")
        self.assertEqual(b["details"]["by"], "provider")
        self.assertIn("authentication failure (401)", b["details"]["who"])
        self.assertTrue(b["dedup_key"].endswith("/paused/new"), b["dedup_key"])
        self.assertTrue(self.d.status()["routes"]["new"]["paused"])
        st, _, _ = self.d.request("POST", "/v1/resume", {"who": "alice"})
        self.assertEqual(st, 200)
        r = wait_for(lambda: Hook.of("resumed")[0], "the resumed alert")
        self.assert_structured(r, "resumed", "info", "resolved")
        self.assertEqual(r["dedup_key"], b["dedup_key"])
        self.assertIn("alice", r["details"]["who"])
        self.assertIn("authentication failure (401)", r["details"]["paused_by"])
        self.assert_secrets_absent()

    # --- the store's disk -------------------------------------------------------

    def test_disk_low(self):
        # 100% free required: any real file system is below it.
        self.start(alert="disk_min_free = 100%\nbacklog_threshold = 1\n")
        b = wait_for(lambda: Hook.of("disk_low")[0], "the disk_low alert")
        self.assert_structured(b, "disk_low", "critical", "firing")
        det = b["details"]
        self.assertEqual(os.path.realpath(det["path"]), os.path.realpath(self.dir))
        self.assertGreater(det["total_bytes"], 0)
        self.assertLess(det["free_share"], 1)
        self.assertEqual(det["threshold"], 1)
        self.assertIn("the store's disk", b["text"])
        self.assertTrue(b["dedup_key"].endswith("/disk_low/store"), b["dedup_key"])
        # Once, not at every look: a later look (the one that finds the
        # backlog above 1) passes without another.
        st, _, _ = self.d.request("POST", "/v1/pause", {"who": "test"})
        self.assertEqual(st, 200)
        self.send(2, "x")
        wait_for(lambda: Hook.of("backlog")[0], "the backlog alert of a later look")
        self.assertEqual(len(Hook.of("disk_low")), 1)
        self.assertEqual(self.d.logtext().count("alert: the store's disk"), 1)

    def test_disk_unknown(self):
        # The store's directory moved away under a running daemon: its
        # disk cannot be measured any more, which is said once, through
        # alert_notice, as a kind of its own.
        os.mkdir(os.path.join(self.dir, "st"))
        self.start(alert="backlog_threshold = 0\ndisk_min_free = 100%\nrepeat_window = 0\n",
                   store=os.path.join(self.dir, "st", "store.db"))
        wait_for(lambda: Hook.of("disk_low")[0], "disk_low before the move")
        with Hook.lock:
            Hook.bodies.clear()
        self.assertEqual(self.d.status()["queue"]["queued"], 0)
        os.rename(os.path.join(self.dir, "st"), os.path.join(self.dir, "st-moved"))
        b = wait_for(lambda: Hook.of("disk_unknown")[0], "the disk_unknown alert")
        self.assert_structured(b, "disk_unknown", "warning", "firing")
        self.assertIn("cannot measure the free space of the store's disk", b["text"])
        self.assertIn("No such file or directory", b["summary"])
        self.assertTrue(b["dedup_key"].endswith("/disk_unknown"), b["dedup_key"])
        self.assertEqual(b["route"], None)
        self.assertEqual(b["count"], 1)
        # Back in place, the next look measures it again and says its
        # state afresh (100% free required: disk_low again), and
        # disk_unknown was said once, not at every look in between.
        os.rename(os.path.join(self.dir, "st-moved"), os.path.join(self.dir, "st"))
        wait_for(lambda: Hook.of("disk_low")[0], "disk_low once the directory is back")
        self.assertEqual(len(Hook.of("disk_unknown")), 1)
        self.assertEqual(self.d.logtext().count("alert: cannot measure"), 1)

    def test_disk_low_on_tmpfs(self):
        # A real file system filling up: a 2 MiB tmpfs, the store on it.
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        mnt = tempfile.mkdtemp(prefix="warmup-alerts-tmpfs-")
        self.addCleanup(os.rmdir, mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: " + r.stderr.strip())
        # Cleanups run last first: the daemon is stopped (tearDown), then
        # the file system goes, then its mount point.
        self.addCleanup(subprocess.run, ["umount", mnt], capture_output=True)
        self.start(alert="disk_min_free = 30%\nbacklog_threshold = 0\n",
                   store=os.path.join(mnt, "store.db"))
        wait_for(lambda: self.d.status()["queue"] is not None, "the daemon up")
        self.assertEqual(Hook.of("disk_low"), [])
        with open(os.path.join(mnt, "filler"), "wb") as f:
            f.write(b"\0" * (1536 * 1024))
        b = wait_for(lambda: Hook.of("disk_low")[0], "disk_low on the filling tmpfs")
        self.assertLess(b["details"]["free_share"], 0.30)
        self.assertEqual(os.path.realpath(b["details"]["path"]), os.path.realpath(mnt))
        os.unlink(os.path.join(mnt, "filler"))
        ok = wait_for(lambda: Hook.of("disk_ok")[0], "disk_ok once the space is back")
        self.assert_structured(ok, "disk_ok", "info", "resolved")
        self.assertEqual(ok["dedup_key"], b["dedup_key"])


def main():
    global WARMUPD, FAKE
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    WARMUPD, FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[3:], exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

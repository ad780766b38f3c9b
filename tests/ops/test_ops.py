#!/usr/bin/env python3
"""test_ops.py -- the operator's side of warmupd end to end: suppressions,
pause and resume by hand, the event list and push alerts.

usage: test_ops.py WARMUPD FAKE_SENDGRID WARMUP [unittest arguments]

warmupd and fake-sendgrid run as real processes on loopback (port 0,
--port-file); the alert webhook is a small HTTP server in this process on
127.0.0.1:0.  Every wait polls a condition with a deadline; nothing sleeps
to synchronise.
"""
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today  # noqa: E402

WARMUPD = FAKE = WARMUP = None
TOKEN = "tok-Ops-5e1c9a7724b0d3f6"
API_KEY = "SG.OpsKey-71c4b05a8f36e1d7.q0Zx"
HOOK_SECRET = "T000/B000/XyZSecretHookPath42"
DEADLINE = 30.0


def wait_for(cond, what, timeout=DEADLINE):
    return warmuptest.wait_for(cond, what, timeout)


def mail(*recipients, **kw):
    return warmuptest.mail(list(recipients), **kw)


class Hook(http.server.BaseHTTPRequestHandler):
    """The alert webhook: records JSON bodies; fails the first `fail` POSTs."""

    lock = threading.Lock()
    bodies = []
    answers = []
    fail = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Hook.lock:
            code = 500 if Hook.fail > 0 else 200
            Hook.fail -= 1 if Hook.fail > 0 else 0
            Hook.answers.append((self.path, code))
            if code == 200:
                Hook.bodies.append(json.loads(data))
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    @classmethod
    def events(cls, kind=None):
        with cls.lock:
            return [b for b in cls.bodies if kind is None or b.get("event") == kind]


class Proc(warmuptest.Proc):
    def __init__(self, argv, dir, name, env):
        super().__init__(argv, dir, name, env, stop_timeout=15, port_timeout=DEADLINE)


class OpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=cls.hook.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warmup-ops-")
        self.dir = self._tmp.name
        self.procs = []
        with Hook.lock:
            Hook.bodies.clear()
            Hook.answers.clear()
            Hook.fail = 0
        self.env = dict(os.environ, OPS_TOKEN=TOKEN, OPS_KEY=API_KEY, WARMUP_TOKEN=TOKEN,
                        FAKE_SG_KEY=API_KEY)

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        self._tmp.cleanup()

    def start(self, suppress_mode="drop", alert=True, backlog=10000, cap=1000, extra=""):
        fake = warmuptest.Fake(FAKE, self.dir, API_KEY, seed=None, env=self.env, log_mode="ab",
                               stop_timeout=15, port_timeout=DEADLINE)
        self.procs.append(fake)
        with open(os.path.join(self.dir, "schedule.csv"), "w") as f:
            f.write("day,cap\n1,%d\n2,%d\n" % (cap, cap))
        hook_url = "http://127.0.0.1:%d/services/%s?k=qsecret" % (self.hook.server_address[1],
                                                                 HOOK_SECRET)
        self.hook_url = hook_url
        with open(os.path.join(self.dir, "hook.url"), "w") as f:
            f.write(hook_url + "\n")
        os.chmod(os.path.join(self.dir, "hook.url"), 0o600)
        alert_sect = ("[alert]\nwebhook_url_file = hook.url\nretries = 3\ntimeout = 5s\n"
                      "backlog_threshold = %d\nbacklog_check = 1s\n" % backlog) if alert else ""
        conf = os.path.join(self.dir, "warmupd.conf")
        with open(conf, "w") as f:
            f.write(f"""[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = defer

[listen]
address = 127.0.0.1:0
token_env = OPS_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{fake.port}
api_key_env = OPS_KEY
timeout = 5s

[log]
level = debug

[suppress]
mode = {suppress_mode}

{alert_sect}
{extra}""")
        self.d = Proc([WARMUPD, "--config", conf], self.dir, "warmupd", self.env)
        self.procs.append(self.d)
        self.fake = fake
        self.url = "http://127.0.0.1:%d" % self.d.port

    # --- helpers -------------------------------------------------------------

    def request(self, method, path, body=None):
        st, _, data = warmuptest.http_request(self.d.port, method, path, body,
                                              auth="Bearer " + TOKEN)
        return st, data

    def status(self):
        st, b = self.request("GET", "/v1/status")
        if st != 200:
            raise ValueError("status %d" % st)
        return json.loads(b)

    def cli(self, *args, ok=True):
        r = subprocess.run([WARMUP] + list(args[:1]) + ["--url", self.url] + list(args[1:]),
                           capture_output=True, text=True, env=self.env, timeout=60,
                           cwd=self.dir)
        if ok:
            self.assertEqual(r.returncode, 0, (args, r.stdout, r.stderr))
        self.assertNotIn(TOKEN, r.stdout + r.stderr)
        return r

    def sent(self):
        return self.fake.sent_recipients()

    def assert_secrets_absent(self):
        st = json.dumps(self.status())
        log = self.d.logtext()
        for secret in (TOKEN, API_KEY, HOOK_SECRET, "qsecret"):
            self.assertNotIn(secret, log, "secret in warmupd's log")
            self.assertNotIn(secret, st, "secret in status")

    # --- suppressions ----------------------------------------------------------

    def test_drop_mode(self):
        self.start(alert=False)
        r = self.cli("suppress", "add", "Blocked@Example.com")
        self.assertIn("1 added", r.stdout)
        m = mail("x@example.com")
        m["personalizations"] = [{"to": [{"email": "BLOCKED@example.com"}]},
                                 {"to": [{"email": "ok1@example.com"}],
                                  "cc": [{"email": "blocked@example.com"}]}]
        st, b = self.request("POST", "/v3/mail/send", m)
        self.assertEqual(st, 202, b)
        # A request whose every recipient is suppressed is still accepted.
        st, b = self.request("POST", "/v3/mail/send", mail("blocked@example.com"))
        self.assertEqual(st, 202, b)
        wait_for(lambda: self.status()["queue"]["sent"] == 1, "ok1 sent")
        self.assertEqual(self.sent(), ["ok1@example.com"])
        s = self.status()
        self.assertEqual(s["suppressions"]["dropped"], 3)
        self.assertEqual(s["suppressions"]["dropped_by_reason"]["manual"], 3)
        self.assertEqual(s["suppressions"]["dropped_personalizations"], 2)
        self.assertEqual(s["suppressions"]["entries"], 1)
        self.assertEqual(s["queue"]["queued"] + s["queue"]["inflight"], 0)
        st, b = self.request("GET", "/metrics")
        self.assertIn('warmup_suppressed_total{reason="manual"} 3', b.decode())
        self.assert_secrets_absent()

    def test_reject_mode(self):
        self.start(suppress_mode="reject", alert=False)
        self.cli("suppress", "add", "--reason", "bounce", "gone@example.com")
        st, b = self.request("POST", "/v3/mail/send", mail("ok@example.com", "gone@example.com"))
        self.assertEqual(st, 400, b)
        err = json.loads(b)["errors"][0]
        self.assertEqual(err["field"], "personalizations.1.to.0.email")
        self.assertIn("gone@example.com", err["message"])
        self.assertIn("bounce", err["message"])
        st, b = self.request("POST", "/v3/mail/send", mail("ok@example.com"))
        self.assertEqual(st, 202, b)
        # Polls warmupd (which wakes its loop): sending on the daemon's own
        # timer alone is tests/daemon's test_h, a known open problem.
        wait_for(lambda: self.status()["queue"]["sent"] == 1, "ok sent")
        self.assertEqual(self.sent(), ["ok@example.com"])
        self.assertEqual(self.status()["suppressions"]["rejected"], 1)

    def test_import_list_remove(self):
        self.start(alert=False)
        csv = os.path.join(self.dir, "export.csv")
        with open(csv, "w") as f:
            # SendGrid's bounce export: email, created, reason (the bounce text).
            f.write("email,created,reason\n"
                    "a1@example.com,1700000000,550 5.1.1 no such user\n"
                    "not-an-address,1700000001,x\n"
                    "\n"
                    "A2@Example.com,1700000002,spamreport\n")
            for i in range(5):
                f.write("bulk%d@example.net,1700000003,\n" % i)
        r = self.cli("suppress", "import", "--chunk", "3", csv, ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("export.csv:3: not-an-address", r.stderr)
        self.assertIn("7 added", r.stdout)
        self.assertIn("1 invalid", r.stdout)
        self.assertGreaterEqual(r.stderr.count("import: "), 3)  # one progress line per chunk
        lst = self.cli("suppress", "list", "--json").stdout.splitlines()
        rows = {json.loads(x)["email"]: json.loads(x) for x in lst}
        self.assertEqual(len(rows), 7)
        self.assertEqual(rows["a1@example.com"]["reason"], "import")
        self.assertEqual(rows["a1@example.com"]["detail"], "550 5.1.1 no such user")
        self.assertEqual(rows["a2@example.com"]["reason"], "spamreport")
        r = self.cli("suppress", "list", "--reason", "spamreport")
        self.assertEqual(len(r.stdout.splitlines()), 1)
        r = self.cli("suppress", "list", "--limit", "2")
        self.assertEqual(len(r.stdout.splitlines()), 2)
        self.cli("suppress", "remove", "a1@example.com")
        r = self.cli("suppress", "remove", "a1@example.com", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("404", r.stderr)
        self.assertNotIn("a1@example.com", self.cli("suppress", "list").stdout)
        # Removed means sendable again.
        st, _ = self.request("POST", "/v3/mail/send", mail("a1@example.com"))
        self.assertEqual(st, 202)
        wait_for(lambda: self.status()["queue"]["sent"] == 1, "a1 sent again")
        self.assertIn("a1@example.com", self.sent())

    # --- pause, resume, alerts --------------------------------------------------

    def test_pause_resume_alerts(self):
        self.start()
        with Hook.lock:
            Hook.fail = 2  # the first two POSTs get a 500 and must be retried
        r = self.cli("pause", "--who", "alice")
        self.assertIn("new route paused", r.stdout)
        s = self.status()
        self.assertTrue(s["routes"]["new"]["paused"])
        st, _ = self.request("POST", "/v3/mail/send", mail("p1@example.com"))
        self.assertEqual(st, 202)
        wait_for(lambda: self.status()["queue"]["queued"] == 1, "held while paused")
        self.assertEqual(self.sent(), [])
        pause = wait_for(lambda: Hook.events("pause"), "the pause alert")[0]
        self.assertEqual(pause["route"], "new")
        self.assertIn("paused by operator alice", pause["text"])
        for k in ("date", "day", "cap", "bounce_rate", "complaint_rate", "backlog", "host"):
            self.assertIn(k, pause)
        with Hook.lock:
            self.assertEqual([c for _, c in Hook.answers][:3], [500, 500, 200])
            self.assertTrue(all(p.startswith("/services/" + HOOK_SECRET)
                                for p, _ in Hook.answers))

        r = self.cli("resume", "--who", "alice")
        self.assertIn("new route running", r.stdout)
        wait_for(lambda: self.status()["queue"]["sent"] == 1, "sent after resume")
        self.assertEqual(self.sent(), ["p1@example.com"])
        s = self.status()
        self.assertFalse(s["routes"]["new"]["paused"])
        texts = [e["text"] for e in s["recent_events"]]
        self.assertIn("new route resumed by operator alice", texts[0])
        self.assertTrue(any("paused by operator alice" in t for t in texts))
        res = wait_for(lambda: Hook.events("resume"), "the resume alert")[0]
        self.assertIn("resumed by operator alice", res["text"])
        out = self.cli("status").stdout
        self.assertIn("resumed by operator alice", out)
        # Without --who the CLI names the user running it.
        self.cli("pause", "--route", "old")
        ev = wait_for(lambda: Hook.events("pause")[1:], "the second pause alert")[0]
        self.assertEqual(ev["route"], "old")
        self.assertIn("operator ", ev["text"])
        # The receiver has the alert before warmupd has read its answer.
        wait_for(lambda: self.status()["alerts"]["sent"] >= 3, "three alerts counted as sent")
        self.assert_secrets_absent()

    def test_backlog_alert(self):
        self.start(backlog=3)
        self.cli("pause")
        for i in range(5):
            st, _ = self.request("POST", "/v3/mail/send", mail("b%d@example.com" % i))
            self.assertEqual(st, 202)
        ev = wait_for(lambda: Hook.events("backlog"), "the backlog alert")[0]
        self.assertGreater(ev["backlog"], 3)
        self.assertIn("backlog", ev["text"])
        # Once only while it stays above: a second check passes without one.
        n = len(Hook.events("backlog"))
        log_checks = lambda: self.d.logtext().count("alert: backlog")
        first = log_checks()
        self.cli("resume")
        wait_for(lambda: "below" in self.d.logtext(), "the backlog falling below again")
        self.assertEqual(len(Hook.events("backlog")), n)
        self.assertGreaterEqual(log_checks(), first)
        self.assert_secrets_absent()

    def test_gate_halt_alert(self):
        # Bounces reported through the Event Webhook halt the ramp; the halt
        # reaches the alert webhook with its numbers.
        self.start(extra="[webhook]\nauth = none\n")
        now = int(time.time())
        events = [{"email": "u%d@gmail.com" % i, "timestamp": now, "event": ev,
                   "sg_event_id": "ev-%d" % i, "sg_message_id": "none.%d" % i,
                   "warmup_route": "new", "warmup_day": "1", "type": "bounce"}
                  for i, ev in enumerate(["delivered"] * 100 + ["bounce"] * 20)]
        c = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=30)
        try:
            c.request("POST", "/v1/events/sendgrid", body=json.dumps(events).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 200, r.read())
        finally:
            c.close()
        ev = wait_for(lambda: Hook.events("gate_halt"), "the gate halt alert")[0]
        self.assertEqual(ev["route"], "new")
        # The batch is judged event by event: the halt comes as soon as the
        # gate's pool holds 120 outcomes (the gate's min_sample), the last
        # of them the 20th bounce.
        self.assertGreater(ev["bounce_rate"], 0.05)
        self.assertLessEqual(ev["bounce_rate"], 20 / 120)
        self.assertIn("bounce rate", ev["text"])
        self.assertTrue(self.status()["routes"]["new"]["paused"])
        self.assert_secrets_absent()

def main():
    global WARMUPD, FAKE, WARMUP
    WARMUPD, FAKE, WARMUP = sys.argv[1:4]
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)


if __name__ == "__main__":
    main()

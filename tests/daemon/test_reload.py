#!/usr/bin/env python3
"""warmupd reloading its configuration file: on SIGHUP and `warmup reload`
the new schedule and throttles take over mid-day with today's counters
kept; a bad file, or one changing what needs a restart, is refused with
its reason in the log, the status and a push alert, and the running
configuration stays in force; a cap lowered below what was used sends
nothing more on the new route today.

usage: test_reload.py WARMUPD FAKE_SENDGRID WARMUP [unittest arguments]
"""
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for, mail  # noqa: E402

WARMUPD = None
FAKE = None
WARMUP = None
TOKEN = "tok-Reload-3e9b7a15c2d8f0461b7c"
API_KEY = "SG.Reload-8c1f4e2a7b0d9365e1f4.pQ2r"


def read(path):
    with open(path) as f:
        return f.read()


class AlertHook(http.server.ThreadingHTTPServer):
    """A push-alert webhook on loopback that keeps every JSON body."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), AlertHandler)
        self.bodies = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def kinds(self):
        with self.lock:
            return [b.get("kind") or b.get("event") for b in self.bodies]

    def stop(self):
        self.shutdown()
        self.server_close()


class AlertHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.bodies.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class ReloadTest(warmuptest.ProcTestCase):
    prefix = "warmupd-reload-"

    def setUp(self):
        super().setUp()
        self.fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(self.fake)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        super().tearDown()

    def schedule(self, cap):
        self.write("schedule.csv", "# test schedule\nday,cap\n" +
                   "".join("%d,%d\n" % (i + 1, cap) for i in range(3)))

    def config(self, cap, overflow="defer", listen="127.0.0.1:0", old_port=None,
               google_rate="", alert_url=None, extra=""):
        """Writes schedule.csv with cap on every day and warmupd.conf."""
        self.schedule(cap)
        old = ("[route old]\ntype = smtp\nurl = smtp://127.0.0.1:%d\ntls = none\n"
               "timeout = 5s\n" % old_port) if old_port else ""
        isp = "[isp google]\nnew_rate = %s\n" % google_rate if google_rate else ""
        alert = ("[alert]\nwebhook_url = http://127.0.0.1:%d/hook\nbacklog_threshold = 0\n"
                 % alert_url) if alert_url else ""
        return self.write("warmupd.conf", f"""; reload test config
[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = {overflow}
after = hold

[listen]
address = {listen}
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{self.fake.port}
api_key_env = WARMUP_TEST_KEY
timeout = 5s

{old}
{isp}
{alert}
[backoff]
retry_min = 1s
retry_max = 2s

{extra}
""")

    def daemon(self, config):
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, self.dir, config, env, TOKEN)
        self.procs.append(d)
        return d

    def send(self, d, n, start=0, domain="gmail.com"):
        for i in range(start, start + n):
            st, _, b = d.send(mail(["r%d@%s" % (i, domain)], subject="m%d" % i))
            self.assertEqual(st, 202, b)

    def reloaded(self, d, count, ok=True):
        """Waits for the count-th reload (applied and refused together) and
        returns the status then."""
        def done():
            s = d.status()
            r = s.get("reload")
            return s if r and r["applied"] + r["refused"] >= count else None
        s = wait_for(done, "reload %d" % count)
        self.assertEqual(s["reload"]["ok"], ok, s["reload"])
        return s

    def cli(self, d, *args, token=True):
        env = dict(os.environ)
        env.pop("WARMUP_TOKEN", None)
        if token:
            env["WARMUP_TOKEN"] = TOKEN
        return subprocess.run([WARMUP, "reload", "--url", "http://127.0.0.1:%d" % d.port,
                               *args], env=env, capture_output=True, text=True, timeout=60)

    # --- the tests ----------------------------------------------------------

    def test_a_sighup_raises_the_cap_and_keeps_the_counters(self):
        conf = self.config(5)
        d = self.daemon(conf)
        self.send(d, 8)
        wait_for(lambda: len(self.fake.sent_recipients()) == 5, "5 sent under cap 5")
        s = d.status()
        self.assertEqual((s["cap"], s["used"], s["queue"]["queued"]), (5, 5, 3))
        self.assertIsNone(s["reload"])

        self.config(12, google_rate="100/s")
        d.proc.send_signal(signal.SIGHUP)
        s = self.reloaded(d, 1)
        self.assertEqual(s["cap"], 12)
        msg = s["reload"]["message"]
        self.assertIn("today's cap 5 -> 12 (5 used)", msg)
        self.assertIn("throttles of google", msg)
        # The three deferred units go now; used counts on from 5, not from 0.
        wait_for(lambda: len(self.fake.sent_recipients()) == 8, "8 sent after the reload")
        s = wait_for(lambda: (lambda s: s if s["used"] == 8 else None)(d.status()), "used 8")
        self.assertEqual(s["routes"]["new"]["sent"], 8)
        self.assertEqual(s["remaining"], 4)
        self.send(d, 10, start=100)
        wait_for(lambda: len(self.fake.sent_recipients()) == 12, "12 sent: the new cap")
        s = wait_for(lambda: (lambda s: s if s["queue"]["queued"] == 6 else None)(d.status()),
                     "6 left queued beyond the new cap")
        self.assertEqual((s["used"], s["remaining"]), (12, 0))
        self.assertEqual(len(self.fake.sent_recipients()), 12)
        self.assertRegex(d.logtext(), r"info: reload: .*warmupd.conf: schedule .*today's cap 5 -> 12")
        kinds = [e.get("kind") for e in s.get("recent_events", [])]
        self.assertIn("reload", kinds)

    def test_b_warmup_reload_asks_the_daemon(self):
        conf = self.config(3)
        d = self.daemon(conf)
        self.send(d, 4)
        wait_for(lambda: len(self.fake.sent_recipients()) == 3, "3 sent under cap 3")
        # The endpoint is a control endpoint: the bearer token is required.
        st, _, _ = d.request("POST", "/v1/reload", {}, token=None)
        self.assertEqual(st, 401)
        st, _, _ = d.request("GET", "/v1/reload")
        self.assertEqual(st, 405)
        r = self.cli(d, token=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("401", r.stderr)
        self.assertIsNone(d.status()["reload"])

        r = self.cli(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "reloaded: nothing changed\n")
        self.schedule(7)
        r = self.cli(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("today's cap 3 -> 7 (3 used)", r.stdout)
        s = self.reloaded(d, 2)
        self.assertEqual((s["cap"], s["reload"]["applied"]), (7, 2))
        wait_for(lambda: len(self.fake.sent_recipients()) == 4, "the 4th sent")
        self.assertEqual(wait_for(lambda: (lambda s: s if s["used"] == 4 else None)(d.status()),
                                  "used 4")["remaining"], 3)

    def test_c_a_bad_file_is_refused_and_the_old_cap_stays(self):
        hook = AlertHook()
        self.servers.append(hook)
        conf = self.config(3, alert_url=hook.server_address[1])
        d = self.daemon(conf)
        self.send(d, 5)
        wait_for(lambda: len(self.fake.sent_recipients()) == 3, "3 sent under cap 3")

        # A bad key and a bad value, and a cap raised beside them: nothing of it applies.
        good = read(conf)
        self.schedule(50)
        with open(conf, "w") as f:
            f.write(good.replace("[backoff]\n", "[backoff]\nretry_sometimes = 1s\n")
                        .replace("overflow = defer", "overflow = sideways"))
        lines = read(conf).split("\n")
        bad_key = lines.index("retry_sometimes = 1s") + 1
        bad_value = lines.index("overflow = sideways") + 1
        d.proc.send_signal(signal.SIGHUP)
        s = self.reloaded(d, 1, ok=False)
        msg = s["reload"]["message"]
        self.assertIn("warmupd.conf:%d: [backoff] retry_sometimes" % bad_key, msg)
        self.assertIn("warmupd.conf:%d: [warmup] overflow" % bad_value, msg)
        self.assertEqual((s["cap"], s["used"], s["queue"]["queued"]), (3, 3, 2))
        log = d.logtext()
        self.assertIn("reload: %s:%d: [backoff] retry_sometimes" % (conf, bad_key), log)
        self.assertIn("refused (2 problems); the running configuration stays", log)
        wait_for(lambda: "reload_refused" in hook.kinds(), "a reload_refused alert")
        with hook.lock:
            alert = [b for b in hook.bodies if b.get("kind") == "reload_refused"][0]
        self.assertIn("retry_sometimes", alert["text"])
        metrics = d.metrics()
        self.assertIn('warmup_reloads_total{outcome="refused"} 1', metrics)
        self.assertIn("warmup_reload_ok 0", metrics)

        # A syntax error: refused through the CLI, every problem printed.
        with open(conf, "w") as f:
            f.write(good.replace("[backoff]\n", "[backoff\n"))
        r = self.cli(d)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"warmup reload: .*warmupd.conf:\d+: ")
        self.assertIn("refused; warmupd keeps its running configuration", r.stderr)
        s = self.reloaded(d, 2, ok=False)
        self.assertEqual(s["cap"], 3)
        self.assertEqual(len(self.fake.sent_recipients()), 3)

        # Put right, the file applies: the cap of the schedule on disk now.
        with open(conf, "w") as f:
            f.write(good)
        r = self.cli(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = self.reloaded(d, 3)
        self.assertEqual(s["cap"], 50)
        wait_for(lambda: len(self.fake.sent_recipients()) == 5, "5 sent")

    def test_d_what_needs_a_restart_is_named(self):
        conf = self.config(4)
        d = self.daemon(conf)
        self.send(d, 2)
        wait_for(lambda: len(self.fake.sent_recipients()) == 2, "2 sent")
        good = read(conf)
        port = warmuptest.free_port()
        self.schedule(9)
        with open(conf, "w") as f:
            f.write(good.replace("address = 127.0.0.1:0", "address = 127.0.0.1:%d" % port)
                        .replace("path = store.db", "path = other.db"))
        line = read(conf).split("\n").index("address = 127.0.0.1:%d" % port) + 1
        r = self.cli(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("warmupd.conf:%d: [listen] address: cannot change on reload "
                      "(127.0.0.1:0 -> 127.0.0.1:%d); restart warmupd" % (line, port), r.stderr)
        self.assertIn("[store] path: cannot change on reload", r.stderr)
        with open(conf, "w") as f:
            f.write(good + "[status]\nopen_to = none\n")
        r = self.cli(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[status] open_to: cannot change on reload; restart warmupd", r.stderr)
        s = self.reloaded(d, 2, ok=False)
        self.assertIn("[status] open_to", s["reload"]["message"])
        self.assertEqual(s["cap"], 4)
        # A changed secret is named, never shown.
        env_key = "SG.Rotated-0a1b2c3d4e5f60718293.zZ9y"
        self.write("key", env_key)
        with open(conf, "w") as f:
            f.write(good.replace("api_key_env = WARMUP_TEST_KEY", "api_key_file = key"))
        r = self.cli(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[route new] api key: cannot change on reload", r.stderr)
        self.assertNotIn(env_key, r.stderr + d.logtext() + json.dumps(d.status()))
        # The intake still takes mail under the running configuration.
        self.send(d, 3, start=10)
        wait_for(lambda: len(self.fake.sent_recipients()) == 4, "4 sent: the old cap")
        self.assertEqual(d.status()["cap"], 4)

    def test_e_a_cap_lowered_below_used_sends_the_rest_old(self):
        sink = warmuptest.CountingSink()
        self.servers.append(sink)
        conf = self.config(10, overflow="old", old_port=sink.port)
        d = self.daemon(conf)
        self.send(d, 6)
        wait_for(lambda: len(self.fake.sent_recipients()) == 6, "6 sent new")
        self.config(4, overflow="old", old_port=sink.port)
        d.proc.send_signal(signal.SIGHUP)
        s = self.reloaded(d, 1)
        self.assertEqual((s["cap"], s["used"], s["remaining"]), (4, 6, 0))
        self.assertIn("today's cap 10 -> 4 (6 used: no more new today)", s["reload"]["message"])
        self.send(d, 5, start=50)
        wait_for(lambda: sink.count() == 5, "5 sent old")
        s = d.status()
        self.assertEqual((s["used"], s["routes"]["old"]["sent"]), (6, 5))
        self.assertEqual(len(self.fake.sent_recipients()), 6)

    def test_f_isp_groups_added_not_removed(self):
        conf = self.config(10, extra="[isp acme]\ndomains = acme.example\n")
        d = self.daemon(conf)
        good = read(conf)
        with open(conf, "w") as f:
            f.write(good + "[isp zeta]\ndomains = zeta.example\n")
        r = self.cli(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("isp groups added: zeta", r.stdout)
        self.send(d, 2, domain="zeta.example")
        s = wait_for(lambda: (lambda s: s if s["isps"].get("zeta", {}).get("new", {})
                              .get("sent") == 2 else None)(d.status()), "2 sent to zeta")
        self.assertEqual(s["used"], 2)
        r = self.cli(d)
        self.assertEqual(r.stdout, "reloaded: nothing changed\n")
        # Removing a group, or moving one, is refused by name.
        with open(conf, "w") as f:
            f.write(good)
        r = self.cli(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[isp zeta]: an ISP group cannot be removed on reload", r.stderr)
        with open(conf, "w") as f:
            f.write(good.replace("[isp acme]\ndomains = acme.example\n", "") +
                    "[isp zeta]\ndomains = zeta.example\n[isp acme]\ndomains = acme.example\n")
        r = self.cli(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("[isp acme]: the ISP groups cannot be reordered on reload", r.stderr)
        self.send(d, 1, start=10, domain="zeta.example")
        wait_for(lambda: len(self.fake.sent_recipients()) == 3, "3 sent")


if __name__ == "__main__":
    WARMUPD, FAKE, WARMUP = sys.argv[1], sys.argv[2], sys.argv[3]
    del sys.argv[1:4]
    unittest.main(verbosity=2)

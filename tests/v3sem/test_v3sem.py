#!/usr/bin/env python3
"""What an application's v3 fields do, on the new route and on the old one.

usage: test_v3sem.py WARMUPD FAKE_SENDGRID [unittest arguments]

Each test runs warmupd with fake-sendgrid as the new route and a capturing
SMTP server (test_split's Capture) as the old relay, with the new route open
(cap large enough) or closed (the start date ahead: everything overflows to
the old route).  Waiting is polling with a deadline, never a fixed sleep.
"""
import datetime
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "split"))
sys.path.insert(0, os.path.join(HERE, "..", "ops"))
import http.server  # noqa: E402
import threading  # noqa: E402
import test_split  # noqa: E402
from test_ops import Hook  # noqa: E402
from warmuptest import today, wait_for, mail  # noqa: E402


class V3SemTest(test_split.SplitTest):
    """The split test's building blocks; only the tests below run."""

    def start(self, open_=True, overflow="old", cap=40, extra_new="", extra_old="",
              extra_conf=""):
        """warmupd with the new route open (today is day 1) or closed (the
        start two days ahead: cap 0, all overflows)."""
        self.fake_ = self.fake()
        self.old = self.capture()
        start = None if open_ else (today() + datetime.timedelta(days=2)).isoformat()
        conf = self.config(self.v3_new(self.fake_) + "\n" + extra_new,
                           self.smtp_route(self.old.port, extra=extra_old),
                           cap=cap, start=start, overflow=overflow)
        with open(conf, "a") as f:
            f.write(extra_conf)
        self.d = self.daemon(conf)
        return self.d

    def both(self, fn):
        """Runs fn(open_) with the new route open, then closed."""
        for open_ in (True, False):
            with self.subTest(route_open=open_):
                fn(open_)
                self.tearDown()
                self.setUp()

    # --- sandbox_mode -------------------------------------------------------

    def test_sandbox_answered_200_nothing_kept(self):
        def run(open_):
            d = self.start(open_)
            m = mail(["sand@example.com"], mail_settings={"sandbox_mode": {"enable": True}})
            st, _, b = d.send(m)
            self.assertEqual(st, 200, b)
            # A normal request after it: the sandbox one left nothing behind.
            st, _, b = d.send(mail(["real@example.com"]))
            self.assertEqual(st, 202, b)
            s = self.settled(d, 1)
            self.assertEqual(s["used"], 1 if open_ else 0)
            everyone = self.fake_.sent_recipients() + self.old.recipients()
            self.assertEqual(everyone, ["real@example.com"])
            self.assertIn("warmup_intake_sandbox_total 1", d.metrics())
            # An invalid sandbox request is still refused, as SendGrid does.
            bad = mail(["x@example.com"], mail_settings={"sandbox_mode": {"enable": "yes"}})
            st, _, _ = d.send(bad)
            self.assertEqual(st, 400)
        self.both(run)

    # --- send_at ------------------------------------------------------------

    def test_send_at_held_until_its_time(self):
        def run(open_):
            d = self.start(open_)
            at = int(time.time()) + 6
            m = mail(["later@example.com", "now@example.com"])
            m["personalizations"][0]["send_at"] = at
            st, _, b = d.send(m)
            self.assertEqual(st, 202, b)
            # The one without send_at goes at once; the other waits.
            s = self.settled(d, 1, queued=1)
            self.assertLess(time.time(), at, "the test was too slow to see the hold")
            self.assertEqual(s["used"], 1 if open_ else 0)
            s = self.settled(d, 2)
            self.assertGreaterEqual(time.time(), at)
            self.assertEqual(s["used"], 2 if open_ else 0)
            got = self.fake_.sent_recipients() if open_ else self.old.recipients()
            self.assertEqual(sorted(got), ["later@example.com", "now@example.com"])
        self.both(run)

    def test_send_at_global_and_refused_beyond_72h(self):
        d = self.start()
        now = int(time.time())
        st, _, b = d.send(mail(["far@example.com"], send_at=now + 72 * 3600 + 120))
        self.assertEqual(st, 400, b)
        err = json.loads(b)["errors"][0]
        self.assertEqual(err["field"], "send_at")
        self.assertIn("72 hours", err["message"])
        m = mail(["a@example.com", "b@example.com"])
        m["personalizations"][1]["send_at"] = now + 73 * 3600
        st, _, b = d.send(m)
        self.assertEqual(st, 400, b)
        self.assertEqual(json.loads(b)["errors"][0]["field"], "personalizations.1.send_at")
        # Within 72 hours: accepted and held (queued, not sent).
        st, _, b = d.send(mail(["soon@example.com"], send_at=now + 71 * 3600))
        self.assertEqual(st, 202, b)
        s = self.settled(d, 0, queued=1)
        self.assertEqual(s["used"], 0)
        # A send_at in the past goes at once.
        st, _, b = d.send(mail(["past@example.com"], send_at=now - 60))
        self.assertEqual(st, 202, b)
        self.settled(d, 1, queued=1)
        self.assertEqual(self.fake_.sent_recipients(), ["past@example.com"])

    # --- tracking_settings ------------------------------------------------

    def tracking_run(self, force):
        d = self.start(extra_new="click_tracking = off\nopen_tracking = on\n" +
                       ("force_tracking = on\n" if force else ""))
        st, _, b = d.send(mail(["said@example.com"], tracking_settings={
            "click_tracking": {"enable": True}, "subscription_tracking": {"enable": True}}))
        self.assertEqual(st, 202, b)
        st, _, b = d.send(mail(["silent@example.com"]))
        self.assertEqual(st, 202, b)
        self.settled(d, 2)
        return {r["body"]["personalizations"][0]["to"][0]["email"]: r["body"]["tracking_settings"]
                for r in self.fake_.records()}

    def test_tracking_app_setting_wins(self):
        ts = self.tracking_run(force=False)
        self.assertEqual(ts["said@example.com"]["click_tracking"]["enable"], True)
        self.assertEqual(ts["said@example.com"]["subscription_tracking"]["enable"], True)
        self.assertEqual(ts["said@example.com"]["open_tracking"]["enable"], True)   # route's
        self.assertEqual(ts["silent@example.com"]["click_tracking"]["enable"], False)
        self.assertEqual(ts["silent@example.com"]["open_tracking"]["enable"], True)
        self.assertEqual(ts["silent@example.com"]["subscription_tracking"]["enable"], False)

    def test_tracking_forced_by_route(self):
        ts = self.tracking_run(force=True)
        for who in ("said@example.com", "silent@example.com"):
            self.assertEqual(ts[who]["click_tracking"]["enable"], False)
            self.assertEqual(ts[who]["open_tracking"]["enable"], True)
            self.assertEqual(ts[who]["subscription_tracking"]["enable"], False)

    # --- template_id --------------------------------------------------------

    TEMPLATE = {"template_id": "d-0123456789abcdef0123456789abcdef"}

    def template_mail(self, who, fallback):
        m = mail([who], **self.TEMPLATE)
        del m["subject"]
        m["personalizations"][0]["dynamic_template_data"] = {"name": "Hanako"}
        if fallback:
            m["content"] = [{"type": "text/plain", "value": "Hello {{name}}"}]
        else:
            del m["content"]
        return m

    def test_template_goes_by_v3_route_when_open(self):
        d = self.start(open_=True)
        for i, fallback in enumerate((False, True)):
            st, _, b = d.send(self.template_mail("t%d@example.com" % i, fallback))
            self.assertEqual(st, 202, b)
        s = self.settled(d, 2)
        self.assertEqual(s["used"], 2)
        self.assertEqual(sorted(self.fake_.sent_recipients()), ["t0@example.com", "t1@example.com"])
        for r in self.fake_.records():
            self.assertEqual(r["body"]["template_id"], self.TEMPLATE["template_id"])
        self.assertEqual(self.old.messages, [])
        self.assertEqual(s["queue"]["waiting_for_v3"], 0)

    def test_template_waits_when_route_closed(self):
        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        self.stoppers.append(hook.shutdown)
        with Hook.lock:
            Hook.bodies.clear()
        d = self.start(open_=False, extra_conf=(
            "[alert]\nwebhook_url = http://127.0.0.1:%d/hook\nbacklog_check = 1s\n"
            "template_wait = 1s\n" % hook.server_address[1]))
        for i, fallback in enumerate((False, True)):
            st, _, b = d.send(self.template_mail("t%d@example.com" % i, fallback))
            self.assertEqual(st, 202, b)
        st, _, b = d.send(mail(["plain@example.com"]))
        self.assertEqual(st, 202, b)
        # The plain mail overflows to the old relay; the templates wait.
        s = self.settled(d, 1, queued=2)
        self.assertEqual(self.old.recipients(), ["plain@example.com"])
        self.assertEqual(self.fake_.sent_recipients(), [])
        self.assertEqual(s["queue"]["waiting_for_v3"], 2)
        self.assertEqual(s["queue"]["failed"], 0)
        self.assertIn("warmup_queued_waiting_for_v3 2", d.metrics())
        a = wait_for(lambda: Hook.events("template_wait"), "a template_wait alert")
        self.assertEqual(len(a), 1)
        self.assertIn("2 template units waiting", a[0]["text"])
        self.assertEqual(self.old.recipients(), ["plain@example.com"])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_v3sem.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    test_split.WARMUPD = os.path.abspath(sys.argv[1])
    test_split.FAKE = os.path.abspath(sys.argv[2])
    loader = unittest.TestLoader()
    names = sorted(n for n in V3SemTest.__dict__ if n.startswith("test_"))
    if len(sys.argv) > 3:
        names = [n for n in names if any(a in n for a in sys.argv[3:])]
    suite = unittest.TestSuite(V3SemTest(n) for n in names)
    ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
    sys.exit(0 if ok else 1)

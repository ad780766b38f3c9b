#!/usr/bin/env python3
"""Engaged recipients first and the gap that steps the ramp back, in
warmupd: the application's marks (custom_args warmup_engaged on the API,
X-Warmup-Engaged over SMTP), what open and click events teach, the reserve
that keeps the others waiting, and a step back after an outage that
survives a restart.

usage: test_engage.py WARMUPD FAKE_SENDGRID [unittest arguments]

The schedule's cap is 86,400 a day with a burst of an hour: tokens come one
a second and the bucket holds 3,600, so engaged units take a token at once
and the others only once the bucket is full again, some seconds later.
"""
import datetime
import json
import os
import smtplib
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import midday_tz, wait_for, mail  # noqa: E402

TZ = midday_tz()  # the pacing figures below assume hours left in the local day


def today():
    return warmuptest.today(TZ)

WARMUPD = None
FAKE = None
TOKEN = "tok-Intake-5c1e8a93d2f7b4066ea1"
API_KEY = "SG.Key-3a7f90c2e5d14b68a0c9.r8Yw"
EPOCH = datetime.date(1970, 1, 1)


class EngageTest(warmuptest.ProcTestCase):
    prefix = "warmupd-engage-"

    def config(self, fake_port, warmup="", extra="", start=None, cap=86400):
        self.write("schedule.csv", "# test schedule\nday,cap\n" +
                   "".join("%d,%d\n" % (i, cap * i) for i in range(1, 11)))
        return self.write("warmupd.conf", f"""; engage test config
[warmup]
schedule = schedule.csv
start = {(start or today()).isoformat()}
timezone = {TZ}
burst = 1h
overflow = defer
after = hold
{warmup}

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{fake_port}
api_key_env = WARMUP_TEST_KEY
timeout = 5s

[webhook]
auth = none

[log]
level = debug
{extra}
""")

    def start(self, args=(), **kw):
        fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(fake)
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, self.dir, self.config(fake.port, **kw), env, TOKEN,
                               args=args)
        self.procs.append(d)
        return fake, d

    def settled(self, d, sent):
        """Status once `sent` units went new and nothing is in flight."""
        return wait_for(lambda: (lambda s: s if s["used"] == sent
                                 and s["queue"]["inflight"] == 0 else None)(d.status()),
                        "%d sent, none in flight" % sent)

    def test_api_marks_go_first_and_the_others_wait_for_a_full_bucket(self):
        fake, d = self.start()
        recent = (today() - datetime.timedelta(days=10)).isoformat()
        m = mail(["n%d@example.net" % i for i in range(10)] +      # no mark
                 ["t%d@example.net" % i for i in range(10)] +      # true
                 ["r%d@example.net" % i for i in range(5)] +       # engaged 10 days ago
                 ["o%d@example.net" % i for i in range(5)] +       # engaged in 2020: too old
                 ["f@example.net"])                                # false
        ps = m["personalizations"]
        for p in ps[10:20]:
            p["custom_args"] = {"warmup_engaged": "true"}
        for p in ps[20:25]:
            p["custom_args"] = {"warmup_engaged": recent}
        for p in ps[25:30]:
            p["custom_args"] = {"warmup_engaged": "2020-01-01"}
        ps[30]["custom_args"] = {"warmup_engaged": "false"}
        st, _, b = d.send(m)
        self.assertEqual(st, 202, b)
        s = self.settled(d, 15)
        self.assertEqual(s["engaged"]["new"], 15)
        self.assertEqual(s["engaged"]["other_new"], 0)
        self.assertTrue(s["engaged"]["applies"])
        self.assertTrue(s["engaged"]["active"])
        self.assertEqual(s["engaged"]["first"], "until_cap_exceeds_traffic")
        self.assertEqual(s["engaged"]["age_days"], 90)
        self.assertEqual(s["queue"]["queued"], 16)
        sent = set(fake.sent_recipients())
        self.assertEqual(sent, {"t%d@example.net" % i for i in range(10)} |
                         {"r%d@example.net" % i for i in range(5)})
        # The marks travel on to SendGrid as the application wrote them.
        bodies = [r["body"] for r in fake.records()]
        self.assertIn("warmup_engaged", json.dumps(bodies))
        # 15 tokens taken: the bucket is full again after 15 s, and then
        # the others take what would overflow it, one a second.
        s = wait_for(lambda: (lambda s: s if s["engaged"]["other_new"] >= 2 else None)(
            d.status()), "the others going new once the bucket is full", timeout=45)
        self.assertEqual(s["engaged"]["new"], 15)
        self.assertIn("warmup_engaged_new 15", d.metrics())

    def test_open_and_click_events_teach_engagement(self):
        fake, d = self.start()
        now = int(datetime.datetime.now().timestamp())
        events = [
            {"email": "A@example.net", "event": "open", "timestamp": now, "sg_event_id": "e1"},
            {"email": "b@example.net", "event": "click", "timestamp": now, "sg_event_id": "e2"},
            {"email": "c@example.net", "event": "open", "timestamp": now, "sg_event_id": "e3",
             "sg_machine_open": True},
            {"email": "d@example.net", "event": "open", "timestamp": now - 200 * 86400,
             "sg_event_id": "e4"},
        ]
        st, _, b = d.request("POST", "/v1/events/sendgrid", events, token=None)
        self.assertEqual(st, 200, b)
        s = d.status()
        self.assertEqual(s["engaged"]["noted"], 3)  # the machine's open says nothing
        with sqlite3.connect(os.path.join(self.dir, "store.db")) as db:
            rows = dict(db.execute("SELECT email, at FROM engagement"))
        self.assertEqual(set(rows), {"a@example.net", "b@example.net", "d@example.net"})
        st, _, b = d.send(mail(["c@example.net", "d@example.net", "a@example.net",
                                "e@example.net", "b@example.net"]))
        self.assertEqual(st, 202, b)
        s = self.settled(d, 2)
        self.assertEqual(sorted(fake.sent_recipients()), ["a@example.net", "b@example.net"])
        self.assertEqual(s["engaged"]["new"], 2)
        self.assertEqual(s["queue"]["queued"], 3)

    def test_smtp_header_marks_a_message(self):
        port_file = os.path.join(self.dir, "smtp.port")
        fake, d = self.start(args=("--smtp-port-file", port_file),
                             extra="[smtp]\naddress = 127.0.0.1:0\n")
        port = warmuptest.read_port(port_file, d.proc)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("app@sender.example", ["e%d@example.net" % i for i in range(3)],
                       "From: app@sender.example\r\nTo: list@example.net\r\n"
                       "X-Warmup-Engaged: true\r\nSubject: hi\r\n\r\nHello\r\n")
        self.settled(d, 3)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("app@sender.example", ["x%d@example.net" % i for i in range(3)],
                       "From: app@sender.example\r\nTo: list@example.net\r\n"
                       "Subject: hi\r\n\r\nHello\r\n")
        s = wait_for(lambda: (lambda s: s if s["queue"]["queued"] == 3 else None)(d.status()),
                     "the unmarked message waiting")
        self.assertEqual(s["used"], 3)
        self.assertEqual(s["engaged"]["new"], 3)
        self.assertEqual(sorted(fake.sent_recipients()), ["e%d@example.net" % i for i in range(3)])
        # The header is kept: warmupd sends what it accepted.
        hdrs = fake.records()[0]["body"].get("headers", {})
        self.assertEqual(hdrs.get("X-Warmup-Engaged"), "true")

    def test_policy_off_sends_everyone(self):
        fake, d = self.start(warmup="engaged_first = off")
        m = mail(["n%d@example.net" % i for i in range(5)] + ["t@example.net"])
        m["personalizations"][5]["custom_args"] = {"warmup_engaged": "true"}
        st, _, b = d.send(m)
        self.assertEqual(st, 202, b)
        s = self.settled(d, 6)
        self.assertEqual(s["engaged"]["first"], "off")
        self.assertFalse(s["engaged"]["applies"])
        self.assertEqual(s["engaged"]["new"], 1)
        self.assertEqual(s["engaged"]["other_new"], 5)

    def test_gap_after_an_outage_steps_back_and_survives_a_restart(self):
        """Day 4 of the schedule filled its cap, then warmupd was down for
        three days: today (day 8) is back on day 2, says so in the log, the
        status and the events, and stays there across a restart."""
        start = today() - datetime.timedelta(days=7)
        fake, d = self.start(warmup="gap = 3d\ngap_fill = 10%\ngap_back = 2", start=start,
                             cap=100)
        s = d.status()
        self.assertEqual(s["day"], 8)
        self.assertEqual(s["gap"]["days"], 3)
        self.assertEqual(s["gap"]["back"], 2)
        d.terminate()
        day4 = (today() - datetime.timedelta(days=4) - EPOCH).days
        state = ("warmup-engine 1\ndate %d\nstep 4\nheld 0 0\nhalted 0\nused 400\n"
                 "gate 0 0 0 0 0\nengaged 0 0 0 0 0\nend\n" % day4)
        with sqlite3.connect(os.path.join(self.dir, "store.db")) as db:
            db.execute("UPDATE engine SET state = ? WHERE id = 1", (state,))
        d.start()
        s = d.status()
        self.assertEqual(s["day"], 2)
        self.assertEqual(s["cap"], 200)
        self.assertTrue(s["gap"]["stepped_back"])
        self.assertEqual(s["gap"]["quiet"], 0)
        self.assertEqual(s["held_days"], 6)
        self.assertIn("warmup_gap_quiet_days 0", d.metrics())
        text = "gap: 3 quiet days in a row (the new route sent under 10% of its cap); " \
               "the schedule steps back from day 8 to day 2"
        self.assertIn(text, d.logtext())
        self.assertTrue(any(e["kind"] == "step_back" and text in e["text"]
                            for e in s["recent_events"]), s["recent_events"])
        d.terminate()
        d.start()
        s = d.status()
        self.assertEqual(s["day"], 2)
        self.assertTrue(s["gap"]["stepped_back"])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_engage.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

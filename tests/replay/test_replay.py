#!/usr/bin/env python3
"""`warmup simulate --from-store`: what a real warmupd recorded, replayed
under another schedule.

usage: test_replay.py WARMUPD FAKE_SENDGRID WARMUP [unittest arguments]

A warmupd with a cap of 10 takes mail for four ISP groups, sends through
fake-sendgrid, and hears bounces and deliveries from its Event Webhook;
`warmup simulate --from-store` then reads its store (while it runs, and
after it stopped) and must replay what it saw: the day's offered mail, its
split by ISP, its bounce rate (the gate reacts to it), all without changing
a byte of the store.  Waiting is polling the daemon's status with a
deadline, never a fixed sleep.
"""
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import wait_for, mail  # noqa: E402

WARMUPD = None
FAKE = None
WARMUP = None

TOKEN = "tok-Replay-3b8e1d07c9a2f4"
API_KEY = "SG.Replay-7c2d94e1a0b3.k5Rt"
EVENTS = "/v1/events/sendgrid"
# Posted per ISP group (the built-in groups' domains).
MIX = {"google": ("gmail.com", 16), "yahoo": ("yahoo.com", 12),
       "microsoft": ("outlook.com", 8), "other": ("example.net", 4)}


def file_state(path):
    """What must not change: the file's bytes, size and mtime."""
    st = os.stat(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return digest, st.st_size, st.st_mtime_ns


class ReplayTest(warmuptest.ProcTestCase):
    prefix = "warmup-replay-"

    def setUp(self):
        super().setUp()
        self.tz = warmuptest.midday_tz()
        self.day = warmuptest.today(self.tz)
        self.store = os.path.join(self.dir, "store.db")
        self.write("sched.csv", "day,cap\n1,10\n2,10\n")
        # The schedule replayed: room for every message on day 1.
        self.write("bigger.csv", "day,cap\n1,100\n2,100\n")
        self.conf = self.write("warmupd.conf", f"""[warmup]
schedule = sched.csv
start = {self.day.isoformat()}
timezone = {self.tz}
burst = day
overflow = defer

[listen]
address = 127.0.0.1:0
token_env = WU_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{{port}}
api_key_env = WU_KEY

[gate]
min_sample = 5

[webhook]
auth = none
""")

    def start(self):
        fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(fake)
        with open(self.conf) as f:
            text = f.read().replace("{port}", str(fake.port))
        with open(self.conf, "w") as f:
            f.write(text)
        env = dict(os.environ, WU_TOKEN=TOKEN, WU_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, self.dir, self.conf, env, TOKEN)
        self.procs.append(d)
        return fake, d

    def simulate(self, *args):
        r = subprocess.run([WARMUP, "simulate", "--quiet", *args], capture_output=True,
                           text=True, timeout=120, cwd=self.dir)
        return r

    def replay(self, *args):
        r = self.simulate("--from-store", self.store, "--config", self.conf,
                          "--format", "json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def post_mail(self, d):
        n = 0
        for isp, (domain, count) in MIX.items():
            for i in range(0, count, 4):
                rcpts = ["%s%02d@%s" % (isp, i + j, domain) for j in range(min(4, count - i))]
                st, mid, b = d.send(mail(rcpts))
                self.assertEqual(st, 202, b)
                n += len(rcpts)
        return n

    def events(self, fake):
        """A bounce for every sent recipient but the last three, which are
        delivered: per ISP group, (bounces, delivered)."""
        sent = fake.sent_recipients()
        evs, per = [], {}
        for k, rcpt in enumerate(sent):
            kind = "bounce" if k < len(sent) - 3 else "delivered"
            evs.append({"email": rcpt, "timestamp": int(time.time()), "event": kind,
                        "sg_event_id": "ev-replay-%d" % k, "warmup_route": "new",
                        "warmup_day": "1"})
            isp = rcpt.split("@")[0].rstrip("0123456789")
            b, dl = per.get(isp, (0, 0))
            per[isp] = (b + (kind == "bounce"), dl + (kind == "delivered"))
        return evs, per

    def test_replay(self):
        fake, d = self.start()
        posted = self.post_mail(d)
        self.assertEqual(posted, 40)
        st = wait_for(lambda: (lambda s: s if s["queue"]["sent"] == 10 and
                               s["queue"]["queued"] == 30 else None)(d.status()),
                      "the cap of 10 sent, 30 queued")
        self.assertEqual(st["used"], 10)

        # While the daemon holds the store: the arrivals are there, and
        # no bounce has been heard yet.
        live = self.replay("--schedule", "bigger.csv", "--overflow", "old")
        self.assertEqual(len(live["days"]), 1)
        self.assertEqual(live["days"][0]["date"], self.day.isoformat())
        self.assertEqual(live["days"][0]["offered"], 40)
        self.assertEqual(live["totals"]["bounces"], 0)
        self.assertEqual(live["days"][0]["gate"], "ok")

        evs, per = self.events(fake)
        self.assertEqual(len(evs), 10)
        stt, _, b = d.request("POST", EVENTS, raw=json.dumps(evs).encode(), token=None)
        self.assertEqual(stt, 200, b)
        self.assertEqual(json.loads(b)["applied"], 10)
        wait_for(lambda: d.status()["gate"]["state"] == "halt", "the daemon's gate halted")
        self.assertEqual(d.terminate(), 0)

        before = file_state(self.store)
        files = sorted(os.listdir(self.dir))
        out = self.replay("--schedule", "bigger.csv", "--overflow", "old")
        self.assertEqual(file_state(self.store), before, "the store file changed")
        # Nothing beside it either (no -wal or -shm left by the reader).
        self.assertEqual(sorted(os.listdir(self.dir)), files)

        # What the daemon accepted, day by day (one day here).
        db = sqlite3.connect("file:%s?mode=ro" % self.store, uri=True)
        try:
            accepted = db.execute("SELECT count(*) FROM units").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(accepted, 40)
        self.assertEqual([x["offered"] for x in out["days"]], [accepted])
        self.assertEqual(out["days"][0]["date"], self.day.isoformat())
        # The ISP split: every message replayed for its own group.
        day = out["days"][0]
        split = {isp: x["new"] + x["old"] for isp, x in day["isps"].items()
                 if x["new"] + x["old"]}
        self.assertEqual(split, {isp: n for isp, (_, n) in MIX.items()})
        self.assertEqual(day["backlog"], 0)
        # The bounce rate replayed: 7 of 10 bounced, so the gate halts,
        # which the bigger schedule alone would never do.
        self.assertGreater(out["totals"]["bounces"], 0)
        self.assertEqual(day["gate"], "halt")
        self.assertIn("gate_halt", [e["kind"] for e in out["events"]])
        self.assertLess(day["new"], 40)
        self.assertGreater(day["bounce_rate"], 50)
        # Without the bounces (the replay of the running store) it did not.
        self.assertEqual(live["days"][0]["new"], 40)

        # Day 1 and the length come from the store; --start and --days move them.
        r = self.simulate("--from-store", self.store, "--config", self.conf,
                          "--schedule", "bigger.csv", "--format", "csv",
                          "--start", (self.day.replace(day=1) if self.day.day > 1 else
                                      self.day).isoformat())
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = r.stdout.strip().splitlines()[1:]
        self.assertEqual(len(rows), self.day.day if self.day.day > 1 else 1)
        self.assertEqual(rows[-1].split(",")[3], "40")
        self.assertEqual(file_state(self.store), before, "the store file changed")

    def test_errors(self):
        def one_line_exit2(r, *words):
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stdout, "")
            lines = r.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            for w in words:
                self.assertIn(w, lines[0])

        missing = os.path.join(self.dir, "none.db")
        one_line_exit2(self.simulate("--schedule", "sched.csv", "--from-store", missing),
                       missing, "No such file")
        text = self.write("notes.txt", "not a database\n" * 100)
        one_line_exit2(self.simulate("--schedule", "sched.csv", "--from-store", text),
                       text, "not a warmup store")
        other = os.path.join(self.dir, "other.db")
        db = sqlite3.connect(other)
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
        one_line_exit2(self.simulate("--schedule", "sched.csv", "--from-store", other),
                       other, "not a warmup store")
        # A store a newer warmup wrote, and an empty one: a daemon's own.
        fake, d = self.start()
        wait_for(lambda: d.status()["queue"]["queued"] == 0, "the daemon serving")
        self.assertEqual(d.terminate(), 0)
        one_line_exit2(self.simulate("--schedule", "sched.csv", "--config", self.conf,
                                     "--from-store", self.store), self.store, "no mail")
        newer = os.path.join(self.dir, "newer.db")
        with open(self.store, "rb") as f, open(newer, "wb") as g:
            g.write(f.read())
        db = sqlite3.connect(newer)
        db.execute("PRAGMA user_version = 999")
        db.commit()
        db.close()
        one_line_exit2(self.simulate("--schedule", "sched.csv", "--from-store", newer),
                       newer, "schema version 999 is newer")
        # The store gives the traffic: other traffic options are refused.
        for opt in (["--daily-volume", "100"], ["--traffic", "t.csv"],
                    ["--profile", "business"]):
            one_line_exit2(self.simulate("--schedule", "sched.csv", "--from-store",
                                         self.store, *opt), opt[0])


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.stderr.write("usage: test_replay.py WARMUPD FAKE_SENDGRID WARMUP [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    WARMUP = os.path.abspath(sys.argv[3])
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)

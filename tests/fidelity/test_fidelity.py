#!/usr/bin/env python3
"""The fidelity suite: `warmup simulate` predicts warmupd to the message.

usage: test_fidelity.py WARMUPD FAKE_SENDGRID WARMUP [CASE...]

CASE is `margins`, `clock`, `even`, `business` or `blast` (or a unittest
name); none runs them all.  Exit status 77 when every case that ran was skipped (no
libfaketime), with the reason printed.

Each traffic case runs two warmupd under one accelerated clock
(libfaketime, Debian package faketime: a keeper process creates the clock,
and every faked process joins it through FAKETIME_SHARED, so their clocks
agree to the microsecond) for three schedule days with caps of 7, 9 and 10:
one with `overflow = old` (the old route to an SMTP sink on loopback), one
with `overflow = defer`, each new route to its own fake SendGrid.  A
generator on the same clock (traffic_gen.py) posts every message at the
instant `warmup simulate` places it, from the same traffic file and
profile.  Afterwards `warmup simulate` runs with the same schedule, the same
warmupd.conf and the same traffic, and per local day its new, old and
backlog must equal the daemon's: its counters in the store (by the date of
the decision), its /v1/status read at 23:40 each day (used, old sent,
queued), and in total what the fake SendGrid and the sink received.  No
tolerance: one message off is a failure.

Jitter.  The daemon sees each message a little after the instant simulate
gives it (the generator's post and the daemon's group commit: tens of
milliseconds of real time, a few fake minutes at the default speed).  The
outcome cannot depend on that, because the traffic keeps every decision far
from a boundary.  With a cap of c a day and the default burst, the bucket
holds one token, full at midnight, and the next one comes 24h/c after a
token is taken: with overflow old a message goes new exactly when it
arrives that long after the last new one, with defer a queued one goes the
moment the token comes.  The caps (7, 9, 10: a token every 3h26, 2h40 and
2h24) are not whole hours, since the business profile puts arrivals on the
hour (with a cap of 8 the token of 03:00 meets the arrival of 03:00, and
a daemon a moment late on the first takes 7 where simulate takes 8), and
the volumes are chosen so that every token a message could take is at
least MARGIN_MIN fake minutes away from any arrival, and the last decision
of each day comes before the 23:40 sample and over an hour before
midnight.  test_margins checks those margins on the traffic itself (a
model of the one-token bucket, not of the engine); the generator measures
how late each 202 came, and every post must be within LATE_MAX (10 fake
minutes, half the smallest margin) of its instant: a slower machine fails
that precondition by name rather than disagree in a count.

The blast runs with `pace = arrivals`, the default: from day 2 the cap is
released along day 1's arrivals, which the daemon counts by the hour it
took each message in and simulate by the hour it placed it.  Its
arrivals come in one instant at 10:30, half an hour from the hour
boundaries where that release changes and where the hour a late message
is counted in could differ, and test_margins checks that every arrival of
a learned day is at least MARGIN_MIN from an hour boundary.  The blast
then finds the day's share in the bucket (81 of the 83 a cap of 83 would
give, 7 of 9 here) where the even drip left it one token.
WARMUP_FIDELITY_SPEED sets the speed-up (default 4320: a day in 20 s; the
sanitizer build uses 1440).
"""
import datetime
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest
import zoneinfo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import wait_for  # noqa: E402

WARMUPD = FAKE = WARMUP = None
HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = os.path.join(HERE, "traffic_gen.py")

TOKEN = "tok-Fidelity-5c1e8a02d7f4b396"
API_KEY = "SG.Fidelity-0b7d2e91c4a6f358.qW3e"
FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"]
SPEED = int(os.environ.get("WARMUP_FIDELITY_SPEED", "4320"))
TZ = "Asia/Tokyo"
START = "2026-12-01"
CAPS = [7, 9, 10]
DOMAIN = "gmail.com"      # grouped as google by name: no DNS
LEAD_H = 3                # the fake clock starts this many hours before day 1
LATE_MAX = 10 * 60 * 10**6  # fake µs a post may come after its instant
MARGIN_MIN = 20            # fake minutes between any token and any arrival
SAMPLE = "23:40"
ROUTED = 10               # counters.result of a routing decision (DISP_COUNT_ROUTED)
USEC = 10**6


# The traffic of each shape: profile, offered per day, and the pacing
# (warmupd.conf's pace): the blast runs with the default, which releases
# days 2 and 3 along day 1's arrivals; even and business spread arrivals
# over every hour, where a learned release changes hour by hour, so they
# pin the even drip the margins below are modelled on.
SHAPES = {"even": ("even", [11, 13, 15], "even"),
          "business": ("business", [16, 16, 16], "even"),
          "blast": ("blast@10:30", [30, 30, 30], "arrivals")}


def log(msg):
    sys.stderr.write("  [fidelity] %s\n" % msg)
    sys.stderr.flush()


def faketime_lib():
    return next((l for l in FAKETIME_LIBS if os.path.exists(l)), None)


def bucket_margins(arrivals, overflow):
    """The margins of a traffic under CAPS with a one-token bucket full at
    each midnight (the default burst for caps under 24): (the least distance
    between a token's time and an arrival that could take it, the least
    time from a day's last decision to its midnight), in µs.  A model of
    the traffic's timing only: the counts the test compares come from
    simulate and the daemon."""
    zone = zoneinfo.ZoneInfo(TZ)
    near = last_gap = None
    backlog = 0
    for d, cap in enumerate(CAPS):
        day = datetime.date.fromisoformat(START) + datetime.timedelta(days=d)
        lo = int(datetime.datetime.combine(day, datetime.time(), zone).timestamp()) * USEC
        hi = lo + 86400 * USEC
        period = 86400 * USEC / cap
        ready, used, last, queue = lo, 0, None, backlog
        todo = [(t, n) for dd, t, n in arrivals if dd == d + 1]
        i = 0
        while True:
            nxt = todo[i][0] if i < len(todo) else None
            if overflow == "defer" and queue and used < cap and ready < hi and (
                    nxt is None or ready <= nxt):
                used, queue, last, ready = used + 1, queue - 1, ready, ready + period
                continue
            if nxt is None:
                break
            n = todo[i][1]
            i += 1
            last = nxt if overflow == "old" else last
            for _ in range(n):
                if used < cap and (overflow == "old" or not queue):
                    if ready > lo:  # the midnight token is there before any arrival
                        near = min(near, abs(nxt - ready)) if near is not None else abs(nxt - ready)
                    if nxt >= ready:
                        used, last, ready = used + 1, nxt, nxt + period
                        continue
                queue += overflow == "defer"
        backlog = queue
        if last is not None:
            last_gap = min(last_gap, hi - last) if last_gap is not None else hi - last
    return near, last_gap


class Clock:
    """One accelerated fake clock: a keeper process under libfaketime made it
    (its start and speed live in shared memory); env() is the environment
    of a process that joins it."""

    def __init__(self, lib, start_utc, speed):
        self.base = dict(os.environ, LD_PRELOAD=lib, TZ="UTC", FAKETIME_DONT_RESET="1",
                         FAKETIME="@%s x%d" % (start_utc.strftime("%Y-%m-%d %H:%M:%S"), speed),
                         ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                         ":verify_asan_link_order=0")
        self.base.pop("FAKETIME_DONT_FAKE_MONOTONIC", None)
        self.base.pop("FAKETIME_NO_CACHE", None)
        self.keeper = subprocess.Popen(
            [sys.executable, "-c",
             "import os, sys; print(os.environ['FAKETIME_SHARED'], flush=True); sys.stdin.read()"],
            env=self.base, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        shared = self.keeper.stdout.readline().strip()
        if not shared:
            raise AssertionError("libfaketime made no shared clock (FAKETIME_SHARED unset)")
        self.base["FAKETIME_SHARED"] = shared

    def env(self, **extra):
        return dict(self.base, **extra)

    def stop(self):
        if self.keeper.poll() is None:
            self.keeper.stdin.close()
            try:
                self.keeper.wait(10)
            except subprocess.TimeoutExpired:
                self.keeper.kill()
                self.keeper.wait()


class FidelityTest(warmuptest.ProcTestCase):
    prefix = "warmup-fidelity-"

    def setUp(self):
        super().setUp()
        self.lib = faketime_lib()
        if not self.lib:
            self.skipTest("libfaketime not installed (Debian package faketime)")
        self.sinks = []
        self.clock = None

    def tearDown(self):
        super().tearDown()  # the daemons first: they are the clock's users
        for s in self.sinks:
            s.stop()
        if self.clock:
            self.clock.stop()

    # --- pieces ------------------------------------------------------------

    def day1_utc(self):
        return datetime.datetime.fromisoformat(START).replace(
            tzinfo=zoneinfo.ZoneInfo(TZ)).astimezone(datetime.timezone.utc).replace(tzinfo=None)

    def start_clock(self):
        self.clock = Clock(self.lib, self.day1_utc() - datetime.timedelta(hours=LEAD_H), SPEED)

    def config(self, name, overflow, fake, sink=None, pace="arrivals"):
        """A warmupd.conf for the daemon `name`; the test and simulate read it."""
        old = ""
        if sink is not None:
            old = ("[route old]\ntype = smtp\nurl = smtp://127.0.0.1:%d\ntls = none\n"
                   "timeout = 1d\nmax_connections = 2\n" % sink.port)
        text = f"""; fidelity test: {name}
[warmup]
schedule = schedule.csv
start = {START}
timezone = {TZ}
overflow = {overflow}
pace = {pace}
after = hold

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN
; the clock runs thousands of times faster than the generator's requests
idle_timeout = 1d
header_timeout = 1d

[store]
path = {name}.db

[route new]
type = sendgrid
url = http://127.0.0.1:{fake.port}
api_key_env = WARMUP_TEST_KEY
timeout = 1d
max_connections = 2

{old}
[log]
level = info
"""
        return self.write(name + ".conf", text)

    def daemon(self, name, conf):
        """warmupd on the fake clock; its port file and log in run-NAME/
        (a Warmupd names them after the program, so one directory each)."""
        sub = os.path.join(self.dir, "run-" + name)
        os.makedirs(sub)
        env = self.clock.env(WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, sub, conf, env, TOKEN)
        self.procs.append(d)
        return d

    def fake(self, name):
        sub = os.path.join(self.dir, name)
        os.makedirs(sub)
        f = warmuptest.Fake(FAKE, sub, API_KEY)
        self.procs.append(f)
        return f

    def simulate(self, conf, traffic, profile):
        out = subprocess.run(
            [WARMUP, "simulate", "--config", conf, "--traffic", traffic, "--profile", profile,
             "--mix", "google=100%", "--bounce-rate", "0%", "--complaint-rate", "0%",
             "--format", "json", "--quiet"],
            cwd=self.dir, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)["days"]

    def counters(self, db):
        """{date: (new, old)} of the daemon's routing decisions."""
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, db), uri=True)
        try:
            rows = con.execute("SELECT date, route, SUM(n) FROM counters WHERE result = ? "
                               "GROUP BY date, route", (ROUTED,)).fetchall()
        finally:
            con.close()
        out = {}
        for date, route, n in rows:
            iso = (datetime.date(1970, 1, 1) + datetime.timedelta(days=date)).isoformat()
            new, old = out.get(iso, (0, 0))
            out[iso] = (new + n, old) if route == 0 else (new, old + n)
        return out

    # --- the cases -----------------------------------------------------------

    def test_margins(self):
        """Every shape's traffic keeps its decisions at least MARGIN_MIN fake
        minutes from a token and from the 23:40 sample, an hour from
        midnight, with both overflows (see the module's docstring)."""
        for shape, (profile, offered, pace) in SHAPES.items():
            arr = self.arrivals(profile, offered)
            if pace == "arrivals":
                # Days 2 on are released along what was learned: no arrival
                # of theirs near an hour boundary (see the docstring).
                edge = min(min(t % (3600 * USEC), 3600 * USEC - t % (3600 * USEC))
                           for d, t, n in arr if d > 1)
                log("%s: arrivals of learned days at least %.1f min from an hour boundary"
                    % (shape, edge / 60e6))
                self.assertGreaterEqual(edge, MARGIN_MIN * 60 * USEC, shape)
                arr = [a for a in arr if a[0] == 1]
            for overflow in ("old", "defer"):
                near, last = bucket_margins(arr, overflow)
                log("%s, overflow %s: tokens at least %.1f min from an arrival, the last "
                    "decision of a day %.1f min before midnight"
                    % (shape, overflow, near / 60e6, last / 60e6))
                self.assertGreaterEqual(near, MARGIN_MIN * 60 * USEC, (shape, overflow))
                self.assertGreaterEqual(last, 60 * 60 * USEC, (shape, overflow))

    def arrivals(self, profile, offered):
        """The generator's arrivals for this traffic: [(day, instant, n)]."""
        sys.path.insert(0, HERE)
        import traffic_gen
        path = self.write("margins.csv", "day,offered\n" +
                          "".join("%d,%d\n" % (i + 1, n) for i, n in enumerate(offered)))
        arr, _ = traffic_gen.arrivals({"traffic": path, "profile": profile, "start": START,
                                       "timezone": TZ})
        return arr

    def test_clock(self):
        """libfaketime speeds up what the daemon's decisions hang on: its wall
        clock, its monotonic clock (uptime, libuv's loop time) and libuv's
        timers (a message that pacing holds for two fake hours goes out
        within seconds)."""
        self.start_clock()
        fake = self.fake("fake")
        self.write("schedule.csv", "# fidelity\nday,cap\n1,12\n")
        conf = self.config("clock", "defer", fake)
        # Day 1 from the start: the clock starts 3 h before it.
        d = self.daemon("clock", conf)
        t0, s0 = time.monotonic(), d.status()
        time.sleep(0.5)
        t1, s1 = time.monotonic(), d.status()
        wall = (datetime.datetime.fromisoformat(s1["time"]) -
                datetime.datetime.fromisoformat(s0["time"])).total_seconds()
        mono = s1["uptime_s"] - s0["uptime_s"]
        real = t1 - t0
        log("in %.3f s: the daemon's wall clock moved %.0f s, its uptime %d s (speed %d)"
            % (real, wall, mono, SPEED))
        self.assertGreater(wall, real * SPEED / 2, "the wall clock is not sped up")
        self.assertLess(wall, real * SPEED * 2)
        self.assertGreater(mono, real * SPEED / 2,
                           "the monotonic clock is not sped up (FAKETIME_DONT_FAKE_MONOTONIC?)")
        # Wait for day 1 (the daemon's own answer), then two messages: the
        # bucket holds one; the second waits 2 fake hours for its token.
        wait_for(lambda: d.status()["date"] == START, "day 1 on the fake clock", timeout=30)
        t0 = time.monotonic()
        for i in range(2):
            st, _, b = d.send(warmuptest.mail(["clock%d@%s" % (i, DOMAIN)]))
            self.assertEqual(st, 202, b)
        wait_for(lambda: fake.stats()["personalizations"] == 1, "the first sent")
        self.assertEqual(d.status()["queue"]["queued"], 1, "the second should wait for pacing")
        wait_for(lambda: fake.stats()["personalizations"] == 2,
                 "the paced second message (a libuv timer of 2 fake hours)",
                 timeout=7200 / SPEED * 4 + 5)
        took = time.monotonic() - t0
        log("the paced message went out after %.2f s real (2 fake hours = %.2f s)"
            % (took, 7200 / SPEED))
        self.assertGreater(took, 7200 / SPEED / 2, "pacing did not hold the second message")

    def run_shape(self, profile, offered, pace):
        """Both daemons under the generator's traffic for three days; then
        per day: simulate == the daemon, to the message."""
        self.write("schedule.csv", "# fidelity: a small ramp\nday,cap\n" +
                   "".join("%d,%d\n" % (i + 1, c) for i, c in enumerate(CAPS)))
        traffic = self.write("traffic.csv", "day,offered\n" +
                             "".join("%d,%d\n" % (i + 1, n) for i, n in enumerate(offered)))
        sink = warmuptest.CountingSink()
        self.sinks.append(sink)
        fakes = {"old": self.fake("fake-old"), "defer": self.fake("fake-defer")}
        confs = {"old": self.config("old", "old", fakes["old"], sink, pace),
                 "defer": self.config("defer", "defer", fakes["defer"], pace=pace)}
        self.start_clock()
        daemons = {}
        for name in ("old", "defer"):
            daemons[name] = self.daemon(name, confs[name])
        plan = {"traffic": traffic, "profile": profile, "start": START, "timezone": TZ,
                "domain": DOMAIN, "sample": SAMPLE, "lead_us": 30 * 60 * USEC,
                "timeout_s": 60 * SPEED,
                "daemons": [{"name": n, "port": d.port, "token": TOKEN}
                            for n, d in daemons.items()],
                "fakes": [{"name": n, "port": f.port} for n, f in fakes.items()]}
        plan_path = self.write("plan.json", json.dumps(plan))
        result_path = os.path.join(self.dir, "result.json")
        days_real = (len(offered) * 86400 + LEAD_H * 3600) / SPEED
        t0 = time.monotonic()
        gen = subprocess.run([sys.executable, GENERATOR, plan_path, result_path],
                             env=self.clock.env(), capture_output=True, text=True,
                             timeout=days_real * 3 + 60)
        self.assertEqual(gen.returncode, 0, gen.stderr)
        log("%s: %d days in %.1f s real (speed %d)" % (profile, len(offered),
                                                        time.monotonic() - t0, SPEED))
        with open(result_path) as f:
            res = json.load(f)
        for d in daemons.values():
            d.stop()
        # The precondition of the design: every message reached the daemon
        # well within the margin the traffic leaves around each decision.
        worst = max((l for p in res["posts"] for l in p["late_us"].values()), default=0)
        log("%s: %d posts, the latest 202 came %.1f fake s after its instant"
            % (profile, len(res["posts"]), worst / USEC))
        self.assertEqual(sum(p["n"] for p in res["posts"]), sum(offered))
        self.assertLess(worst, LATE_MAX, "a post came too late for the traffic's margins")
        self.assertEqual(len(res["samples"]), len(offered))
        for s in res["samples"]:
            self.assertLess(s["late_us"], LATE_MAX, "the day %d sample was late" % s["day"])

        for name, conf in confs.items():
            sim = self.simulate(conf, traffic, profile)
            cnt = self.counters(name + ".db")
            rows, cum = [], 0
            for i, sd in enumerate(sim):
                new, old = cnt.get(sd["date"], (0, 0))
                cum += offered[i] - new - old
                st = res["samples"][i]["status"][name]
                rows.append({"day": i + 1, "date": sd["date"],
                             "sim": (sd["new"], sd["old"], sd["backlog"]),
                             "daemon": (new, old, cum),
                             "status": (st["used"], st["routes"]["old"]["sent"],
                                        st["queue"]["queued"]),
                             "status_date": st["date"],
                             "failures": sum(st["routes"][r][k] for r in ("new", "old")
                                             for k in ("tempfail", "timeout", "permfail"))})
            for r in rows:
                log("%s/%s day %d %s: simulate new/old/backlog %s, daemon %s, status at %s %s"
                    % (profile, name, r["day"], r["date"], r["sim"], r["daemon"], SAMPLE,
                       r["status"]))
            for r in rows:
                what = "%s, overflow %s, day %d" % (profile, name, r["day"])
                self.assertEqual(r["status_date"], r["date"], what)
                self.assertEqual(r["failures"], 0, what + ": a send failed (retries would "
                                 "move decisions)")
                self.assertEqual(r["daemon"], r["sim"], what + ": the daemon's counters")
                self.assertEqual(r["status"], r["sim"], what + ": the daemon's status at " +
                                 SAMPLE)
            last = res["samples"][-1]["fake"][name]
            self.assertEqual(last["personalizations"], sum(r["sim"][0] for r in rows),
                             name + ": the fake SendGrid's count by the last day's " + SAMPLE)
            if name == "old":
                self.assertEqual(sink.count(), sum(r["sim"][1] for r in rows),
                                 "the sink's count of old-route messages")

    def test_even(self):
        """The even profile: 11, 13 and 15 a day (a token every 3.4, 2.7 and
        2.4 hours against an arrival every 131, 111 and 96 minutes)."""
        self.run_shape(*SHAPES["even"])

    def test_business(self):
        """The business profile: most of the mail from 09:00 to 18:00."""
        self.run_shape(*SHAPES["business"])

    def test_blast(self):
        """A daily blast at 10:30: one token's worth new, the rest old at once
        (overflow old), or paced out over the day and the next (defer)."""
        self.run_shape(*SHAPES["blast"])


def main():
    global WARMUPD, FAKE, WARMUP
    if len(sys.argv) < 4:
        sys.exit("usage: test_fidelity.py WARMUPD FAKE_SENDGRID WARMUP [CASE...]")
    WARMUPD, FAKE, WARMUP = (os.path.abspath(a) for a in sys.argv[1:4])
    warmuptest.run_cases(FidelityTest, sys.argv[4:])


if __name__ == "__main__":
    main()

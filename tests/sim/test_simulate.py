#!/usr/bin/env python3
"""test_simulate.py -- `warmup simulate` end to end.

usage: test_simulate.py WARMUP_EXE SOURCE_ROOT

Runs the built program on the schedules in schedules/ and checks what a team
would rely on: the cap is used and never passed, overflow goes old or waits,
the gate halts and holds the schedule, outputs parse, the same arguments give
the same bytes, and bad input gets exit status 2 with a message that names the
option or the file and line.  Python 3 standard library only.
"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

EXE = None
ROOT = None
SEED_CAPS = [63, 83, 73, 106, 127, 363, 2027, 1255, 8454, 20800]


def run(*args, check=True):
    """Runs warmup with args; returns (exit status, stdout, stderr)."""
    p = subprocess.run([EXE] + list(args), capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("warmup %s: exit %d\n%s" % (" ".join(args), p.returncode,
                                                        p.stderr.decode()))
    return p.returncode, p.stdout, p.stderr


def schedule(name):
    return os.path.join(ROOT, "schedules", name)


def seed_args(*extra):
    return ["simulate", "--schedule", schedule("seed-rollout.csv"), "--daily-volume", "20800",
            "--quiet"] + list(extra)


def rows(out):
    return list(csv.DictReader(io.StringIO(out.decode())))


def sim_json(*args):
    return json.loads(run(*args, "--format", "json")[1])


class Tmp(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class SeedRollout(Tmp):
    def test_overflow_old_fills_the_cap_and_sends_the_rest_old(self):
        days = rows(run(*seed_args("--format", "csv"))[1])
        self.assertEqual([int(d["cap"]) for d in days], SEED_CAPS)
        for d, cap in zip(days, SEED_CAPS):
            self.assertEqual(int(d["offered"]), 20800)
            self.assertEqual(int(d["new"]), cap, d)
            self.assertEqual(int(d["old"]), 20800 - cap, d)
            self.assertEqual(int(d["backlog"]), 0, d)
            self.assertEqual(d["gate"], "ok")

    def test_overflow_defer_carries_the_backlog(self):
        days = rows(run(*seed_args("--overflow", "defer", "--format", "csv"))[1])
        backlog = 0
        for d, cap in zip(days, SEED_CAPS):
            backlog += 20800 - cap
            self.assertEqual(int(d["new"]), cap, d)
            self.assertEqual(int(d["old"]), 0, d)
            self.assertEqual(int(d["backlog"]), backlog, d)
        self.assertEqual(int(days[0]["backlog"]), 20800 - 63)

    def test_defer_drains_as_caps_rise(self):
        # 1000 a day against caps that pass 1000 on day 7: the backlog built
        # on days 1-6 is sent on day 7 (cap 2027) and day 9 (8454).
        days = rows(run("simulate", "--schedule", schedule("seed-rollout.csv"), "--daily-volume",
                        "1000", "--overflow", "defer", "--format", "csv", "-q")[1])
        backlog = 0
        for d, cap in zip(days, SEED_CAPS):
            sent = min(cap, backlog + 1000)
            backlog += 1000 - sent
            self.assertEqual(int(d["new"]), sent, d)
            self.assertEqual(int(d["backlog"]), backlog, d)
        self.assertEqual(backlog, 0)

    def test_gate_halts_day_6_and_holds_the_step(self):
        doc = sim_json(*seed_args("--bounce-rate", "2%,day6=8%"))
        d6, d7 = doc["days"][5], doc["days"][6]
        self.assertEqual(d6["gate"], "halt")
        self.assertLess(d6["new"], d6["cap"])
        self.assertEqual(d6["new"] + d6["old"], 20800)
        self.assertEqual(d7["step"], 6)
        self.assertTrue(d7["held"])
        self.assertEqual(d7["cap"], 363)
        for d in doc["days"][:5]:
            self.assertNotEqual(d["gate"], "halt")
        halts = [e for e in doc["events"] if e["kind"] == "gate_halt"]
        self.assertEqual(len(halts), 1)
        self.assertEqual(halts[0]["day"], 6)
        self.assertIn("bounce rate", halts[0]["text"])
        # The table says it in words.
        table = run(*seed_args("--bounce-rate", "2%,day6=8%"))[1].decode()
        self.assertRegex(table, r"day 6: gate halt: bounce rate [0-9.]+% over 5\.00% \(n=\d+, \d+ days?\)")
        self.assertIn("held", table)

    def test_golden_csv(self):
        with open(os.path.join(ROOT, "tests", "sim", "golden-seed.csv"), "rb") as f:
            golden = f.read()
        self.assertEqual(run(*seed_args("--format", "csv"))[1], golden)

    def test_csv_header_and_rates(self):
        out = run(*seed_args("--format", "csv", "--bounce-rate", "2%"))[1].decode()
        lines = out.splitlines()
        self.assertEqual(lines[0],
                         "day,date,cap,offered,new,old,backlog,bounce_rate,complaint_rate,gate")
        self.assertEqual(len(lines), 11)
        for d in rows(out.encode()):
            self.assertRegex(d["bounce_rate"], r"^\d+\.\d\d$")
            self.assertRegex(d["complaint_rate"], r"^\d+\.\d\d$")
        self.assertEqual(rows(out.encode())[9]["bounce_rate"], "2.00")

    def test_after_the_schedule(self):
        days = rows(run(*seed_args("--days", "12", "--format", "csv"))[1])
        self.assertEqual(days[10]["cap"], "unlimited")
        self.assertEqual(int(days[10]["new"]), 20800)
        days = rows(run(*seed_args("--days", "12", "--after", "double", "--format", "csv"))[1])
        self.assertEqual([d["cap"] for d in days[10:]], ["41600", "83200"])
        days = rows(run(*seed_args("--days", "12", "--after", "hold", "--format", "csv"))[1])
        self.assertEqual([d["cap"] for d in days[10:]], ["20800", "20800"])

    def test_gated_advance_waits_for_a_full_day(self):
        # Gated advance moves on only after a day that used 80% of its cap:
        # 100 a day fills 106 enough (94%), but not 127 (79%), so step 5
        # holds from day 6 on.
        days = sim_json("simulate", "--schedule", schedule("seed-rollout.csv"), "--daily-volume",
                        "100", "--advance", "gated", "-q")["days"]
        self.assertEqual([d["step"] for d in days[:7]], [1, 2, 3, 4, 5, 5, 5])
        self.assertEqual([d["held"] for d in days[:7]], [False] * 5 + [True] * 2)
        self.assertEqual(days[4]["new"], 100)

    def test_burst_day_is_a_plain_daily_cap(self):
        days = sim_json(*seed_args("--burst", "day", "--profile", "business"))["days"]
        for d, cap in zip(days, SEED_CAPS):
            self.assertEqual(d["new"], cap)


class Outputs(Tmp):
    def test_json_adds_up(self):
        doc = sim_json(*seed_args("--mix", "google=45%,yahoo=20%,docomo=10%"))
        self.assertEqual(len(doc["days"]), 10)
        tot = {"offered": 0, "new": 0, "old": 0}
        for d in doc["days"]:
            self.assertEqual(sum(v["new"] for v in d["isps"].values()), d["new"])
            self.assertEqual(sum(v["old"] for v in d["isps"].values()), d["old"])
            self.assertEqual(d["new"] + d["old"] + d["backlog"], d["offered"])
            for k in tot:
                tot[k] += d[k]
            for k in ("day", "date", "step", "cap", "offered", "new", "old", "backlog",
                      "bounce_rate", "complaint_rate", "gate", "held", "isps"):
                self.assertIn(k, d)
        for k in tot:
            self.assertEqual(doc["totals"][k], tot[k])
        self.assertIsInstance(doc["events"], list)
        # The mix shows: google about 45%, other gets the remaining 25%.
        g = sum(d["isps"]["google"]["new"] + d["isps"]["google"]["old"] for d in doc["days"])
        o = sum(d["isps"]["other"]["new"] + d["isps"]["other"]["old"] for d in doc["days"])
        self.assertAlmostEqual(g / 208000, 0.45, delta=0.01)
        self.assertAlmostEqual(o / 208000, 0.25, delta=0.01)
        self.assertEqual(sum(d["isps"]["apple"]["new"] for d in doc["days"]), 0)

    def test_svg_is_xml_with_bars_line_and_legend(self):
        for extra in ([], ["--svg-log"], ["--svg-linear"], ["--overflow", "defer"]):
            path = os.path.join(self.tmp.name, "chart.svg")
            run(*seed_args("--svg", path, *extra))
            root = ET.parse(path).getroot()
            self.assertTrue(root.tag.endswith("svg"))
            with open(path) as f:
                text = f.read()
            self.assertIn("<rect", text)
            self.assertIn("<polyline", text)
            self.assertIn("new route", text)
            self.assertIn("old route", text)
            self.assertIn("seed-rollout.csv", text)
            # 63..20,800 spans more than 100x: log unless told otherwise.
            self.assertEqual("log scale" in text, "--svg-linear" not in extra, extra)
        path = os.path.join(self.tmp.name, "a&b<c>.svg")
        run(*seed_args("--svg", path, "--days", "1"))
        ET.parse(path)

    def test_same_arguments_same_bytes(self):
        for fmt in ("table", "csv", "json"):
            args = seed_args("--format", fmt, "--bounce-rate", "2%,day6=8%", "--outcomes",
                             "random", "--seed", "7", "--profile", "business")
            self.assertEqual(run(*args)[1], run(*args)[1], fmt)
        a = os.path.join(self.tmp.name, "a.svg")
        b = os.path.join(self.tmp.name, "b.svg")
        run(*seed_args("--svg", a))
        run(*seed_args("--svg", b))
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())

    def test_seed_changes_the_draws(self):
        a = run(*seed_args("--format", "json", "--outcomes", "random", "--seed", "1"))[1]
        b = run(*seed_args("--format", "json", "--outcomes", "random", "--seed", "2"))[1]
        self.assertNotEqual(a, b)

    def test_table_has_separators_and_totals(self):
        out = run(*seed_args())[1].decode()
        self.assertIn("20,800", out)
        self.assertRegex(out, r"(?m)^total\s+208,000\s+33,351\s+174,649")

    def test_speed_line_on_stderr_unless_quiet(self):
        _, out, err = run("simulate", "--schedule", schedule("seed-rollout.csv"),
                          "--daily-volume", "100")
        self.assertRegex(err.decode(),
                         r"^simulated 10 days, 1000 messages routed in [0-9.]+ s \([0-9]+ msgs/s\)\n$")
        self.assertEqual(run(*seed_args())[2], b"")


class Traffic(Tmp):
    def test_traffic_file_sets_volumes_and_days(self):
        path = self.write("t.csv", "# a comment\nday,offered\n1,100\n\n2,200\n# more\n3,0\n")
        days = rows(run("simulate", "--schedule", schedule("seed-rollout.csv"), "--traffic", path,
                        "--format", "csv", "-q")[1])
        self.assertEqual([int(d["offered"]) for d in days], [100, 200, 0])
        self.assertEqual([int(d["new"]) for d in days], [63, 83, 0])

    def test_generic_schedule_at_its_caps(self):
        # The real volumes of SendGrid's generic table, offered evenly: the
        # new route takes every message (8.6 million through the router).
        with open(schedule("sendgrid-generic.csv")) as f:
            caps = [int(l.split(",")[1]) for l in f if l[:1].isdigit()]
        path = self.write("t.csv", "day,offered\n" +
                          "".join("%d,%d\n" % (i + 1, c) for i, c in enumerate(caps)))
        doc = sim_json("simulate", "--schedule", schedule("sendgrid-generic.csv"), "--traffic",
                       path, "-q")
        self.assertEqual([d["new"] for d in doc["days"]], caps)
        self.assertEqual(doc["totals"]["old"], 0)

    def test_dst_days(self):
        # New York springs forward on 2027-03-14 and falls back on 2027-11-07.
        for start in ("2027-03-13", "2027-11-06"):
            doc = sim_json(*seed_args("--timezone", "America/New_York", "--start", start,
                                      "--days", "3", "--profile", "business"))
            self.assertEqual([d["date"] for d in doc["days"]][0], start)
            for d, cap in zip(doc["days"], SEED_CAPS):
                self.assertEqual(d["new"] + d["old"], 20800)
                self.assertLessEqual(d["new"], cap)

    def test_business_profile_never_passes_the_cap(self):
        doc = sim_json(*seed_args("--profile", "business"))
        for d, cap in zip(doc["days"], SEED_CAPS):
            self.assertLessEqual(d["new"], cap)
            self.assertEqual(d["new"] + d["old"], 20800)


    def test_hour_column_places_arrivals(self):
        # All of a day at 09:00 is a blast.  On day 1 nothing is learned
        # yet: the even drip leaves only an hour's burst for it (the daemon
        # does the same).  From day 2 the pacing releases the cap along the
        # arrivals it saw, so the blast finds (nearly) the whole cap ready;
        # with --pace even it never does.  The same volume spread over the
        # day's 24 hours fills the cap either way.
        blast = self.write("b.csv", "day,hour,offered\n1,9,300\n2,9,300\n3,9,300\n")
        spread = self.write("s.csv", "day,hour,offered\n" + "".join(
            "%d,%d,%d\n" % (d, h, 300 // 24 + (h < 300 % 24)) for d in (1, 2) for h in range(24)))
        args = ("simulate", "--schedule", schedule("seed-rollout.csv"), "-q")
        b = sim_json(*args, "--traffic", blast)["days"]
        even = sim_json(*args, "--traffic", blast, "--pace", "even")["days"]
        e = sim_json(*args, "--traffic", spread)["days"]
        self.assertEqual([d["offered"] for d in b], [300, 300, 300])
        self.assertEqual([d["offered"] for d in e], [300, 300])
        self.assertEqual([d["new"] for d in e], [63, 83])
        for d, cap in zip(even, SEED_CAPS):
            self.assertLess(d["new"], cap // 4, d)
            self.assertGreater(d["new"], 0, d)
        self.assertLess(b[0]["new"], SEED_CAPS[0] // 4, b[0])
        for d, cap in zip(b[1:], SEED_CAPS[1:]):
            self.assertGreaterEqual(d["new"], 0.95 * cap, d)
            self.assertLessEqual(d["new"], cap, d)
        for d in b + even:
            self.assertEqual(d["new"] + d["old"], 300)

    def test_blast_profile_is_the_hour_column_at_one_time(self):
        path = self.write("b.csv", "day,hour,offered\n1,9,300\n2,9,300\n3,9,300\n")
        a = sim_json("simulate", "--schedule", schedule("seed-rollout.csv"), "--traffic", path,
                     "-q")["days"]
        b = sim_json(*seed_args("--daily-volume", "300", "--days", "3",
                                "--profile", "blast@09:00"))["days"]
        # blast@09:00 puts all at 09:00:00; the hour column spreads over
        # 09:00-10:00.  Day 1 (nothing learned) leaves the new route far
        # below its cap in both; from day 2 both find it ready at 09:00.
        for x, y, cap in zip(a, b, SEED_CAPS):
            self.assertEqual(x["new"] + x["old"], y["new"] + y["old"])
        self.assertLess(b[0]["new"], SEED_CAPS[0] // 4)
        for x, y, cap in zip(a[1:], b[1:], SEED_CAPS[1:]):
            self.assertGreaterEqual(y["new"], 0.95 * cap)
            self.assertGreaterEqual(x["new"], 0.95 * cap)

    def test_hour_column_errors_name_the_line(self):
        cases = [("day,hour,offered\n1,24,5\n", "t.csv:2: hour: expected a local hour"),
                 ("day,hour,offered\n1,9,5\n1,9,5\n", "t.csv:3: hour: day 1 hour 9 is given twice"),
                 ("day,hour,offered\n1,9,5\n3,9,5\n", "t.csv:3: day: expected 1 or 2"),
                 ("day,hour,offered\n1,9,x\n", "t.csv:2: offered: expected a whole number")]
        for text, want in cases:
            path = self.write("t.csv", text)
            rc, _, err = run("simulate", "--schedule", schedule("seed-rollout.csv"), "--traffic",
                             path, "-q", check=False)
            self.assertEqual(rc, 2, text)
            self.assertIn(want, err.decode(), text)
        path = self.write("t.csv", "day,hour,offered\n1,9,5\n")
        rc, _, err = run("simulate", "--schedule", schedule("seed-rollout.csv"), "--traffic",
                         path, "--profile", "business", "-q", check=False)
        self.assertEqual(rc, 2)
        self.assertIn("hour column", err.decode())
        rc, _, err = run(*seed_args("--profile", "blast@25:00"), check=False)
        self.assertEqual(rc, 2)
        self.assertIn("blast@HH:MM", err.decode())


class Config(Tmp):
    def test_config_is_read(self):
        path = self.write("w.ini", "[warmup]\nschedule = %s\nstart = 2027-01-04\n"
                          "timezone = Europe/Paris\n\n[gate]\nbounce_warn = 10%%\n"
                          "bounce_halt = 20%%\n" % schedule("seed-rollout.csv"))
        doc = sim_json("simulate", "--config", path, "--daily-volume", "20800", "-q",
                       "--bounce-rate", "2%,day6=8%")
        self.assertEqual(doc["days"][0]["date"], "2027-01-04")
        self.assertEqual(doc["days"][5]["gate"], "ok")  # 8% is under this config's 20%
        self.assertEqual(doc["days"][6]["step"], 7)

    def test_isp_share_from_config(self):
        path = self.write("w.ini", "[isp google]\nnew_share = 10%\n")
        doc = sim_json(*seed_args("--config", path, "--mix", "google=100%"))
        for d, cap in zip(doc["days"], SEED_CAPS):
            self.assertEqual(d["new"], max(1, cap // 10), d)

    def test_deferrals_cut_one_isp_through_its_rule(self):
        base = sim_json(*seed_args())
        doc = sim_json(*seed_args("--deferral-rate", "google=5%"))
        last, last0 = doc["days"][-1], base["days"][-1]
        # Deferrals are drawn for google only, and every day counts them.
        for d in doc["days"][1:]:
            self.assertGreater(d["isps"]["google"]["deferred"], 0, d)
            for name, isp in d["isps"].items():
                if name != "google":
                    self.assertEqual(isp["deferred"], 0, (name, d))
        # Gmail's built-in rule (halve for an hour) holds google below its
        # share of the paced release on the last day; the rest goes old.
        self.assertLess(last["isps"]["google"]["new"], 0.8 * last0["isps"]["google"]["new"])
        self.assertEqual(last["new"] + last["old"], last["offered"])
        self.assertEqual(last["isps"]["yahoo"]["new"], last0["isps"]["yahoo"]["new"])
        # A configured rule replaces the built-in one: a 5% cut bites harder.
        path = self.write("r.ini", "[webhook]\nauth = none\n[defer_rule g]\nisp = google\n"
                                   "match = 4.7.28\ncut = 5%\nhold = 2h\n")
        hard = sim_json(*seed_args("--config", path, "--deferral-rate", "google=5%"))
        self.assertLess(hard["days"][-1]["isps"]["google"]["new"], last["isps"]["google"]["new"])


class BadInput(Tmp):
    def bad(self, *args, want=()):
        status, out, err = run(*args, check=False)
        msg = err.decode()
        self.assertEqual(status, 2, "%s: exit %d: %s" % (args, status, msg))
        self.assertTrue(msg.startswith("warmup simulate: ") or msg.startswith("warmup: "), msg)
        self.assertEqual(len(msg.strip().splitlines()), 1, msg)
        for w in want:
            self.assertIn(w, msg)
        return msg

    def test_bad_options(self):
        s = ["simulate", "--schedule", schedule("seed-rollout.csv")]
        self.bad(*s, "--daily-volume", "-3", want=["--daily-volume", "'-3'"])
        self.bad(*s, "--daily-volume", "lots", want=["--daily-volume"])
        self.bad(*s, "--daily-volume", "99999999999", want=["--daily-volume"])
        self.bad(*s, "--daily-volume", "1", "--mix", "google=150%", want=["--mix", "150%"])
        self.bad(*s, "--daily-volume", "1", "--mix", "google=60%,yahoo=50%",
                 want=["--mix", "110.00%"])
        self.bad(*s, "--daily-volume", "1", "--mix", "gmail=50%", want=["--mix", "gmail"])
        self.bad(*s, "--daily-volume", "1", "--mix", "google", want=["--mix"])
        self.bad(*s, "--daily-volume", "1", "--mix", "google=50%,google=10%", want=["twice"])
        self.bad(*s, "--daily-volume", "1", "--days", "0", want=["--days"])
        self.bad(*s, "--daily-volume", "1", "--start", "2026-02-30", want=["--start"])
        self.bad(*s, "--daily-volume", "1", "--timezone", "Mars/Olympus",
                 want=["--timezone", "Mars/Olympus"])
        self.bad(*s, "--daily-volume", "1", "--timezone", "../../etc/passwd", want=["--timezone"])
        self.bad(*s, "--daily-volume", "1", "--profile", "weekend", want=["--profile"])
        self.bad(*s, "--daily-volume", "1", "--overflow", "drop", want=["--overflow"])
        self.bad(*s, "--daily-volume", "1", "--burst", "soon", want=["--burst"])
        self.bad(*s, "--daily-volume", "1", "--after", "never", want=["--after"])
        self.bad(*s, "--daily-volume", "1", "--advance", "fast", want=["--advance"])
        self.bad(*s, "--daily-volume", "1", "--bounce-rate", "2", want=["--bounce-rate"])
        self.bad(*s, "--daily-volume", "1", "--bounce-rate", "2%,day0=3%", want=["--bounce-rate"])
        self.bad(*s, "--daily-volume", "1", "--bounce-rate", "2%,day11=3%",
                 want=["--bounce-rate", "day 11"])
        self.bad(*s, "--daily-volume", "1", "--bounce-rate", "2%,day6=x", want=["--bounce-rate"])
        self.bad(*s, "--daily-volume", "1", "--complaint-rate", "120%",
                 want=["--complaint-rate"])
        self.bad(*s, "--daily-volume", "1", "--seed", "x", want=["--seed"])
        self.bad(*s, "--daily-volume", "1", "--format", "xml", want=["--format"])
        self.bad(*s, "--daily-volume", "1", "--outcomes", "lucky", want=["--outcomes"])
        self.bad(*s, "--daily-volume", "1", "--frobnicate", want=["--frobnicate"])
        self.bad(*s, "--daily-volume", want=["--daily-volume"])
        self.bad(*s, want=["--daily-volume", "--traffic"])
        self.bad("simulate", "--daily-volume", "1", want=["schedule"])
        self.bad(*s, "--daily-volume", "1", "stray", want=["stray"])
        status, _, err = run("frobnicate", check=False)
        self.assertEqual(status, 2)
        self.assertIn(b"no command 'frobnicate'", err)

    def test_bad_deferral_rate(self):
        self.bad(*seed_args("--deferral-rate", "nosuch=5%"), want=("--deferral-rate", "nosuch"))
        self.bad(*seed_args("--deferral-rate", "google=150%"), want=("--deferral-rate",))
        self.bad(*seed_args("--deferral-rate", "google"), want=("GROUP=RATE",))

    def test_broken_traffic_file(self):
        s = ["simulate", "--schedule", schedule("seed-rollout.csv"), "--traffic"]
        p = self.write("t.csv", "day,offered\n1,100\n2,lots\n")
        self.bad(*s, p, want=[p + ":3:", "offered", "lots"])
        p = self.write("t.csv", "day,offered\n1,100\n3,100\n")
        self.bad(*s, p, want=[p + ":3:", "day"])
        p = self.write("t.csv", "# c\nday,volume\n1,100\n")
        self.bad(*s, p, want=[p + ":2:", "header"])
        p = self.write("t.csv", "day,offered\n1,100,7\n")
        self.bad(*s, p, want=[p + ":2:"])
        p = self.write("t.csv", "day,offered\n")
        self.bad(*s, p, want=[p, "no days"])
        p = self.write("t.csv", "")
        self.bad(*s, p, want=[p + ":1:", "header"])
        p = self.write("t.csv", "day,offered\n1,100\n2,1\x003\n")
        self.bad(*s, p, want=[p + ":3:", "NUL"])
        p = self.write("t.csv", "day,offered\n1,-5\n")
        self.bad(*s, p, want=[p + ":2:"])
        p = self.write("t.csv", "\x00\xff garbage\n")
        self.bad(*s, p, want=[p + ":1:"])
        self.bad(*s, os.path.join(self.tmp.name, "missing.csv"), want=["missing.csv"])
        p = self.write("t.csv", "day,offered\n1,100\n")
        self.bad(*s, p, "--days", "2", want=["--days"])
        self.bad(*s, p, "--daily-volume", "5", want=["not both"])

    def test_broken_schedule_file(self):
        p = self.write("s.csv", "day,cap\n1,63\n2,-1\n")
        self.bad("simulate", "--schedule", p, "--daily-volume", "1", want=[p + ":3"])

    def test_bad_config_names_file_line_and_key(self):
        p = self.write("w.ini", "[warmup]\nstart = 2026-12-01\n\n[isp google]\n"
                       "new_rate = 10/fortnight\n")
        self.bad(*seed_args("--config", p), want=[p + ":5:", "new_rate", "10/fortnight"])
        p = self.write("w.ini", "[warmup]\nfrobnicate = 1\n")
        self.bad(*seed_args("--config", p), want=[p + ":2:", "frobnicate"])

    def test_help(self):
        for args in (["simulate", "--help"], ["help", "simulate"]):
            status, out, _ = run(*args)
            self.assertIn(b"--daily-volume", out)
            self.assertIn(b"--bounce-rate", out)
        status, out, _ = run("--help")
        self.assertIn(b"simulate", out)
        self.assertEqual(run(check=False)[0], 2)


class MxMap(Tmp):
    """--mx-map: domains in the mix grouped by the MX a map gives them, as
    warmupd groups them by DNS's answer."""

    MAP = "# what DNS would say\ndomain,mx\nacme.co.jp,aspmx.l.google.com\n" \
          "m365.co.jp, m365-co-jp.mail.protection.outlook.com.\nplain.co.jp,mx.plain.co.jp\n"
    MIX = "google=20%,acme.co.jp=30%,m365.co.jp=10%,plain.co.jp=10%,gmail.com=5%"

    def day1(self, *extra):
        conf = self.write("w.conf", "[isp google]\nnew_share = 30%\n")
        return sim_json(*seed_args("--days", "1", "--config", conf, "--mix", self.MIX,
                                   *extra))["days"][0]["isps"]

    def test_map_groups_business_domains(self):
        isps = self.day1("--mx-map", self.write("mx.csv", self.MAP))
        offered = {k: v["new"] + v["old"] for k, v in isps.items()}
        # google: 20% + acme 30% + gmail.com 5% by name; microsoft: m365 10%
        # (the ISP of each message is drawn from the mix).
        self.assertAlmostEqual(offered["google"], 20800 * 55 / 100, delta=300)  # drawn
        self.assertAlmostEqual(offered["microsoft"], 20800 * 10 / 100, delta=300)  # drawn
        self.assertAlmostEqual(offered["other"], 20800 * 35 / 100, delta=300)  # drawn
        self.assertEqual(isps["google"]["new"], 18)  # 30% of the cap of 63

    def test_without_a_map_domains_are_grouped_by_name(self):
        isps = self.day1()
        offered = {k: v["new"] + v["old"] for k, v in isps.items()}
        self.assertAlmostEqual(offered["google"], 20800 * 25 / 100, delta=300)  # drawn
        self.assertEqual(offered["microsoft"], 0)

    def test_bad_map(self):
        for text, line in [("acme.co.jp\n", 1), ("# c\nacme.co.jp,a,b\n", 2),
                           ("x.jp,mx\n,mx.x.jp\n", 2)]:
            rc, _, err = run(*seed_args("--mx-map", self.write("bad.csv", text)), check=False)
            self.assertEqual(rc, 2)
            self.assertIn("bad.csv:%d: expected domain,mx" % line, err.decode())
        rc, _, err = run(*seed_args("--mx-map", "/nonexistent.csv"), check=False)
        self.assertEqual(rc, 2)
        self.assertIn("--mx-map: /nonexistent.csv", err.decode())


if __name__ == "__main__":
    EXE = os.path.abspath(sys.argv[1])
    ROOT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])

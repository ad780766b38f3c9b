#!/usr/bin/env python3
"""test_gate.py -- the health gate (scheduler/core/gate.c) seen through
`warmup simulate`: its operating characteristics on the seed rollout over
many seeds (--seeds), the per-day rates that express the scenarios
(--bounce-rate 2%,day9=10%), and the --seeds report itself.

usage: test_gate.py WARMUP_EXE SOURCE_ROOT

The targets are those of README.md (Health gate), checked on seeds 1..200 of
the random outcome model: a fixed sample, so the result is the same on every
run.  README.md gives the figures of 1,000 seeds.
"""
import csv
import io
import json
import os
import subprocess
import sys
import unittest

EXE = None
ROOT = None
RUNS = 200


def run(*args, check=True):
    p = subprocess.run([EXE, "simulate", "--schedule",
                        os.path.join(ROOT, "schedules", "seed-rollout.csv"), "--daily-volume",
                        "20800", "--quiet"] + list(args), capture_output=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError("simulate %s: exit %d\n%s" % (" ".join(args), p.returncode,
                                                          p.stderr.decode()))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def sim(*args):
    return json.loads(run("--format", "json", *args)[1])


def oc(*args, runs=RUNS):
    """The --seeds report as a list of days (day 1 first)."""
    doc = sim("--seeds", str(runs), *args)
    assert doc["runs"] == runs
    return doc["days"]


def share(days, day, key="halted_by"):
    return days[day - 1][key] / RUNS


class OperatingCharacteristics(unittest.TestCase):
    def test_true_8_percent_halts_by_day_2(self):
        self.assertGreaterEqual(share(oc("--bounce-rate", "8%"), 2), 0.90)

    def test_true_6_percent_halts_by_day_4_and_day_6(self):
        days = oc("--bounce-rate", "6%")
        self.assertGreaterEqual(share(days, 4), 0.90)
        self.assertGreaterEqual(share(days, 6), 0.97)

    def test_true_2_percent_rarely_halts(self):
        self.assertLessEqual(share(oc("--bounce-rate", "2%"), 10), 0.05)

    def test_a_bad_day_9_halts_on_day_9(self):
        # Eight days at 2%, then a bad list: the clean history must not
        # hide it.
        days = oc("--bounce-rate", "2%,day9=10%")
        self.assertGreaterEqual(share(days, 9, "halt"), 0.95)

    def test_complaints(self):
        # Complaints pool 2,000 to 5,000 deliveries: nothing before day 7,
        # where the seed rollout first has that many.
        healthy = oc("--bounce-rate", "0%", "--complaint-rate", "0.05%")
        self.assertEqual(healthy[-1]["halted_by"], 0)
        bad = oc("--bounce-rate", "0%", "--complaint-rate", "0.6%")
        self.assertEqual(bad[5]["halted_by"], 0)
        self.assertGreaterEqual(share(bad, 7), 0.95)


class SmallSamples(unittest.TestCase):
    def test_one_complaint_on_day_1_does_not_halt(self):
        # 1.6% over day 1's 63 deliveries is exactly one spam report.
        day1 = sim("--bounce-rate", "0%", "--complaint-rate", "0%,day1=1.6%",
                   "--days", "2")["days"][0]
        self.assertEqual(day1["complaints"], 1)
        self.assertEqual(day1["gate"], "ok")
        self.assertEqual(day1["new"], 63)

    def test_healthy_complaint_rate_never_halts(self):
        # 0.1% is a third of the 0.3% halt line.
        days = oc("--bounce-rate", "1%", "--complaint-rate", "0.1%", runs=8)
        self.assertEqual(days[-1]["halted_by"], 0)

    def test_a_bad_day_1_halts_on_day_2(self):
        # Day 1 alone (63) is too small to judge; day 2 judges both days.
        doc = sim("--bounce-rate", "0%,day1=12%")
        self.assertEqual(doc["days"][0]["gate"], "ok")
        self.assertEqual(doc["days"][1]["gate"], "halt")
        self.assertRegex(doc["events"][-1]["text"], r"\(n=1[23]\d, 2 days\)")


class SeedsReport(unittest.TestCase):
    def test_tallies_match_single_runs(self):
        # --seed 5 --seeds 4 is the four runs --seed 5..8 (random outcomes),
        # counted day by day.
        args = ("--bounce-rate", "5%")
        days = sim("--seed", "5", "--seeds", "4", *args)["days"]
        halted = [False] * 4
        want = [dict(halt=0, warn=0, first_halt=0, halted_by=0, new=0) for _ in days]
        for k in range(4):
            one = sim("--seed", str(5 + k), "--outcomes", "random", *args)["days"]
            for d, day in enumerate(one):
                w = want[d]
                w["halt"] += day["gate"] == "halt"
                w["warn"] += day["gate"] == "warn"
                w["first_halt"] += day["gate"] == "halt" and not halted[k]
                halted[k] = halted[k] or day["gate"] == "halt"
                w["halted_by"] += halted[k]
                w["new"] += day["new"]
        for d, day in enumerate(days):
            w = want[d]
            self.assertEqual(day["day"], d + 1)
            for key in ("halt", "warn", "first_halt", "halted_by"):
                self.assertEqual(day[key], w[key], (d + 1, key))
            self.assertAlmostEqual(day["new_mean"], w["new"] / 4, delta=0.051)  # to 0.1

    def test_formats_and_determinism(self):
        a = run("--seeds", "20", "--bounce-rate", "4%", "--format", "csv")[1]
        self.assertEqual(a, run("--seeds", "20", "--bounce-rate", "4%", "--format", "csv")[1])
        rows = list(csv.DictReader(io.StringIO(a)))
        self.assertEqual(list(rows[0].keys()),
                         ["day", "runs", "halt", "warn", "first_halt", "halted_by", "new_mean"])
        self.assertEqual(len(rows), 10)
        by = [int(r["halted_by"]) for r in rows]
        self.assertEqual(by, sorted(by))
        self.assertEqual(sum(int(r["first_halt"]) for r in rows), by[-1])
        table = run("--seeds", "20", "--bounce-rate", "4%")[1]
        self.assertIn("20 runs, seeds 1..20, outcomes random", table)
        self.assertIn("halted by", table)
        # --outcomes even is still allowed, and said.
        doc = sim("--seeds", "3", "--outcomes", "even")
        self.assertEqual(doc["outcomes"], "even")
        self.assertEqual(doc["first_seed"], 1)

    def test_bad_seeds(self):
        for args, want in ((("--seeds", "0"), "--seeds"), (("--seeds", "x"), "--seeds"),
                           (("--seeds", "3", "--svg", "/tmp/never.svg"), "--svg")):
            rc, out, err = run(*args, check=False)
            self.assertEqual(rc, 2, args)
            self.assertIn(want, err)
            self.assertEqual(out, "")

    def test_speed_line_counts_every_run(self):
        p = subprocess.run([EXE, "simulate", "--schedule",
                            os.path.join(ROOT, "schedules", "seed-rollout.csv"),
                            "--daily-volume", "1000", "--seeds", "3", "--format", "csv"],
                           capture_output=True, timeout=60, check=True)
        self.assertIn(b"simulated 10 days per seed, 30000 messages routed", p.stderr)


if __name__ == "__main__":
    EXE = os.path.abspath(sys.argv[1])
    ROOT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])

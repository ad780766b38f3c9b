#!/usr/bin/env python3
"""warmup simulate: engaged recipients first (--engaged, [warmup]
engaged_first) and the gap that steps the ramp back ([warmup] gap, a
--traffic file with quiet days).

usage: test_engage.py WARMUP SOURCE_ROOT [unittest args]
"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

EXE = None
ROOT = None
SEED_CAPS = [63, 83, 73, 106, 127, 363, 2027, 1255, 8454, 20800]


def run(*args, check=True):
    p = subprocess.run([EXE] + list(args), capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("warmup %s: exit %d\n%s" % (" ".join(args), p.returncode,
                                                        p.stderr.decode()))
    return p.returncode, p.stdout, p.stderr


def seed(*extra):
    return ["simulate", "--schedule", os.path.join(ROOT, "schedules", "seed-rollout.csv"),
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


class Engaged(Tmp):
    def test_engaged_go_first_while_the_cap_is_scarce(self):
        days = rows(run(*seed("--daily-volume", "5000", "--engaged", "30%", "--format",
                              "csv"))[1])
        for d in days:
            self.assertEqual(int(d["engaged_new"]) + int(d["other_new"]), int(d["new"]), d)
        # 1,500 engaged a day: days 1-6 and 8 have a smaller cap, and it goes
        # (all but the full bucket of the first moments) to them.
        for i in (0, 1, 2, 3, 4, 5, 7):
            cap = SEED_CAPS[i]
            self.assertEqual(int(days[i]["new"]), cap)
            self.assertGreaterEqual(int(days[i]["engaged_new"]), cap - 3, days[i])
        # Day 7's cap (2,027) exceeds the engaged demand: every engaged one
        # goes new and the others get what is left.
        self.assertGreaterEqual(int(days[6]["engaged_new"]), 1498)
        self.assertGreater(int(days[6]["other_new"]), 400)
        self.assertGreaterEqual(int(days[6]["new"]), 2020)
        # Day 9's cap exceeds day 8's traffic: engaged-first no longer
        # applies, everyone goes new.
        self.assertEqual(int(days[8]["engaged_new"]), 1500)
        self.assertEqual(int(days[8]["other_new"]), 3500)

    def test_without_engaged_share_the_output_is_as_before(self):
        out = run(*seed("--daily-volume", "5000", "--format", "csv"))[1]
        self.assertEqual(out.decode().splitlines()[0],
                         "day,date,cap,offered,new,old,backlog,bounce_rate,complaint_rate,gate")
        zero = rows(run(*seed("--daily-volume", "5000", "--engaged", "0%", "--format",
                              "csv"))[1])
        base = rows(out)
        self.assertEqual([d["new"] for d in zero], [d["new"] for d in base])
        self.assertEqual({d["engaged_new"] for d in zero}, {"0"})
        # The ISP draws do not move with the engaged share.
        a = sim_json(*seed("--daily-volume", "5000"))
        b = sim_json(*seed("--daily-volume", "5000", "--engaged", "30%"))
        self.assertEqual([d["offered"] for d in a["days"]], [d["offered"] for d in b["days"]])
        self.assertEqual(
            sum(d["isps"]["google"]["new"] + d["isps"]["google"]["old"] for d in a["days"]),
            sum(d["isps"]["google"]["new"] + d["isps"]["google"]["old"] for d in b["days"]))

    def test_table_columns(self):
        out = run(*seed("--daily-volume", "5000", "--engaged", "30%"))[1].decode()
        head = out.splitlines()[0].split()
        self.assertEqual(head[-2:], ["engaged", "other"])
        self.assertNotIn("engaged", run(*seed("--daily-volume", "5000"))[1].decode())

    def test_policy_off_and_days(self):
        off = self.write("off.ini", "[warmup]\nengaged_first = off\n")
        days = rows(run(*seed("--daily-volume", "5000", "--engaged", "30%", "--config", off,
                              "--format", "csv"))[1])
        # Without the policy the engaged get their share of the cap, 30%.
        self.assertLess(int(days[0]["engaged_new"]), 63 * 0.5)
        three = self.write("three.ini", "[warmup]\nengaged_first = 3\n")
        days = rows(run(*seed("--daily-volume", "5000", "--engaged", "30%", "--config", three,
                              "--format", "csv"))[1])
        for i in range(3):
            self.assertGreaterEqual(int(days[i]["engaged_new"]), SEED_CAPS[i] - 3)
        for i in range(3, 6):
            self.assertLess(int(days[i]["engaged_new"]), SEED_CAPS[i] * 0.5, days[i])

    def test_defer_keeps_the_others_waiting(self):
        doc = sim_json(*seed("--daily-volume", "5000", "--engaged", "30%", "--overflow",
                             "defer", "--days", "3"))
        d1 = doc["days"][0]
        self.assertEqual(d1["new"], 63)
        self.assertGreaterEqual(d1["engaged_new"], 60)
        self.assertEqual(d1["old"], 0)

    def test_bad_share_and_policy(self):
        status, _, err = run(*seed("--daily-volume", "10", "--engaged", "130%"), check=False)
        self.assertEqual(status, 2)
        self.assertIn("--engaged", err.decode())
        bad = self.write("bad.ini", "[warmup]\nengaged_first = always\n")
        status, _, err = run(*seed("--daily-volume", "10", "--config", bad), check=False)
        self.assertEqual(status, 2)
        msg = err.decode()
        self.assertIn("bad.ini:2:", msg)
        self.assertIn("engaged_first", msg)


class Gap(Tmp):
    TRAFFIC = "day,offered\n" + "".join("%d,%d\n" % (d, 0 if 5 <= d <= 7 else 20800)
                                        for d in range(1, 11))

    def gap_run(self, ini, *extra):
        traffic = self.write("t.csv", self.TRAFFIC)
        conf = self.write("w.ini", ini)
        return sim_json(*seed("--traffic", traffic, "--config", conf, *extra))

    def test_three_quiet_days_step_back_two(self):
        doc = self.gap_run("[warmup]\ngap = 3d\n")
        steps = [d["step"] for d in doc["days"]]
        # days 1-4 busy, 5-7 quiet; day 8 is back on 4 - 2 = 2
        self.assertEqual(steps, [1, 2, 3, 4, 5, 6, 7, 2, 3, 4])
        self.assertTrue(doc["days"][7]["stepped_back"])
        self.assertEqual(doc["days"][7]["cap"], 83)
        self.assertEqual(doc["days"][7]["new"], 83)
        back = [e for e in doc["events"] if e["kind"] == "step_back"]
        self.assertEqual(len(back), 1)
        self.assertEqual(back[0]["day"], 8)
        self.assertIn("from day 8 to day 2", back[0]["text"])
        # the table's notes say so
        traffic = self.write("t.csv", self.TRAFFIC)
        conf = self.write("w.ini", "[warmup]\ngap = 3d\n")
        table = run(*seed("--traffic", traffic, "--config", conf))[1].decode()
        self.assertIn("stepped back", table.splitlines()[8])
        self.assertIn("day 8: gap: 3 quiet days", table)

    def test_off_by_default_and_gap_back(self):
        doc = self.gap_run("[warmup]\n")
        self.assertEqual([d["step"] for d in doc["days"]], list(range(1, 11)))
        self.assertFalse(any(e["kind"] == "step_back" for e in doc["events"]))
        doc = self.gap_run("[warmup]\ngap = 3d\ngap_back = 1\n")
        self.assertEqual(doc["days"][7]["step"], 3)
        # two quiet days are not a gap of three
        doc = self.gap_run("[warmup]\ngap = 4d\n")
        self.assertEqual(doc["days"][7]["step"], 8)

    def test_gated_advance(self):
        doc = self.gap_run("[warmup]\ngap = 3d\nadvance = gated\n")
        steps = [d["step"] for d in doc["days"]]
        self.assertEqual(steps[:7], [1, 2, 3, 4, 5, 5, 5])
        self.assertEqual(steps[7], 2)
        self.assertEqual(steps[8], 3)

    def test_gap_fill(self):
        # 30 a day on days 6-8 (caps 363, 2,027, 1,255) is under 10% of
        # each cap, but not under 1%: day 9 is back on 5 - 2, or goes on.
        traffic = self.write("t.csv", "day,offered\n" + "".join(
            "%d,%d\n" % (d, 30 if 6 <= d <= 8 else 20800) for d in range(1, 11)))
        for fill, want in (("10%", 3), ("1%", 9)):
            conf = self.write("w.ini", "[warmup]\ngap = 3d\ngap_fill = %s\n" % fill)
            doc = sim_json(*seed("--traffic", traffic, "--config", conf))
            self.assertEqual(doc["days"][8]["step"], want, fill)

    def test_bad_gap(self):
        for line in ("gap = 2h", "gap = 3", "gap_fill = 200%", "gap_back = 0"):
            conf = self.write("bad.ini", "[warmup]\n%s\n" % line)
            status, _, err = run(*seed("--daily-volume", "10", "--config", conf), check=False)
            self.assertEqual(status, 2, line)
            msg = err.decode()
            self.assertIn("bad.ini:2:", msg)
            self.assertIn(line.split()[0], msg)


if __name__ == "__main__":
    EXE, ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])

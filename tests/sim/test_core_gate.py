#!/usr/bin/env python3
"""test_core_gate.py -- an open problem of the health gate (scheduler/core/gate.c),
found with `warmup simulate`.

usage: test_core_gate.py WARMUP_EXE SOURCE_ROOT

gate.h promises that "a handful of bounces on a 63-message day does not stop a
migration, while a real problem does".  For complaints it does not hold: with
the defaults (min_sample 50, z 1.96, complaint_halt 0.3%) a single spam report
among the first 50 deliveries halts the ramp, because the Wilson lower bound of
1/50 at z = 1.96 is 0.35%, over 0.3%.  (The exact Clopper-Pearson lower bound
of 1/50 is 0.05%; Wilson is known to be far too high for 1 or 2 hits.)  A
sender whose true complaint rate is 0.1%, a third of the halt line, therefore
loses days at random: seeds 3 and 5 of the random outcome model halt on day 5
and day 4 of the seed rollout.

These tests fail until the gate stops treating one report in fifty as
confident evidence; they are kept out of test_simulate.py so that that suite
stays green meanwhile.
"""
import json
import os
import subprocess
import sys
import unittest

EXE = None
ROOT = None


def sim(*args):
    p = subprocess.run([EXE, "simulate", "--schedule",
                        os.path.join(ROOT, "schedules", "seed-rollout.csv"), "--daily-volume",
                        "20800", "--quiet", "--format", "json"] + list(args),
                       capture_output=True, timeout=120, check=True)
    return json.loads(p.stdout)


class GateSmallSample(unittest.TestCase):
    def test_one_complaint_on_day_1_does_not_halt(self):
        # 1.6% over day 1's 63 deliveries is exactly one spam report, and it
        # lands before delivery 50 whatever the phase.
        day1 = sim("--bounce-rate", "0%", "--complaint-rate", "0%,day1=1.6%",
                   "--days", "2")["days"][0]
        self.assertEqual(day1["complaints"], 1)
        self.assertNotEqual(day1["gate"], "halt", "one spam report halted a 63-message day")
        self.assertEqual(day1["new"], 63)

    def test_healthy_complaint_rate_never_halts(self):
        # 0.1% is a third of the 0.3% halt line.
        for seed in range(1, 9):
            doc = sim("--bounce-rate", "1%", "--complaint-rate", "0.1%", "--outcomes", "random",
                      "--seed", str(seed))
            halted = [d["day"] for d in doc["days"] if d["gate"] == "halt"]
            self.assertEqual(halted, [], "seed %d: a 0.1%% complaint rate halted day %s" %
                             (seed, halted))


if __name__ == "__main__":
    EXE = os.path.abspath(sys.argv[1])
    ROOT = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])

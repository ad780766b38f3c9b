#!/usr/bin/env python3
"""test_sdk.py -- SendGrid's official Node.js SDK against warmupd.

An application switches to warmupd by changing only its base URL (and using
the intake token as its API key).  This starts the fake SendGrid and warmupd
on loopback, sends with @sendgrid/mail, and checks the SDK's view of every
answer and that the mail reached the provider.

usage: test_sdk.py WARMUPD FAKE_SENDGRID SDK_DIR
Skips (exit 77) when node or the SDK (tools/setup installs it) is missing.
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time, unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from warmuptest import read_port, read_records  # noqa: E402

WARMUPD, FAKE, SDK_DIR = sys.argv[1:4]


class SdkTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="warmup-sdk-")
        self.env = dict(os.environ, SG_KEY="SG.sdk-provider-key", WARMUP_TOKEN="SG.sdk-intake-token")
        self.procs = []
        self.fake = self.start([FAKE, "--listen", "127.0.0.1:0", "--port-file", self.path("sg.port"),
                                "--key-env", "SG_KEY", "--record", self.path("rec.jsonl")], "fake.log")
        sg_port = read_port(self.path("sg.port"), self.fake, timeout=10.0)
        today = time.strftime("%Y-%m-%d", time.localtime())
        with open(self.path("sched.csv"), "w") as f:
            f.write("day,cap\n1,1000\n")
        with open(self.path("warmupd.conf"), "w") as f:
            f.write("[warmup]\nschedule = sched.csv\nstart = %s\ntimezone = UTC\nburst = day\n"
                    "overflow = defer\n[listen]\naddress = 127.0.0.1:0\ntoken_env = WARMUP_TOKEN\n"
                    "[store]\npath = w.db\n[route new]\ntype = sendgrid\nurl = http://127.0.0.1:%d\n"
                    "api_key_env = SG_KEY\n" % (time.strftime("%Y-%m-%d", time.gmtime()), sg_port))
        self.daemon = self.start([WARMUPD, "--config", self.path("warmupd.conf"), "--port-file",
                                  self.path("w.port")], "warmupd.log")
        self.port = read_port(self.path("w.port"), self.daemon, timeout=10.0)

    def tearDown(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, argv, log):
        p = subprocess.Popen(argv, env=self.env, cwd=self.dir, stdout=subprocess.DEVNULL,
                             stderr=open(self.path(log), "w"))
        self.procs.append(p)
        return p

    def recorded(self):
        return read_records(self.path("rec.jsonl"))

    def test_official_sdk_changes_only_base_url(self):
        out = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "send.js"),
                              "http://127.0.0.1:%d" % self.port, self.env["WARMUP_TOKEN"]],
                             env=dict(self.env, NODE_PATH=os.path.join(SDK_DIR, "node_modules")),
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        res = json.loads(out.stdout)
        self.assertEqual(res["single"]["status"], 202)
        self.assertRegex(res["single"]["messageId"], r"^[A-Za-z0-9_-]{22}$")
        self.assertEqual(res["multiple"]["status"], 202)
        self.assertEqual(res["invalid"]["status"], 400)
        self.assertEqual(res["invalid"]["errors"][0]["field"], "subject")
        self.assertEqual(res["unauthorized"]["status"], 401)
        # 1 + 3 personalizations reach the provider, the Japanese text intact.
        end = time.monotonic() + 20
        while time.monotonic() < end and sum(len(r["body"]["personalizations"]) for r in self.recorded()) < 4:
            time.sleep(0.05)
        recs = self.recorded()
        tos = sorted(p["to"][0]["email"] for r in recs for p in r["body"]["personalizations"])
        self.assertEqual(tos, ["a@yahoo.co.jp", "b@docomo.ne.jp", "c@outlook.jp", "taro@gmail.com"])
        single = [r["body"] for r in recs if r["body"]["subject"] == "冬のセール"][0]
        self.assertEqual(single["from"]["name"], "ショップ")
        self.assertEqual(single["custom_args"]["campaign"], "winter")
        self.assertEqual(single["custom_args"]["warmup_route"], "new")


if __name__ == "__main__":
    if not shutil.which("node") or not os.path.isdir(os.path.join(SDK_DIR, "node_modules", "@sendgrid", "mail")):
        print("skipped: node or @sendgrid/mail is not installed (tools/setup installs them)")
        sys.exit(77)
    unittest.main(argv=sys.argv[:1], verbosity=2)

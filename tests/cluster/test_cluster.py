#!/usr/bin/env python3
"""Several warmupd nodes sharing one cap through a real Redis server.

usage: test_cluster.py WARMUPD FAKE_SENDGRID WARMUP [unittest args]

Each test starts its own redis-server on a free loopback port (no
persistence: --save '' --appendonly no), one fake SendGrid that every node
sends to, one recording SMTP relay as the old route, and three warmupd
nodes with their own stores and [cluster] on that Redis.  What is asserted
is counted where it lands: recipients at the fake and at the relay.
"""
import datetime
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for, mail  # noqa: E402

WARMUPD = None
FAKE = None
WARMUP = None
TOKEN = "tok-Cluster-5e1a7c93b2d04f68a1e7"
API_KEY = "SG.Cluster-8b2d41f0c6e37a95d1c4.pQ7w"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"]
KEY = "warmup:{test-migration}"  # the keys of the tests' migration


class Redis:
    """redis-server on 127.0.0.1:port, no persistence."""

    def __init__(self, dir, port=None):
        self.dir = dir
        self.port = port or warmuptest.free_port()
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.command("PING") == "+PONG", "redis-server answers PING")

    def command(self, *args):
        """One command in the inline protocol; its first reply line, or None."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall((" ".join(args) + "\r\n").encode())
                return s.makefile("rb").readline().decode().strip()
        except OSError:
            return None

    def cli(self, *args):
        """One command through redis-cli; its raw reply as text."""
        r = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--raw", *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc:
            self.log.close()
            self.proc = None


class RelayHandler(warmuptest.SmtpHandler):
    """An SMTP relay that records the recipients of every message it took."""

    def handle(self):
        try:
            self.session()
        except (ConnectionError, OSError):
            pass  # a node killed mid-session: its message was not taken

    def session(self):
        self.server.conns.append(self.connection)
        self.reply("220 relay ready")
        rcpts = []
        for line in self.rfile:
            cmd = line.strip()
            up = cmd.upper()
            if up == b"DATA":
                self.reply("354 go on")
                for body in self.rfile:
                    if body == b".\r\n":
                        break
                with self.server.lock:
                    self.server.rcpts.extend(rcpts)
                rcpts = []
                self.reply("250 2.0.0 Ok: queued")
            elif up.startswith(b"RCPT TO:"):
                rcpts.append(cmd[8:].strip(b"<> ").decode())
                self.reply("250 ok")
            elif up == b"QUIT":
                self.reply("221 bye")
                return
            elif up.startswith(b"EHLO") or up.startswith(b"HELO"):
                self.reply("250 relay")
            else:
                self.reply("250 ok")


class Relay(warmuptest.SmtpServer):
    def __init__(self):
        super().__init__(RelayHandler)
        self.rcpts = []
        self.serve()

    def recipients(self):
        with self.lock:
            return list(self.rcpts)


class AlertSink(http.server.ThreadingHTTPServer):
    """Collects the push alerts warmupd POSTs."""

    def __init__(self):
        sink = self
        self.alerts = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                sink.alerts.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def events(self):
        return [a.get("event") for a in list(self.alerts)]


class Node(warmuptest.Warmupd):
    def __init__(self, dir, config, env):
        super().__init__(WARMUPD, dir, config, env, TOKEN)


class ClusterBase(unittest.TestCase):
    CAP = 500

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warmupd-cluster-")
        self.dir = self._tmp.name
        self.procs = []
        self.redis = Redis(self.dir)
        self.fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(self.fake)
        self.relay = Relay()
        self.alerts = AlertSink()
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop()
        for p in self.procs:
            p.stop()
        self.relay.stop()
        self.alerts.shutdown()
        self.alerts.server_close()
        if warmuptest.has_failed(self):
            warmuptest.dump_logs(self.nodes + self.procs)
            try:
                with open(os.path.join(self.dir, "redis.log")) as f:
                    sys.stderr.write(f.read()[-2000:])
            except OSError:
                pass
        self.redis.stop()
        self._tmp.cleanup()

    def config(self, i, overflow="old", extra="", burst="day", cap=None):
        d = os.path.join(self.dir, "n%d" % i)
        os.makedirs(d, exist_ok=True)
        warmuptest.write_file(d, "schedule.csv",
                              "# test schedule\nday,cap\n1,%d\n2,%d\n" % (cap or self.CAP,
                                                                          cap or self.CAP))
        text = f"""; cluster node {i}
[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = {burst}
overflow = {overflow}
after = hold

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{self.fake.port}
api_key_env = WARMUP_TEST_KEY
timeout = 5s

[route old]
type = smtp
url = smtp://127.0.0.1:{self.relay.port}
tls = none
timeout = 5s

[webhook]
auth = none

[alert]
webhook_url_env = WARMUP_TEST_ALERT

[backoff]
retry_min = 1s
retry_max = 2s

[cluster]
redis = {self.redis_url()}
name = test-migration
node = n{i}
timeout = 1s
{extra}
"""
        return warmuptest.write_file(d, "warmupd.conf", text)

    def redis_url(self):
        return "redis://127.0.0.1:%d/0" % self.redis.port

    def start_node(self, i, env_extra=None, **kw):
        d = os.path.join(self.dir, "n%d" % i)
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY,
                   WARMUP_TEST_ALERT="http://127.0.0.1:%d/hook" % self.alerts.server_port,
                   **(env_extra or {}))
        n = Node(d, self.config(i, **kw), env)
        return n

    def start_nodes(self, k=3, **kw):
        self.nodes = [self.start_node(i + 1, **kw) for i in range(k)]
        wait_for(lambda: all(n.status()["cluster"]["connected"] for n in self.nodes),
                 "every node connected to Redis")

    def post(self, count, start=0, nodes=None, tag="m", domain="example.com"):
        """count one-recipient messages, round-robin over nodes, from one
        thread per node; returns the recipients accepted (202)."""
        nodes = nodes or self.nodes
        accepted = []
        lock = threading.Lock()

        def run(k):
            mine = []
            for j in range(start + k, start + count, len(nodes)):
                r = "%s%d@%s" % (tag, j, domain)
                st, _, b = nodes[k].send(mail([r], subject="Cluster %d" % j))
                self.assertEqual(st, 202, b)
                mine.append(r)
            with lock:
                accepted.extend(mine)

        ts = [threading.Thread(target=run, args=(k,)) for k in range(len(nodes))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return accepted

    def landed(self):
        return self.fake.sent_recipients(), self.relay.recipients()

    def wait_all(self, accepted):
        want = set(accepted)

        def done():
            new, old = self.landed()
            return want <= set(new) | set(old)
        wait_for(done, "every accepted message at the fake or at the relay", timeout=120)


class ClusterTest(ClusterBase):
    # ---- the cap in sum ----------------------------------------------------

    def test_pacing_tokens_are_shared(self):
        """A cap of 240 paced over the day with burst = 1h: the bucket holds
        10.  Alone, each of three nodes would send its own bucket's 10 at
        once (30); sharing the cluster's bucket, the three send at most 10
        together, and the rest goes old."""
        self.start_nodes(burst="1h", cap=240)
        accepted = self.post(60, tag="pace")
        self.assertEqual(len(accepted), 60)
        self.wait_all(accepted)
        new, old = self.landed()
        self.assertLessEqual(len(set(new)), 10, "the cluster's bucket holds 10")
        self.assertGreaterEqual(len(set(new)), 1, "the tokens reach the nodes")
        self.assertEqual(set(new) | set(old), set(accepted), "nothing lost")
        self.assertEqual(len(set(new) & set(old)), 0)

    # ---- each ISP's limits in sum ------------------------------------------

    def test_isp_share_is_counted_in_sum(self):
        """Gmail may have 20% of a cap of 500: 100.  Alone, each of three
        nodes would give Gmail its own 100 (300 in all, within the cap);
        counting the share in sum, the three send at most 100 to Gmail
        together, the rest goes old, and other ISPs still get the cap's
        rest."""
        self.start_nodes(extra="[isp google]\nnew_share = 20%\n")
        accepted = self.post(450, tag="share", domain="gmail.com")
        accepted += self.post(60, start=450, tag="other")
        self.assertEqual(len(accepted), 510)
        self.wait_all(accepted)
        new, old = self.landed()
        gmail = [r for r in set(new) if r.startswith("share")]
        others = [r for r in set(new) if r.startswith("other")]
        self.assertLessEqual(len(gmail), 100, "Gmail's share of 500, in sum")
        self.assertGreaterEqual(len(gmail), 50, "the share's units reach the nodes")
        self.assertEqual(len(others), 60, "other ISPs are not held by Gmail's share")
        self.assertEqual(set(new) | set(old), set(accepted), "nothing lost")
        self.assertEqual(len(set(new) & set(old)), 0)
        per_node = [n.status()["isps"]["google"]["new"]["sent"] for n in self.nodes]
        self.assertEqual(sum(per_node), len(gmail), per_node)
        date = (today() - datetime.date(1970, 1, 1)).days
        got = int(self.redis.cli("HGET", "%s:isp:%d" % (KEY, date), "google:got") or "0")
        self.assertLessEqual(got, 100, "the share counted in Redis")
        self.assertGreaterEqual(got, len(gmail))

    def test_isp_rate_tokens_are_shared(self):
        """Gmail at 6/h with a burst of 5: its bucket holds 5.  Alone, each
        of three nodes would send its own bucket's 5 at once (15); sharing
        the cluster's bucket for Gmail, the three send at most 5 together,
        the rest goes old; other ISPs are not held by it."""
        self.start_nodes(extra="[isp google]\nnew_rate = 6/h\nnew_burst = 5\n")
        accepted = self.post(60, tag="rate", domain="gmail.com")
        accepted += self.post(30, start=60, tag="other")
        self.assertEqual(len(accepted), 90)
        self.wait_all(accepted)
        new, old = self.landed()
        gmail = [r for r in set(new) if r.startswith("rate")]
        self.assertLessEqual(len(gmail), 5, "the cluster's Gmail bucket holds 5")
        self.assertGreaterEqual(len(gmail), 1, "the tokens reach the nodes")
        self.assertEqual(len([r for r in set(new) if r.startswith("other")]), 30)
        self.assertEqual(set(new) | set(old), set(accepted), "nothing lost")
        self.assertEqual(len(set(new) & set(old)), 0)

    def test_isp_cut_applies_to_the_shared_rate(self):
        """A deferral rule cuts Gmail's 10/s to half on node 1; node 2 hears
        of it through the shared events, and the cluster's Gmail bucket
        fills at the cut rate, 5/s, whichever node refills it."""
        self.start_nodes(k=2, extra="[isp google]\nnew_rate = 600/min\nnew_burst = 2\n")
        date = (today() - datetime.date(1970, 1, 1)).days
        rate = lambda: float(self.redis.cli("HGET", "%s:isp:%d" % (KEY, date),  # noqa: E731
                                            "google:rate") or "0")
        accepted = self.post(4, nodes=[self.nodes[1]], tag="full", domain="gmail.com")
        self.wait_all(accepted)
        wait_for(lambda: rate() == 10, "the bucket at Gmail's full rate")
        ev = [{"email": "someone@gmail.com", "timestamp": int(time.time()), "event": "deferred",
               "response": "421-4.7.28 Our system has detected an unusual rate",
               "sg_event_id": "cut-s-1", "warmup_route": "new"}]
        st, _, b = self.nodes[0].request("POST", "/v1/events/sendgrid", ev, token=None)
        self.assertEqual(st, 200, b)
        wait_for(lambda: "shared by node n1" in self.nodes[1].logtext(),
                 "the other node cut google's rate too")
        accepted += self.post(20, start=4, nodes=[self.nodes[1]], tag="cut", domain="gmail.com")
        self.wait_all(accepted)
        wait_for(lambda: rate() == 5, "the bucket at the cut rate, refilled by node 2")
        self.assertEqual(set(accepted) - set(self.landed()[0]) - set(self.landed()[1]), set())

    # ---- leases going back -------------------------------------------------

    def test_lease_goes_back_at_stop(self):
        """Node 1 sends one message of a cap of 20 and holds the rest of its
        lease; it stops: the lease goes back, and node 2 can send all the 19
        left (without the return it could send only 20 minus the lease)."""
        self.start_nodes(k=2, cap=20)
        accepted = self.post(1, nodes=[self.nodes[0]], tag="s")
        self.wait_all(accepted)
        lease = self.nodes[0].status()["cluster"]["lease"]
        self.assertGreater(lease, 0, "node 1 holds the rest of its lease")
        self.assertEqual(self.nodes[0].terminate(), 0)
        wait_for(lambda: self.nodes[1].status()["cluster"]["granted"] == 1,
                 "the cluster counts only what node 1 used")
        accepted += self.post(40, start=1, nodes=[self.nodes[1]], tag="s")
        self.wait_all(accepted)
        new = set(self.landed()[0])
        self.assertEqual(len(new), 20, "node 2 used the returned lease: the cap in sum")
        self.assertEqual(self.nodes[1].status()["routes"]["new"]["sent"], 19)

    def test_lease_not_carried_over_midnight(self):
        """A node holds a lease of today's cap of 20 when its clock crosses
        midnight (libfaketime): the lease goes back to the old date (its
        count is what was used), and the new date grants its own cap of 20,
        not 20 plus the old leftover."""
        lib = next((l for l in FAKETIME_LIBS if os.path.exists(l)), None)
        if not lib:
            self.skipTest("libfaketime not installed (Debian package faketime)")
        tsfile = warmuptest.write_file(self.dir, "faketime", "+0\n")
        env = {"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": tsfile, "FAKETIME_NO_CACHE": "1",
               "FAKETIME_DONT_FAKE_MONOTONIC": "1",
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
        self.nodes = [self.start_node(1, cap=20, env_extra=env)]
        wait_for(lambda: self.nodes[0].status()["cluster"]["connected"], "connected")
        accepted = self.post(3, tag="d1")
        self.wait_all(accepted)
        st = self.nodes[0].status()
        self.assertGreater(st["cluster"]["lease"], 0, "a lease held at midnight")
        day1 = (today() - datetime.date(1970, 1, 1)).days
        self.assertEqual(self.redis.cli("HGET", "%s:day:%d" % (KEY, day1), "granted"),
                         str(3 + st["cluster"]["lease"]))
        secs = 86400 + 600
        with open(tsfile + ".tmp", "w") as f:
            f.write("%+d\n" % secs)
        os.replace(tsfile + ".tmp", tsfile)
        day2 = ((datetime.datetime.now(warmuptest.zoneinfo.ZoneInfo(TZ)) +
                 datetime.timedelta(seconds=secs)).date() - datetime.date(1970, 1, 1)).days
        wait_for(lambda: self.nodes[0].status()["date"] ==
                 (datetime.date(1970, 1, 1) + datetime.timedelta(days=day2)).isoformat(),
                 "the node's clock on the next date")
        accepted += self.post(40, start=3, tag="d2")
        self.wait_all(accepted)
        wait_for(lambda: self.redis.cli("HGET", "%s:day:%d" % (KEY, day1), "granted") == "3",
                 "the old date's leftover lease went back")
        new = set(self.landed()[0])
        self.assertEqual(len([r for r in new if r.startswith("d2")]), 20,
                         "the new date's own cap, nothing carried")
        self.assertEqual(self.redis.cli("HGET", "%s:day:%d" % (KEY, day2), "granted"), "20")
        self.assertEqual(set(accepted) - (new | set(self.landed()[1])), set(), "nothing lost")

    def test_three_nodes_share_one_cap(self):
        self.start_nodes()
        accepted = self.post(3000)
        self.assertEqual(len(accepted), 3000)
        self.wait_all(accepted)
        new, old = self.landed()
        self.assertEqual(len(new), self.CAP, "exactly the cap through the new route in sum")
        self.assertEqual(len(set(new)), self.CAP)
        self.assertEqual(len(set(new) & set(old)), 0, "no message went both ways")
        self.assertEqual(set(new) | set(old), set(accepted), "nothing lost")
        per_node = [n.status()["routes"]["new"]["sent"] for n in self.nodes]
        self.assertEqual(sum(per_node), self.CAP, per_node)

        def view_ok():
            c = self.nodes[0].status()["cluster"]
            return (len(c["nodes"]) == 3 and c["sent"] == self.CAP and
                    c["cap"] == self.CAP)
        wait_for(view_ok, "the cluster view: three nodes, the cap used in sum")
        r = subprocess.run([WARMUP, "status", "--url", "http://127.0.0.1:%d" % self.nodes[2].port,
                            "--token-env", "WARMUP_TEST_TOKEN"], capture_output=True, text=True,
                           env=dict(os.environ, WARMUP_TEST_TOKEN=TOKEN))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cluster    test-migration on redis://127.0.0.1:%d/0, node n3: connected; "
                      "sum 500 sent" % self.redis.port, r.stdout)
        for i in (1, 2, 3):
            self.assertRegex(r.stdout, r"\nn%d +\d+ +\d+  yes\n" % i)
        m = self.nodes[1].metrics()
        self.assertIn("warmup_cluster_connected 1", m)
        self.assertIn("warmup_cluster_leases_total", m)

    def test_reload_keeps_the_shared_cap(self):
        self.start_nodes(k=2)
        accepted = self.post(300, tag="h")
        self.nodes[0].proc.send_signal(signal.SIGHUP)
        wait_for(lambda: (self.nodes[0].status().get("reload") or {}).get("applied") == 1,
                 "the reload applied")
        # a [cluster] change is refused: the Redis connection was set up at the start
        cfg = self.nodes[1].config
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("node = n2", "node = renamed"))
        self.nodes[1].proc.send_signal(signal.SIGHUP)
        wait_for(lambda: (self.nodes[1].status().get("reload") or {}).get("refused") == 1,
                 "the reload refused")
        self.assertIn("[cluster] node: cannot change on reload",
                      self.nodes[1].status()["reload"]["message"])
        accepted += self.post(900, start=300, tag="h")
        self.wait_all(accepted)
        new, old = self.landed()
        self.assertEqual(len(set(new)), self.CAP, "the reloaded engine still takes leases")
        self.assertEqual(set(new) | set(old), set(accepted))

    def test_kill9_and_restart_stays_under_cap(self):
        self.start_nodes()
        accepted = self.post(900, tag="a")
        self.nodes[1].kill9()
        accepted += self.post(600, start=900, nodes=[self.nodes[0], self.nodes[2]], tag="a")
        self.nodes[1] = self.start_node(2)
        wait_for(lambda: self.nodes[1].status()["cluster"]["connected"], "node 2 back")
        accepted += self.post(1500, start=1500, tag="a")
        self.wait_all(accepted)
        new, old = self.landed()
        self.assertLessEqual(len(set(new)), self.CAP, "at most the cap in sum")
        self.assertGreaterEqual(len(set(new)), self.CAP - 200,
                                "only the killed node's lease may be wasted")
        self.assertEqual(set(accepted) - (set(new) | set(old)), set(), "nothing lost")

    def test_redis_outage(self):
        self.start_nodes()
        accepted = self.post(150, tag="r")
        self.wait_all(accepted)
        before = len(self.landed()[0])
        self.assertGreater(before, 0)
        self.redis.stop()
        wait_for(lambda: not any(n.status()["cluster"]["connected"] for n in self.nodes),
                 "every node sees Redis gone")
        wait_for(lambda: "cluster_down" in self.alerts.events(), "the outage alerted")
        accepted += self.post(600, start=150, tag="r")
        self.wait_all(accepted)
        during = len(set(self.landed()[0]))
        self.assertLessEqual(during, self.CAP)
        # what went new during the outage is only what was already leased
        leased = sum(n.status()["cluster"]["lease"] for n in self.nodes)
        self.assertEqual(leased, 0, "the leases were used up, no new ones taken")
        self.redis.start()
        wait_for(lambda: all(n.status()["cluster"]["connected"] for n in self.nodes),
                 "every node reconnected")
        wait_for(lambda: "cluster_up" in self.alerts.events(), "the recovery alerted")

        # Redis came back empty: every live node states its units again, and
        # no lease is granted until the hold for that is over.
        def relearned():
            cs = [n.status()["cluster"] for n in self.nodes]
            return all(not c["held"] and c["granted"] >= during for c in cs)
        wait_for(relearned, "the cluster relearned what the nodes used")
        accepted += self.post(1500, start=750, tag="r")
        self.wait_all(accepted)
        new = set(self.landed()[0])
        self.assertGreater(len(new), during, "the new route resumed")
        self.assertLessEqual(len(new), self.CAP, "never more than the cap")
        self.assertEqual(set(accepted) - (new | set(self.landed()[1])), set(), "nothing lost")

    def test_gate_halt_reaches_every_node(self):
        self.start_nodes()
        accepted = self.post(30, tag="g")
        self.wait_all(accepted)
        ts = int(time.time())
        batch = [{"email": "d%d@example.com" % i, "timestamp": ts, "event": "delivered",
                  "sg_event_id": "gate-d-%d" % i, "warmup_route": "new"} for i in range(102)]
        batch += [{"email": "b%d@example.com" % i, "timestamp": ts, "event": "bounce",
                   "type": "bounce", "sg_event_id": "gate-b-%d" % i, "warmup_route": "new"}
                  for i in range(18)]
        st, _, b = self.nodes[0].request("POST", "/v1/events/sendgrid", batch, token=None)
        self.assertEqual(st, 200, b)
        self.assertEqual(self.nodes[0].status()["gate"]["state"], "halt")
        wait_for(lambda: all(n.status()["routes"]["new"]["paused"] for n in self.nodes),
                 "the new route halted on all three nodes")
        sent_before = len(self.landed()[0])
        more = self.post(30, start=30, tag="g")
        self.wait_all(more)
        self.assertEqual(len(self.landed()[0]), sent_before, "nothing more went new")
        # a resume on another node resumes all of them
        st, _, b = self.nodes[2].request("POST", "/v1/resume", {"route": "new", "who": "t"})
        self.assertEqual(st, 200, b)
        wait_for(lambda: not any(n.status()["routes"]["new"]["paused"] for n in self.nodes),
                 "the resume reached every node")

    def test_gate_counts_are_pooled_over_the_nodes(self):
        """The webhook's events land on any node: 60 reports on one node
        and 60 on another, one in five a bounce, are each below the gate's
        minimum sample of 120, and halt the ramp together."""
        self.start_nodes()
        accepted = self.post(30, tag="p")
        self.wait_all(accepted)
        ts = int(time.time())
        for k, node in enumerate(self.nodes[:2]):
            batch = [{"email": "p%d-%d@example.com" % (k, i), "timestamp": ts,
                      "event": "bounce" if i % 5 == 4 else "delivered", "type": "bounce",
                      "sg_event_id": "pool-%d-%d" % (k, i), "warmup_route": "new"}
                     for i in range(60)]
            st, _, b = node.request("POST", "/v1/events/sendgrid", batch, token=None)
            self.assertEqual(st, 200, b)
            self.assertEqual(json.loads(b)["applied"], 60, b)
            if k == 0:
                # 60 reports in the whole cluster so far: not enough to judge
                self.assertNotEqual(node.status()["gate"]["state"], "halt")
                self.assertFalse(node.status()["routes"]["new"]["paused"])
        wait_for(lambda: all(n.status()["routes"]["new"]["paused"] for n in self.nodes),
                 "the pooled counts halted the new route on all three nodes")
        halted = [n.status()["gate"] for n in self.nodes[:2]]
        self.assertTrue(any(g["state"] == "halt" for g in halted), halted)

    def test_same_event_id_counts_once(self):
        self.start_nodes()
        ts = int(time.time())
        ev = [{"email": "x@example.com", "timestamp": ts, "event": "delivered",
               "sg_event_id": "dup-1", "warmup_route": "new"},
              {"email": "y@example.com", "timestamp": ts, "event": "delivered",
               "sg_event_id": "only-on-2-%d" % ts, "warmup_route": "new"}]
        st, _, b = self.nodes[0].request("POST", "/v1/events/sendgrid", ev[:1], token=None)
        self.assertEqual(st, 200, b)
        self.assertEqual(json.loads(b)["applied"], 1, b)
        st, _, b = self.nodes[1].request("POST", "/v1/events/sendgrid", ev, token=None)
        self.assertEqual(st, 200, b)
        got = json.loads(b)
        self.assertEqual((got["applied"], got["duplicate"]), (1, 1), got)
        delivered = [n.status()["routes"]["new"]["delivered"] for n in self.nodes]
        self.assertEqual(delivered, [1, 1, 0], "each event counted on one node only")

    def test_webhook_suppression_reaches_every_node(self):
        self.start_nodes(k=2)
        ts = int(time.time())
        ev = [{"email": "gone@example.com", "timestamp": ts, "event": "bounce", "type": "bounce",
               "reason": "550 5.1.1 no such user", "sg_event_id": "supp-1",
               "warmup_route": "new"}]
        st, _, b = self.nodes[0].request("POST", "/v1/events/sendgrid", ev, token=None)
        self.assertEqual(st, 200, b)

        def listed(n):
            st, _, b = n.request("GET", "/v1/suppressions")
            self.assertEqual(st, 200, b)
            return [s["email"] for s in json.loads(b)["suppressions"]]
        wait_for(lambda: "gone@example.com" in listed(self.nodes[1]),
                 "the other node suppressed the address")
        # mail to it on the other node is dropped at intake, not sent
        st, _, b = self.nodes[1].send(mail(["gone@example.com", "here@example.com"]))
        self.assertEqual(st, 202, b)
        self.wait_all(["here@example.com"])
        self.assertNotIn("gone@example.com", self.landed()[0] + self.landed()[1])
        # a node that starts later learns it from the stream
        self.nodes.append(self.start_node(3))
        wait_for(lambda: "gone@example.com" in listed(self.nodes[2]),
                 "a node started later suppressed the address too")

    def test_deferral_cut_reaches_every_node(self):
        self.start_nodes(k=2, extra="[isp google]\nnew_rate = 10/s\n")
        ev = [{"email": "someone@gmail.com", "timestamp": int(time.time()), "event": "deferred",
               "response": "421-4.7.28 Our system has detected an unusual rate",
               "sg_event_id": "cut-1", "warmup_route": "new"}]
        st, _, b = self.nodes[0].request("POST", "/v1/events/sendgrid", ev, token=None)
        self.assertEqual(st, 200, b)
        self.assertIn("warmup_isp_cut{isp=\"google\"} 0.5", self.nodes[0].metrics())
        wait_for(lambda: "google cut to 50% for" in self.nodes[1].logtext() and
                 "shared by node n1" in self.nodes[1].logtext(),
                 "the other node cut google's rate too")

    def test_config_refuses_a_password_in_the_url(self):
        cfg = self.config(1)
        with open(cfg) as f:
            text = f.read()
        for url, want in [("redis://:pw@127.0.0.1/0", "password in the URL"),
                          ("rediss://:pw@127.0.0.1/0", "password in the URL"),
                          ("http://127.0.0.1/0", "or rediss:// for TLS")]:
            with open(cfg, "w") as f:
                f.write(text.replace("redis://127.0.0.1:%d/0" % self.redis.port, url))
            r = subprocess.run([WARMUPD, "--check", "--config", cfg], capture_output=True,
                               text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("[cluster] redis", r.stdout + r.stderr)
            self.assertIn(want, r.stdout + r.stderr)
            self.assertNotIn("pw@", r.stdout + r.stderr)


class TlsRedis(Redis):
    """redis-server with a plain port (the tests' own look) and a TLS port
    with the private CA's certificate for 127.0.0.1."""

    def __init__(self, dir, pki, auth_clients):
        self.pki = pki
        self.auth_clients = auth_clients
        self.tls_port = warmuptest.free_port()
        super().__init__(dir)

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        p = lambda name: os.path.join(self.pki, name)  # noqa: E731
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--tls-port", str(self.tls_port), "--tls-cert-file", p("mx.pem"),
             "--tls-key-file", p("mx.key"), "--tls-ca-cert-file", p("ca.pem"),
             "--tls-auth-clients", "yes" if self.auth_clients else "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.command("PING") == "+PONG", "redis-server answers PING")


class TlsSetup:
    """Redis on TLS only for the nodes ([cluster] redis = rediss://), the
    server's certificate from the test's private CA."""
    AUTH_CLIENTS = False

    def setUp(self):
        super().setUp()
        self.redis.stop()
        self.pki = warmuptest.make_pki(os.path.join(self.dir, "pki"))
        self.redis = TlsRedis(self.dir, self.pki, self.AUTH_CLIENTS)

    def redis_url(self):
        return "rediss://127.0.0.1:%d/0" % self.redis.tls_port

    def tls_keys(self, ca=None, cert=False):
        text = "tls_ca_file = %s\n" % (ca or os.path.join(self.pki, "ca.pem"))
        if cert:
            text += "tls_cert_file = %s\ntls_key_file = %s\n" % (
                os.path.join(self.pki, "mx.pem"), os.path.join(self.pki, "mx.key"))
        return text

    def check(self, conf):
        """warmupd --check on conf: its exit status and stderr."""
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY,
                   WARMUP_TEST_ALERT="http://127.0.0.1:1/hook")
        r = subprocess.run([WARMUPD, "--config", conf, "--check"], capture_output=True,
                           text=True, timeout=30, cwd=os.path.dirname(conf), env=env)
        return r.returncode, r.stderr


class ClusterTlsTest(TlsSetup, ClusterBase):
    """[cluster] redis = rediss://: the link to Redis is TLS, the server's
    certificate checked against tls_ca_file and the URL's host."""

    def test_cap_is_shared_over_tls(self):
        self.nodes = [self.start_node(i + 1, cap=20, extra=self.tls_keys()) for i in range(2)]
        wait_for(lambda: all(n.status()["cluster"]["connected"] for n in self.nodes),
                 "both nodes connected to Redis over TLS")
        accepted = self.post(60)
        self.wait_all(accepted)
        new, old = self.landed()
        self.assertEqual(len(new), 20, "the cap in sum, counted in the TLS Redis")
        self.assertEqual(len(new) + len(old), 60)
        day = (today() - datetime.date(1970, 1, 1)).days
        self.assertEqual(self.redis.cli("HGET", "%s:day:%d" % (KEY, day), "granted"), "20")
        self.assertTrue(self.nodes[0].status()["cluster"]["redis"].startswith("rediss://"))

    def test_a_server_the_ca_does_not_vouch_for_is_refused(self):
        other = warmuptest.make_pki(os.path.join(self.dir, "other-ca"))
        self.nodes = [self.start_node(1, cap=20,
                                      extra=self.tls_keys(ca=os.path.join(other, "ca.pem")))]
        wait_for(lambda: "certificate verify failed" in self.nodes[0].logtext(),
                 "the node refused the server's certificate")
        self.assertFalse(self.nodes[0].status()["cluster"]["connected"])
        # No private cap: the new route takes nothing, the old one all.
        accepted = self.post(5)
        self.wait_all(accepted)
        new, old = self.landed()
        self.assertEqual((len(new), len(old)), (0, 5))

    def test_tls_keys_are_checked(self):
        pem = os.path.join(self.pki, "mx.pem")
        rc, err = self.check(self.config(1, extra="tls_cert_file = %s\n" % pem))
        self.assertNotEqual(rc, 0)
        self.assertIn("[cluster] tls_cert_file: a client certificate needs both", err)
        missing = os.path.join(self.dir, "missing.pem")
        rc, err = self.check(self.config(1, extra=self.tls_keys(ca=missing)))
        self.assertNotEqual(rc, 0)
        self.assertIn("[cluster] tls_ca_file: %s" % missing, err)
        rc, err = self.check(self.config(1, extra=self.tls_keys()))
        self.assertEqual(rc, 0, err)
        self.redis_url = lambda: "redis://127.0.0.1:%d/0" % self.redis.port
        rc, err = self.check(self.config(1, extra=self.tls_keys()))
        self.assertNotEqual(rc, 0)
        self.assertIn("[cluster] tls_ca_file: only for a rediss:// server", err)


class ClusterTlsClientCertTest(TlsSetup, ClusterBase):
    """Redis with tls-auth-clients yes asks for the node's certificate."""
    AUTH_CLIENTS = True

    def test_client_certificate(self):
        self.nodes = [self.start_node(1, cap=5, extra=self.tls_keys())]
        wait_for(lambda: "cluster: TLS to 127.0.0.1:%d" % self.redis.tls_port
                 in self.nodes[0].logtext(), "without a certificate the server refuses the node")
        self.assertFalse(self.nodes[0].status()["cluster"]["connected"])
        self.nodes[0].stop()
        self.nodes = [self.start_node(2, cap=5, extra=self.tls_keys(cert=True))]
        wait_for(lambda: self.nodes[0].status()["cluster"]["connected"],
                 "with its certificate the node connects")
        accepted = self.post(8)
        self.wait_all(accepted)
        self.assertEqual(len(self.landed()[0]), 5)


if __name__ == "__main__":
    WARMUPD, FAKE, WARMUP = sys.argv[1], sys.argv[2], sys.argv[3]
    if not os.path.exists(REDIS_SERVER):
        print("redis-server is not installed (tools/setup installs it)")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)

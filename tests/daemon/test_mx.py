#!/usr/bin/env python3
"""ISP groups by MX: warmupd asks a real DNS server (dnsmasq on a loopback
port) for the MX of domains no group claims by name, and counts their mail
against the group of the exchanger.

usage: test_mx.py WARMUPD FAKE_SENDGRID [unittest arguments]

dnsmasq answers only from its command line (--no-resolv, --no-hosts, an
empty config file): acme.co.jp has MX aspmx.l.google.com (Google
Workspace), m365.co.jp an Outlook protection host, every other name under
jp is NXDOMAIN (--local=/jp/), and names elsewhere are REFUSED.  Skipped
(exit 77) without dnsmasq.
"""
import os
import shutil
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for, mail  # noqa: E402

WARMUPD = None
FAKE = None
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
TOKEN = "tok-Intake-7f3a9c21e4b8d6051fa2"
API_KEY = "SG.Key-9d2e71c4b05a8f36e1d7.q0Zx"


def mx_query(port, name, timeout=0.5):
    """The rcode and answer count of an MX query to 127.0.0.1:port."""
    q = struct.pack(">HHHHHH", 0x5157, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 15, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        r = s.recv(512)
    finally:
        s.close()
    flags, _, an = struct.unpack(">HHH", r[2:8])
    return flags & 15, an


class Dnsmasq:
    """dnsmasq in the foreground on a free loopback UDP port; its log (every
    query) in dir/dnsmasq.log."""

    def __init__(self, dir, records, ttl=300):
        self.port = warmuptest.free_port()
        self.log_path = os.path.join(dir, "dnsmasq.log")
        self.log = open(self.log_path, "wb")
        argv = [DNSMASQ, "--keep-in-foreground", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", "--pid-file=", "--local=/jp/",
                "--local-ttl=%d" % ttl, "--log-queries", "--log-facility=-"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        argv += ["--mx-host=%s,%s,%d" % r for r in records]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited: %s" % self.logtext())
            try:
                mx_query(self.port, "ready.jp")  # any answer will do
                return True
            except OSError:
                return False
        wait_for(up, "dnsmasq answering")

    def queries(self, name):
        return self.logtext().count("query[MX] %s from 127.0.0.1\n" % name) - \
            (name == "ready.jp")

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        warmuptest.stop_process(self.proc)
        self.log.close()


class SlowDns:
    """A DNS server that answers every MX query with aspmx.l.google.com
    (TTL 300), `delay` seconds late: for the dispatcher's wait."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.done = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.done:
            try:
                q, peer = self.sock.recvfrom(512)
            except OSError:
                return
            threading.Timer(self.delay, self.answer, (q, peer)).start()

    def answer(self, q, peer):
        end = 12
        while q[end]:
            end += 1 + q[end]
        question = q[12:end + 5]
        host = b"".join(bytes([len(l)]) + l for l in b"aspmx.l.google.com".split(b".")) + b"\0"
        rr = b"\xc0\x0c" + struct.pack(">HHIHH", 15, 1, 300, 2 + len(host), 10) + host
        r = q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + rr
        try:
            self.sock.sendto(r, peer)
        except OSError:
            pass

    def stop(self):
        self.done = True
        self.sock.close()


class MxTest(warmuptest.ProcTestCase):
    prefix = "warmupd-mx-"

    def config(self, fake_port, dns, cap=1000, extra=""):
        self.write("schedule.csv", "# test schedule\nday,cap\n1,%d\n2,%d\n" % (cap, cap))
        return self.write("warmupd.conf", f"""; MX test config
[warmup]
schedule = schedule.csv
start = {today().isoformat()}
timezone = {TZ}
burst = day
overflow = defer
after = hold

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{fake_port}
api_key_env = WARMUP_TEST_KEY
timeout = 2s

[isp google]
new_share = 5

[isp microsoft]
new_share = 2

[dns]
{dns}

[log]
level = debug
{extra}
""")

    def start(self, dns, records=None, args=(), **kw):
        fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(fake)
        self.dns = None
        if records is not None:
            self.dns = Dnsmasq(self.dir, records)
            self.procs.append(self.dns)
            dns = dns.replace("PORT", str(self.dns.port))
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, self.dir, self.config(fake.port, dns, **kw), env, TOKEN,
                               args=args)
        self.procs.append(d)
        return fake, d

    def send_each(self, d, addrs):
        for a in addrs:
            st, _, b = d.send(mail([a]))
            self.assertEqual(st, 202, b)

    @staticmethod
    def isp(st, name):
        i = st["isps"].get(name, {})
        return i.get("new", {}).get("sent", 0), i.get("queued", 0)

    def test_a_workspace_domain_counts_as_google(self):
        """acme.co.jp's MX is Google's: 5 of its 10 go (google's new_share),
        5 wait; NXDOMAIN mail flows as other; the domain is asked once."""
        fake, d = self.start("servers = 127.0.0.1:PORT",
                             [("acme.co.jp", "aspmx.l.google.com", 10),
                              ("acme.co.jp", "alt1.aspmx.l.google.com", 20),
                              ("m365.co.jp", "m365-co-jp.mail.protection.outlook.com", 0)])
        self.send_each(d, ["u%d@acme.co.jp" % i for i in range(10)])
        self.send_each(d, ["u%d@nx.co.jp" % i for i in range(4)])
        self.send_each(d, ["u%d@m365.co.jp" % i for i in range(3)])
        self.send_each(d, ["u%d@gmail.com" % i for i in range(2)])
        st = wait_for(lambda: (lambda s: s if self.isp(s, "google") == (5, 7)
                               and self.isp(s, "other") == (4, 0)
                               and self.isp(s, "microsoft") == (2, 1)
                               and s["queue"]["inflight"] == 0 else None)(d.status()),
                      "google 5 sent 7 queued, other 4 sent, microsoft 2 sent 1 queued")
        self.assertEqual(st["used"], 11)
        self.assertEqual({k: st["dns"][k] for k in ("queries", "found", "negative", "failed")},
                         {"queries": 3, "found": 2, "negative": 1, "failed": 0})
        # Units stored before their domain's answer moved to its group.
        self.assertLessEqual(st["dns"]["moved"], 13)
        sent = fake.sent_recipients()
        self.assertEqual(len(sent), 11)
        self.assertEqual(len([a for a in sent if a.endswith("@nx.co.jp")]), 4)
        # One query per domain: the answers are cached (TTL 300 s).
        self.assertEqual(self.dns.queries("acme.co.jp"), 1)
        self.assertEqual(self.dns.queries("nx.co.jp"), 1)
        self.assertEqual(self.dns.queries("gmail.com"), 0)  # grouped by name
        # More mail to the domain goes straight in as google's.
        self.send_each(d, ["late@acme.co.jp"])
        wait_for(lambda: self.isp(d.status(), "google") == (5, 8), "google 8 queued")
        self.assertEqual(self.dns.queries("acme.co.jp"), 1)
        self.assertIn("mx: acme.co.jp -> aspmx.l.google.com (google), ttl 300 s", d.logtext())
        self.assertIn("mx: nx.co.jp: Domain name not found, other", d.logtext())

    def test_b_dead_dns_server_mail_flows_as_other(self):
        """Nothing listens on the configured server: every message still goes,
        as other, and quickly."""
        dead = warmuptest.free_port()
        fake, d = self.start("servers = 127.0.0.1:%d\ntimeout = 1s" % dead)
        t0 = time.monotonic()
        self.send_each(d, ["u%d@acme.co.jp" % i for i in range(10)])
        wait_for(lambda: self.isp(d.status(), "other") == (10, 0), "10 sent as other")
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(self.isp(d.status(), "google"), (0, 0))
        self.assertIn("grouped by name, asked again in 60 s", d.logtext())
        self.assertEqual(d.status()["dns"]["failed"], 1)
        self.assertEqual(d.status()["dns"]["moved"], 0)

    def test_c_mx_off_and_an_mx_list_in_the_config(self):
        """[isp NAME] mx names a group's exchangers; mx = off asks nobody."""
        records = [("corp.jp", "mx1.mailhost.example.net", 10)]
        fake, d = self.start("servers = 127.0.0.1:PORT", records,
                             extra="[isp corp]\nmx = mx1.mailhost.example.net\nnew_share = 1\n")
        self.send_each(d, ["a@corp.jp", "b@corp.jp", "c@corp.jp"])
        wait_for(lambda: self.isp(d.status(), "corp") == (1, 2), "corp: 1 sent, 2 queued")
        d.stop()
        self.procs.remove(d)
        os.unlink(os.path.join(self.dir, "store.db"))
        fake2, d2 = None, None
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        conf = self.config(self.procs[0].port, "mx = off\nservers = 127.0.0.1:%d" % self.dns.port,
                           extra="[isp corp]\nmx = mx1.mailhost.example.net\nnew_share = 1\n")
        before = self.dns.queries("corp.jp")
        d2 = warmuptest.Warmupd(WARMUPD, self.dir, conf, env, TOKEN)
        self.procs.append(d2)
        self.send_each(d2, ["d@corp.jp", "e@corp.jp"])
        wait_for(lambda: self.isp(d2.status(), "other") == (2, 0), "2 sent as other")
        self.assertEqual(self.dns.queries("corp.jp"), before)

    def test_e_units_wait_for_a_slow_first_answer_up_to_wait(self):
        """An answer 0.5 s late: the units wait for it and go as google's.
        An answer 4 s late, with wait = 1s: they go as other after 1 s."""
        for delay, wait, want in [(0.5, "2s", "google"), (4, "1s", "other")]:
            with self.subTest(delay=delay):
                slow = SlowDns(delay)
                try:
                    fake, d = self.start("servers = 127.0.0.1:%d\nwait = %s\ntimeout = 3s"
                                         % (slow.port, wait))
                    t0 = time.monotonic()
                    self.send_each(d, ["w%d@acme.co.jp" % i for i in range(3)])
                    wait_for(lambda: self.isp(d.status(), want)[0] == 3,
                             "3 sent as %s" % want)
                    took = time.monotonic() - t0
                    if want == "other":
                        self.assertGreaterEqual(took, 0.9)
                        self.assertLess(took, 3.5)
                    else:
                        self.assertGreaterEqual(took, 0.45)
                finally:
                    slow.stop()
                    for p in reversed(self.procs):
                        p.stop()
                    self.procs = []
                    for f in ("store.db", "store.db-wal", "store.db-shm", "sent.jsonl"):
                        try:
                            os.unlink(os.path.join(self.dir, f))
                        except FileNotFoundError:
                            pass

    def test_d_smtp_intake_groups_by_mx_too(self):
        """Mail taken over SMTP is grouped the same way."""
        port_file = os.path.join(self.dir, "smtp.port")
        fake, d = self.start("servers = 127.0.0.1:PORT",
                             [("acme.co.jp", "aspmx.l.google.com", 10)],
                             args=("--smtp-port-file", port_file),
                             extra="[smtp]\naddress = 127.0.0.1:0\n")
        port = warmuptest.read_port(port_file, d.proc)
        rcpts = ["s%d@acme.co.jp" % i for i in range(7)] + ["n@nx.co.jp"]
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("app@sender.example", rcpts,
                       "From: app@sender.example\r\nTo: list@acme.co.jp\r\n"
                       "Subject: hi\r\n\r\nHello\r\n")
        wait_for(lambda: (lambda s: self.isp(s, "google") == (5, 2)
                          and self.isp(s, "other") == (1, 0))(d.status()),
                 "google 5 sent 2 queued, other 1 sent")
        self.assertEqual(self.dns.queries("acme.co.jp"), 1)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_mx.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    if not os.access(DNSMASQ, os.X_OK):
        sys.stderr.write("test_mx.py: no dnsmasq (tools/setup installs dnsmasq-base); skipped\n")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

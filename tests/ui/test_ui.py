#!/usr/bin/env python3
"""The status page (GET /) in headless Chromium against a running warmupd.

usage: test_ui.py WARMUPD FAKE_SENDGRID [unittest arguments]

Mail goes through the fake SendGrid until today's cap is used, then
Chromium loads the page, runs its script (which polls /v1/status) and
dumps the DOM; the figures in it must be those /v1/status gives.  Who may
look is checked from two loopback addresses: 127.0.0.1 is "open" by the
config, 127.0.0.2 is not, so it needs basic auth.

With WARMUP_UI_SCREENSHOT=FILE the first test also writes a screenshot of
the page there (tools/screenshot makes doc/status.png with it).
"""
import base64
import datetime
import html
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import warmuptest  # noqa: E402
from warmuptest import TZ, today, wait_for  # noqa: E402

WARMUPD = None
FAKE = None
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "tok-Ui-3b8e1f07c2a94d6e5f1a"
API_KEY = "SG.Ui-6d2c9a1e7f30b8452c1d.x7Pq"
VIEWER_PASSWORD = "viewer-Pw-9f1e2d3c"
HOSTILE = "x<b>\"'&</b><script>document.title=1</script>"

DOMAINS = ["gmail.com"] * 5 + ["yahoo.co.jp"] * 3 + ["outlook.jp"] * 2 + ["docomo.ne.jp"] * 2 + \
          ["example.org"]


def chromium(url, *extra, budget=5000):
    """Chromium's DOM of url after its scripts ran (virtual time)."""
    with tempfile.TemporaryDirectory(prefix="warmup-chromium-") as profile:
        r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--user-data-dir=" + profile,
                            "--virtual-time-budget=%d" % budget, *extra, url],
                           capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("chromium exited %d: %s" % (r.returncode, r.stderr[-2000:]))
    return r.stdout


def by_id(dom, ident):
    """The text of the element with id `ident` (no nested elements)."""
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(ident), dom)
    if not m:
        raise AssertionError("no element #%s in the DOM" % ident)
    return html.unescape(m.group(1))


def table(dom, ident):
    """The rows of tbody#ident as lists of cell texts."""
    m = re.search(r'<tbody id="%s">(.*?)</tbody>' % re.escape(ident), dom, re.S)
    if not m:
        raise AssertionError("no tbody #%s in the DOM" % ident)
    return [[html.unescape(re.sub(r"<[^>]*>", "", c))
             for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)]


def num(v):
    """A figure the way the page writes it."""
    return "unlimited" if v is None else "{:,}".format(int(v))


def request(port, path, auth=None, source="127.0.0.1", method="GET", body=None):
    """One request from a chosen loopback source address: (status, headers, body)."""
    h = {"Authorization": auth} if auth else {}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def can_bind_127_0_0_2():
    try:
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.close()
        return True
    except OSError:
        return False


class UiTest(warmuptest.ProcTestCase):
    prefix = "warmupd-ui-"

    def start(self, status="", route_old="", caps=(20, 30, 40, 80, 160)):
        fake = warmuptest.Fake(FAKE, self.dir, API_KEY)
        self.procs.append(fake)
        warmuptest.write_file(self.dir, "schedule.csv",
                              "# test\nday,cap\n" + "".join("%d,%d\n" % (i + 1, c)
                                                            for i, c in enumerate(caps)))
        start = today() - datetime.timedelta(days=2)  # today is day 3
        conf = warmuptest.write_file(self.dir, "warmupd.conf", f"""[warmup]
schedule = schedule.csv
start = {start.isoformat()}
timezone = {TZ}
burst = day
overflow = defer

[listen]
address = 127.0.0.1:0
token_env = WARMUP_TEST_TOKEN

[store]
path = store.db

[route new]
type = sendgrid
url = http://127.0.0.1:{fake.port}
api_key_env = WARMUP_TEST_KEY
{route_old}
[dns]
mx = off

[status]
{status}
""")
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN, WARMUP_TEST_KEY=API_KEY)
        d = warmuptest.Warmupd(WARMUPD, self.dir, conf, env, TOKEN)
        self.procs.append(d)
        return d

    def send_some(self, d, n=60):
        for k in range(0, n, 20):
            st, _, b = d.send(warmuptest.mail(["u%d@%s" % (k + i, DOMAINS[(k + i) % len(DOMAINS)])
                                               for i in range(20)]))
            self.assertEqual(st, 202, b)

    def test_page_shows_what_status_says(self):
        d = self.start()
        self.send_some(d)
        wait_for(lambda: d.status()["routes"]["new"]["accepted"] == 40 and
                 d.status()["routes"]["new"]["inflight"] == 0, "today's cap of 40 sent")
        url = "http://127.0.0.1:%d/" % d.port
        dom = chromium(url, "--dump-dom")
        s = d.status()

        # The script ran: it stamps the time of the status it rendered.
        self.assertNotEqual(by_id(dom, "updated"), "not yet", dom[:2000])
        self.assertRegex(dom, r'<body[^>]*data-live="%s' % re.escape(s["date"]))
        self.assertEqual(by_id(dom, "cap"), num(s["cap"]))
        self.assertEqual(by_id(dom, "used"), "40")
        self.assertEqual(by_id(dom, "used"), num(s["used"]))
        self.assertEqual(by_id(dom, "remaining"), num(s["remaining"]))
        self.assertEqual(by_id(dom, "day"), "3")
        self.assertEqual(by_id(dom, "gate-state"), s["gate"]["state"])
        self.assertEqual(by_id(dom, "bounce-halt"), "%.2f%%" % (100 * s["gate"]["bounce_halt"]))
        self.assertEqual(by_id(dom, "q-queued"), num(s["queue"]["queued"]))
        self.assertEqual(s["queue"]["queued"], 20)

        isps = {r[0]: r for r in table(dom, "isps")}
        self.assertEqual(set(isps), set(s["isps"]))
        self.assertGreaterEqual(len(isps), 4)
        for name, o in s["isps"].items():
            self.assertEqual(isps[name][1], num(o["new"]["sent"]), name)
            self.assertEqual(isps[name][2], num(o["old"]["sent"]), name)
            self.assertEqual(isps[name][-1], num(o["queued"]), name)
        self.assertEqual(sum(int(r[1].replace(",", "")) for r in isps.values()), 40)
        routes = {r[0]: r for r in table(dom, "routes")}
        self.assertEqual(routes["new"][4], num(s["routes"]["new"]["sent"]))

        # Today's hours: /v1/status counts the 40 in the current hour, and
        # the chart has a bar of the new route.
        hour = datetime.datetime.now(datetime.timezone.utc).astimezone(
            __import__("zoneinfo").ZoneInfo(TZ)).hour
        self.assertEqual(sum(s["hours"]["new"]), 40)
        self.assertIn(s["hours"]["new"][hour], (40, 0))  # 0 only across an hour boundary
        hours = re.search(r'<div id="hours">(.*?)</div>', dom, re.S).group(1)
        self.assertIn('fill="#2e7d32"', hours)
        plan = re.search(r'<div id="plan">(.*?)</div>', dom, re.S).group(1)
        self.assertIn("<polyline", plan)  # the cap line
        self.assertIn("The plan and what was sent", plan)

        # The page's other headers and assets.
        st, h, _ = request(d.port, "/")
        self.assertEqual(h.get("content-security-policy"), "default-src 'self'")
        st, h, js = request(d.port, "/ui/ui.js")
        self.assertEqual((st, h["content-type"].split(";")[0]), (200, "text/javascript"))
        self.assertIn(b"/v1/status", js)
        st, h, svg = request(d.port, "/ui/hours.svg")
        self.assertEqual((st, h["content-type"]), (200, "image/svg+xml"))
        self.assertEqual(request(d.port, "/ui/nothing")[0], 404)

        shot = os.environ.get("WARMUP_UI_SCREENSHOT")
        if shot:
            chromium(url, "--screenshot=" + os.path.abspath(shot), "--window-size=1200,1600",
                     "--hide-scrollbars")
            self.assertTrue(os.path.getsize(shot) > 10000)

    @unittest.skipUnless(can_bind_127_0_0_2(), "127.0.0.2 is not usable here")
    def test_who_may_look(self):
        h = subprocess.run(["openssl", "passwd", "-6", VIEWER_PASSWORD], capture_output=True,
                           text=True, check=True).stdout.strip()
        self.write("viewers", "# who may look\nalice:%s\n" % h)
        d = self.start(status="open_to = 127.0.0.1/32\nviewers_file = viewers")
        port = d.port
        off = "127.0.0.2"

        st, hd, _ = request(port, "/", source=off)
        self.assertEqual(st, 401)
        self.assertIn("Basic", hd.get("www-authenticate", ""))
        self.assertEqual(request(port, "/", basic("alice", "wrong"), source=off)[0], 401)
        self.assertEqual(request(port, "/", basic("bob", VIEWER_PASSWORD), source=off)[0], 401)
        self.assertEqual(request(port, "/", "Bearer nope", source=off)[0], 401)
        st, _, page = request(port, "/", basic("alice", VIEWER_PASSWORD), source=off)
        self.assertEqual(st, 200)
        self.assertIn(b'id="cap"', page)
        self.assertEqual(request(port, "/", basic("anyone", TOKEN), source=off)[0], 200)
        self.assertEqual(request(port, "/", "Bearer " + TOKEN, source=off)[0], 200)
        # The page's data: the same rule; a viewer cannot send mail.
        self.assertEqual(request(port, "/v1/status", source=off)[0], 401)
        st, _, b = request(port, "/v1/status", basic("alice", VIEWER_PASSWORD), source=off)
        self.assertEqual(st, 200)
        self.assertIn("cap", json.loads(b))
        self.assertEqual(request(port, "/v3/mail/send", basic("alice", VIEWER_PASSWORD),
                                 source=off, method="POST",
                                 body=warmuptest.mail(["a@example.org"]))[0], 401)
        self.assertEqual(request(port, "/metrics", basic("alice", VIEWER_PASSWORD),
                                 source=off)[0], 401)
        # From the open address, no credentials; wrong ones still refused.
        self.assertEqual(request(port, "/")[0], 200)
        self.assertEqual(request(port, "/v1/status")[0], 200)
        self.assertEqual(request(port, "/", basic("alice", "wrong"))[0], 401)
        # The password never reaches the log.
        self.assertNotIn(VIEWER_PASSWORD, d.logtext())

    def test_clear_viewer_password_is_refused_at_start(self):
        self.write("viewers", "alice:%s\n" % VIEWER_PASSWORD)
        with self.assertRaisesRegex(AssertionError, "exited with 1 before listening"):
            self.start(status="viewers_file = viewers")
        with open(os.path.join(self.dir, "warmupd.log")) as f:
            log = f.read()
        self.assertIn("[status] viewers_file: ", log)
        self.assertIn("viewers:1: the password of alice is not a crypt(3) hash", log)
        self.assertNotIn(VIEWER_PASSWORD, log)

    def test_browser_without_credentials_is_refused(self):
        d = self.start(status="open_to = none")
        # Chromium meets the basic auth challenge and shows no page.
        dom = chromium("http://127.0.0.1:%d/" % d.port, "--dump-dom", budget=2000)
        self.assertNotIn('id="cap"', dom)
        st, h, b = request(d.port, "/")
        self.assertEqual(st, 401)
        self.assertEqual(h.get("www-authenticate"), 'Basic realm="warmupd status"')
        self.assertIn(b"viewers_file", b)
        dom = chromium("http://x:%s@127.0.0.1:%d/" % (TOKEN, d.port), "--dump-dom")
        self.assertIn('id="cap"', dom)

    def test_hostile_strings_are_escaped(self):
        d = self.start(route_old="[route old]\ntype = smtp\nurl = smtp://127.0.0.1:1/%s\n"
                                 "tls = none\n" % HOSTILE)
        self.assertTrue(d.status()["routes"]["old"]["url"].endswith(HOSTILE))
        st, _, page = request(d.port, "/")
        self.assertEqual(st, 200)
        self.assertNotIn(HOSTILE.encode(), page)
        self.assertIn(html.escape(HOSTILE, quote=True).replace("&#x27;", "&#39;").encode(), page)
        dom = chromium("http://127.0.0.1:%d/" % d.port, "--dump-dom")
        self.assertIn("<title>warmupd status</title>", dom)  # the script did not run
        self.assertNotIn("<script>document.title", dom)
        self.assertNotIn("<b>", dom)
        routes = {r[0]: r for r in table(dom, "routes")}
        self.assertEqual(routes["old"][2], "smtp://127.0.0.1:1/" + HOSTILE)
        self.assertNotEqual(by_id(dom, "updated"), "not yet")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write("usage: test_ui.py WARMUPD FAKE_SENDGRID [unittest args]\n")
        sys.exit(2)
    if not CHROMIUM:
        print("chromium is not installed (tools/setup installs it)")
        sys.exit(77)
    WARMUPD = os.path.abspath(sys.argv[1])
    FAKE = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)

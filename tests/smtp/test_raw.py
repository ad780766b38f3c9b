#!/usr/bin/env python3
"""test_raw.py -- mail taken over SMTP leaves an SMTP route byte for byte.

usage: test_raw.py WARMUPD [unittest arguments]

There is no SMTP intake yet, so the raw contents go in through the store:
warmupd is started once to create it and stopped, the rows are written with
sqlite3 (contents.raw and contents.mail_from beside a minimal v3 body, one
unit per envelope recipient, as the intake will write them), and warmupd is
started again with one SMTP route ([route new], type smtp) pointed at the
capture server of test_smtp.py, which records each DATA as it arrives.

The message carries a DKIM-Signature, an X-SMTPAPI header folded over
three lines, body lines that start with "." (one is "." alone), 8-bit UTF-8
bytes, and "X-SMTPAPI:" text in its body.  The bytes received, dot-unstuffed,
must equal the stored ones except for the X-SMTPAPI field: merged with the
route's settings when x_smtpapi is on, gone when it is off.
"""
import json
import os
import sqlite3
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import warmuptest  # noqa: E402
from warmuptest import TZ, today, unstuff, wait_for  # noqa: E402
from test_smtp import Capture  # noqa: E402

WARMUPD = None
TOKEN = "tok-Raw-3c9e1a7b5d20f4e8a6c1"

SMTPAPI = (b'X-SMTPAPI: {"category": ["newsletter", "\xe6\x97\xa5\xe6\x9c\xac"],\r\n'
           b' "unique_args": {"campaign": "c7", "warmup_day": "99"},\r\n'
           b'\t"filters": {"opentrack": {"settings": {"enable": 1}},'
           b' "ganalytics": {"settings": {"enable": 1, "utm_source": "app"}}}}\r\n')

HEAD = (b"Return-Path: <bounce@example.com>\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example.com;\r\n"
        b" s=sel2026; t=1764547200; h=from:to:subject:date:message-id;\r\n"
        b" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
        b" b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXRzIGJ5dGVzIG11c3Qgc3Vy\r\n"
        b"  dml2ZQ==\r\n"
        b"From: =?UTF-8?B?5bGx55SwIOWkqumDjg==?= <news@example.com>\r\n"
        b"To: <rcpt1@example.net>\r\n")
TAIL = (b"Subject: raw   spaces\tand tab\r\n"
        b"Date: Tue, 01 Dec 2026 09:00:00 +0900\r\n"
        b"Message-ID: <raw1@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=UTF-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf \xe4\xb8\x96\xe7\x95\x8c\r\n"
        b".leading dot\r\n"
        b".\r\n"
        b"..two dots\r\n"
        b"X-SMTPAPI: {\"to\": [\"body@example.org\"]}\r\n"
        b"trailing blanks   \r\n"
        b"\r\n"
        b"last line\r\n")
MESSAGE = HEAD + SMTPAPI + TAIL
PLAIN = HEAD + TAIL  # the same without X-SMTPAPI

V3 = json.dumps({"from": {"email": "news@example.com"}, "subject": "raw",
                 "content": [{"type": "text/plain", "value": "raw"}]})


def header_block(data):
    """(header block, rest) of a message: split at its first empty line."""
    i = data.find(b"\r\n\r\n")
    return data[:i + 2], data[i + 2:]


def smtpapi_fields(head):
    """(head without its X-SMTPAPI fields, their unfolded values)."""
    out, values, cur = [], [], None
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and cur is not None:
            values[cur] += line
            continue
        cur = None
        if line.split(b":", 1)[0].strip().lower() == b"x-smtpapi":
            values.append(line.split(b":", 1)[1])
            cur = len(values) - 1
            continue
        out.append(line + b"\r\n")
    return b"".join(out), values


class RawTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="warmupd-raw-")
        self.dir = self._tmp.name
        self.procs = []
        self.relay = Capture()
        self.addCleanup(self.relay.stop)

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        if warmuptest.has_failed(self):
            warmuptest.dump_logs(self.procs)
        self._tmp.cleanup()

    def daemon(self, route_extra):
        warmuptest.write_file(self.dir, "schedule.csv", "# test\nday,cap\n1,100\n2,100\n")
        conf = warmuptest.write_file(self.dir, "warmupd.conf", f"""[warmup]
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
type = smtp
url = smtp://127.0.0.1:{self.relay.port}
tls = none
timeout = 5s
max_connections = 2
{route_extra}

[backoff]
retry_min = 1s
retry_max = 2s
suspend = 1s
""")
        env = dict(os.environ, WARMUP_TEST_TOKEN=TOKEN)
        d = warmuptest.Warmupd(WARMUPD, self.dir, conf, env, TOKEN)
        self.procs.append(d)
        return d

    def run_raw(self, route_extra, contents):
        """Creates the store, writes contents [(raw, mail_from, rcpt)], runs
        warmupd until each has an outcome; returns the units' rows."""
        d = self.daemon(route_extra)
        self.assertEqual(d.terminate(), 0)
        db = sqlite3.connect(os.path.join(self.dir, "store.db"))
        with db:
            for i, (raw, mail_from, rcpt) in enumerate(contents):
                cur = db.execute("INSERT INTO contents(msgid, created_at, body, raw, mail_from)"
                                 " VALUES (?, 0, ?, ?, ?)",
                                 ("rawmsg%d" % i, V3.encode(), raw, mail_from))
                db.execute("INSERT INTO units(content_id, state, isp, attempts, next_at,"
                           " created_at, domain, personalization)"
                           " VALUES (?, 0, 0, 0, 0, 0, ?, ?)",
                           (cur.lastrowid, rcpt.split("@")[1],
                            json.dumps({"to": [{"email": rcpt}]})))
        db.close()
        d.start()
        wait_for(lambda: d.status()["queue"]["queued"] == 0
                 and d.status()["queue"]["inflight"] == 0, "every unit to have an outcome")
        self.assertEqual(d.terminate(), 0)
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, "store.db"), uri=True)
        rows = db.execute("SELECT state, provider_id, error FROM units ORDER BY id").fetchall()
        db.close()
        return rows

    def received(self):
        """The relay's messages by recipient: two connections send at once,
        in no fixed order."""
        return {m["rcpt"][0]: m for m in self.relay.messages}

    def check_unchanged_but_smtpapi(self, got, want):
        """got (as received) equals want (as stored) but for X-SMTPAPI;
        returns the X-SMTPAPI values received."""
        ghead, gbody = header_block(got)
        whead, wbody = header_block(want)
        self.assertEqual(gbody, wbody)
        ghead, values = smtpapi_fields(ghead)
        whead, _ = smtpapi_fields(whead)
        self.assertEqual(ghead, whead)
        return values

    def test_merged_when_x_smtpapi_on(self):
        rows = self.run_raw("x_smtpapi = on\nip_pool = warm\nclick_tracking = on",
                            [(MESSAGE, "bounce@example.com", "rcpt1@example.net"),
                             (PLAIN, "", "rcpt2@example.net"),
                             (b"X-SMTPAPI: {\"category\": oops}\r\n\r\nx\r\n",
                              "bounce@example.com", "rcpt3@example.net")])
        self.assertEqual([r[0] for r in rows], [2, 2, 3], rows)
        self.assertEqual(sorted(r[1] for r in rows[:2]), ["CAP0001", "CAP0002"])
        self.assertIn("X-SMTPAPI is not valid JSON", rows[2][2])
        got = self.received()
        self.assertEqual(sorted(got), ["<rcpt1@example.net>", "<rcpt2@example.net>"])
        m1, m2 = got["<rcpt1@example.net>"], got["<rcpt2@example.net>"]
        # The envelope: the stored sender (<> for the null one), the unit's
        # recipient, SIZE from the stored length, no BODY= parameter.
        self.assertEqual(m1["rcpt"], ["<rcpt1@example.net>"])
        self.assertEqual(m2["rcpt"], ["<rcpt2@example.net>"])
        # SIZE is the length of what is sent, before dot-stuffing.
        self.assertEqual(m1["from"], "<bounce@example.com> SIZE=%d" % len(unstuff(m1["data"])))
        self.assertEqual(m2["from"], "<> SIZE=%d" % len(unstuff(m2["data"])))

        # Dot-stuffed on the wire, the stored bytes once unstuffed.
        self.assertIn(b"\r\n..leading dot\r\n..\r\n...two dots\r\n", m1["data"])
        got = unstuff(m1["data"])
        values = self.check_unchanged_but_smtpapi(got, MESSAGE)
        self.assertEqual(len(values), 1)
        # One field where the app's stood (after To:), folded under 998.
        self.assertIn(b"To: <rcpt1@example.net>\r\nX-SMTPAPI: ", got)
        for line in header_block(got)[0].split(b"\r\n"):
            self.assertLess(len(line), 998)
        x = json.loads(values[0])
        self.assertEqual(x["category"], ["newsletter", "日本"])
        self.assertEqual(x["unique_args"],
                         {"campaign": "c7", "warmup_day": "1", "warmup_route": "new"})
        self.assertEqual(x["filters"]["clicktrack"], {"settings": {"enable": 1}})
        # The app's opentrack on stays: the route's off is only a default.
        self.assertEqual(x["filters"]["opentrack"], {"settings": {"enable": 1}})
        self.assertEqual(x["filters"]["subscriptiontrack"], {"settings": {"enable": 0}})
        self.assertEqual(x["filters"]["ganalytics"],
                         {"settings": {"enable": 1, "utm_source": "app"}})
        self.assertEqual(x["ip_pool"], "warm")

        # Without a field of its own the message gets one, first.
        got = unstuff(m2["data"])
        self.assertTrue(got.startswith(b"X-SMTPAPI: {"), got[:40])
        values = self.check_unchanged_but_smtpapi(got, PLAIN)
        self.assertEqual(json.loads(values[0])["unique_args"],
                         {"warmup_day": "1", "warmup_route": "new"})

    def test_removed_when_x_smtpapi_off(self):
        rows = self.run_raw("", [(MESSAGE, "bounce@example.com", "rcpt1@example.net"),
                                 (b"X-SMTPAPI: not json\r\nSubject: s\r\n\r\nno final CRLF",
                                  "bounce@example.com", "rcpt2@example.net")])
        self.assertEqual([r[0] for r in rows], [2, 2], rows)
        got = self.received()
        m1, m2 = got["<rcpt1@example.net>"], got["<rcpt2@example.net>"]
        # Every byte the same but the field, which is gone (the body's
        # "X-SMTPAPI:" line is text and stays).
        self.assertEqual(unstuff(m1["data"]), PLAIN)
        # curl ends data that lacks a final CRLF with CRLF . CRLF.
        self.assertEqual(unstuff(m2["data"]), b"Subject: s\r\n\r\nno final CRLF\r\n")


if __name__ == "__main__":
    WARMUPD = sys.argv.pop(1)
    unittest.main()

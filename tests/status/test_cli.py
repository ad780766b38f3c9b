#!/usr/bin/env python3
"""test_cli.py -- `warmup send` and `warmup status` against a small local
HTTP server that answers like warmupd: /v3/mail/send with 202 or a SendGrid
error list, /v1/status with a canned status object.

usage: test_cli.py PATH/TO/warmup

The server runs in a thread of this process on 127.0.0.1 with a port the
system picks; every command runs with a timeout, so nothing here sleeps.
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from warmuptest import free_port  # noqa: E402

TOKEN = "tok-SECRET-1234"

STATUS = {
    "date": "2026-12-03", "time": "2026-12-03T10:00:00+09:00", "day": 3, "held_days": 0,
    "cap": 73, "hourly_cap": None, "used": 10, "remaining": 63,
    "window": {"open": "2026-12-03T00:00:00+09:00", "close": "2026-12-04T00:00:00+09:00"},
    "routes": {
        "new": {"paused": True, "type": "sendgrid", "url": "https://api.sendgrid.com",
                "sent": 10, "accepted": 10, "tempfail": 2, "permfail": 1, "inflight": 2},
        "old": {"paused": False, "type": "smtp", "url": "smtp://127.0.0.1:2525",
                "sent": 4, "accepted": 4, "tempfail": 0, "permfail": 0, "inflight": 1},
    },
    "isps": {
        "google": {"new": {"sent": 7, "accepted": 7, "share_limit": 29},
                   "old": {"sent": 0, "accepted": 0, "share_limit": None}, "queued": 1},
        "microsoft": {"new": {"sent": 0, "accepted": 0, "share_limit": None},
                      "old": {"sent": 4, "accepted": 4, "share_limit": None}, "queued": 0},
    },
    "queue": {"queued": 2, "inflight": 1, "sent": 1, "failed": 1},
    "gate": {"state": "warn", "bounce_rate": 0.0412, "complaint_rate": 0.0,
             "reason": "bounce rate 4.1% over 3.0% (n=412)"},
    "intake": {"accepted": 12, "rejected": 3}, "webhook_events": 6, "uptime_s": 3723,
}


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers like warmupd's intake, and records what it was sent."""

    seen = []
    counter = 0

    def log_message(self, *args):
        pass

    def reply(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        if self.headers.get("Authorization") == "Bearer " + TOKEN:
            return True
        self.reply(401, {"errors": [{"message": "The provided authorization grant is "
                                                "invalid, expired, or revoked",
                                     "field": None, "help": None}]})
        return False

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        Handler.seen.append((self.path, self.headers.get("Content-Type"), body))
        if self.path != "/v3/mail/send":
            return self.reply(404, {"errors": [{"message": "Not found."}]})
        if not self.authorized():
            return None
        try:
            msg = json.loads(body)
        except ValueError:
            return self.reply(400, {"errors": [{"message": "Bad Request", "field": None,
                                                "help": None}]})
        if "subject" not in msg:
            return self.reply(400, {"errors": [
                {"message": "The subject is required.", "field": "subject",
                 "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/"
                         "errors.html#message.subject"},
                {"message": "The from object must be provided.", "field": "from",
                 "help": None}]})
        Handler.counter += 1
        return self.reply(202, None, [("X-Message-Id", "msg-%d" % Handler.counter)])

    def do_GET(self):
        if self.path != "/v1/status":
            return self.reply(404, {"errors": [{"message": "Not found."}]})
        if not self.authorized():
            return None
        return self.reply(200, STATUS)


FAILURES = []


def check(cond, what, result=None):
    """Records a failed expectation with the command's output."""
    if cond:
        print("ok   " + what)
        return
    print("FAIL " + what)
    if result is not None:
        print("  exit %d\n  stdout: %r\n  stderr: %r"
              % (result.returncode, result.stdout, result.stderr))
    FAILURES.append(what)


def run(exe, args, env_extra=None, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "WARMUP_TOKEN"}
    env.update(env_extra or {})
    r = subprocess.run([exe] + args, input=stdin, capture_output=True, text=True,
                       env=env, timeout=60)
    check(TOKEN not in r.stdout + r.stderr, "token not printed: " + " ".join(args), r)
    return r


def main():
    exe = sys.argv[1]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    tok = {"WARMUP_TOKEN": TOKEN}

    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "good.json")
        bad = os.path.join(d, "bad.json")
        tokfile = os.path.join(d, "token")
        conf = os.path.join(d, "warmupd.conf")
        with open(good, "w") as f:
            json.dump({"personalizations": [{"to": [{"email": "a@example.com"}]}],
                       "from": {"email": "b@example.com"}, "subject": "hi",
                       "content": [{"type": "text/plain", "value": "x"}]}, f)
        with open(bad, "w") as f:
            json.dump({"personalizations": [{"to": [{"email": "a@example.com"}]}]}, f)
        with open(tokfile, "w") as f:
            f.write(TOKEN + "\n")
        with open(conf, "w") as f:
            f.write("[listen]\naddress = 127.0.0.1:%d\n" % srv.server_address[1])

        r = run(exe, ["send", "--help"])
        check(r.returncode == 0 and "usage: warmup send" in r.stdout, "send --help", r)
        r = run(exe, ["status", "--help"])
        check(r.returncode == 0 and "usage: warmup status" in r.stdout, "status --help", r)

        r = run(exe, ["send", "--url", url, good], tok)
        check(r.returncode == 0 and r.stdout == good + ": 202 accepted, X-Message-Id msg-1\n",
              "send: one accepted file", r)
        path, ctype, body = Handler.seen[-1]
        with open(good, "rb") as f:
            check(path == "/v3/mail/send" and ctype == "application/json"
                  and body == f.read(), "send: the file went as it is")

        r = run(exe, ["send", "--url", url + "/", good, bad], tok)
        check(r.returncode == 1, "send: a refused file fails the command", r)
        check(good + ": 202 accepted, X-Message-Id msg-2" in r.stdout,
              "send: the good file still went", r)
        check(bad + ": 400 Bad Request" in r.stderr
              and "The subject is required. [field: subject]" in r.stderr
              and "The from object must be provided. [field: from]" in r.stderr
              and "see http://sendgrid.com/docs/" in r.stderr,
              "send: the error list is readable", r)

        with open(good) as f:
            r = run(exe, ["send", "--url", url, "-"], tok, stdin=f.read())
        check(r.returncode == 0 and "(stdin): 202 accepted" in r.stdout, "send: stdin", r)

        r = run(exe, ["send", "--url", url, "--token-file", tokfile, good])
        check(r.returncode == 0 and "202 accepted" in r.stdout, "send: --token-file", r)
        r = run(exe, ["send", "--url", url, "--token-env", "MY_TOK", good], {"MY_TOK": TOKEN})
        check(r.returncode == 0 and "202 accepted" in r.stdout, "send: --token-env", r)
        r = run(exe, ["send", "--url", url, "--token-env", "NO_SUCH_VAR_X", good])
        check(r.returncode == 2 and "NO_SUCH_VAR_X is not set" in r.stderr,
              "send: --token-env of an unset variable", r)
        r = run(exe, ["send", "--url", url, good], {"WARMUP_TOKEN": "wrong"})
        check(r.returncode == 1 and "401 Unauthorized" in r.stderr
              and "wrong" not in r.stdout + r.stderr, "send: wrong token", r)
        r = run(exe, ["send", "--url", url, good])
        check(r.returncode == 1 and "no token sent" in r.stderr, "send: no token", r)
        r = run(exe, ["send", "--config", conf, good], tok)
        check(r.returncode == 0 and "202 accepted" in r.stdout, "send: --config [listen]", r)
        r = run(exe, ["send", "--url", url, os.path.join(d, "missing.json"), good], tok)
        check(r.returncode == 1 and "missing.json: cannot read" in r.stderr
              and "202 accepted" in r.stdout, "send: unreadable file", r)
        r = run(exe, ["send", "--url", url], tok)
        check(r.returncode == 2 and "no file" in r.stderr, "send: no file", r)

        dead = "http://127.0.0.1:%d" % free_port()
        r = run(exe, ["send", "--url", dead, good], tok)
        check(r.returncode == 1 and ("cannot reach warmupd at " + dead + ": ") in r.stderr,
              "send: connection refused", r)

        r = run(exe, ["status", "--url", url], tok)
        out = r.stdout
        check(r.returncode == 0, "status: exit 0", r)
        check("2026-12-03 (day 3 of the schedule, 0 held)" in out
              and "cap        73, used 10, remaining 63" in out
              and "gate       warn (bounces 4.12%, complaints 0.00%): bounce rate 4.1%" in out
              and "12 accepted, 3 rejected" in out
              and "2 queued, 1 in flight, 1 sent, 1 failed" in out
              and "up 1h02m" in out, "status: summary", r)
        lines = out.splitlines()
        new = [x for x in lines if x.startswith("new ")]
        google = [x for x in lines if x.startswith("google ")]
        check(len(new) == 1 and new[0].split()[:8]
              == ["new", "paused", "sendgrid", "10", "10", "2", "1", "2"]
              and "https://api.sendgrid.com" in new[0], "status: route row", r)
        check(len(google) == 1 and google[0].split() == ["google", "7", "7", "29", "0", "0", "1"],
              "status: ISP row", r)

        r = run(exe, ["status", "--url", url, "--json"], tok)
        check(r.returncode == 0 and json.loads(r.stdout) == STATUS, "status --json", r)
        r = run(exe, ["status", "--config", conf, "--token-file", tokfile])
        check(r.returncode == 0 and "day 3" in r.stdout, "status: --config", r)
        r = run(exe, ["status", "--url", url])
        check(r.returncode == 1 and "401" in r.stderr and "invalid, expired" in r.stderr,
              "status: no token", r)
        r = run(exe, ["status", "--url", dead], tok)
        check(r.returncode == 1 and ("cannot reach warmupd at " + dead + ": ") in r.stderr,
              "status: connection refused", r)
        r = run(exe, ["status", "--url", url, "extra"], tok)
        check(r.returncode == 2, "status: stray argument", r)

    srv.shutdown()
    if FAILURES:
        print("%d failed" % len(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

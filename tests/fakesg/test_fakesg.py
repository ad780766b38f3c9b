#!/usr/bin/env python3
"""test_fakesg.py -- fake-sendgrid driven over real HTTP on loopback.

Usage: test_fakesg.py PATH-TO-fake-sendgrid

Each server is started on port 0 with --port-file and the test waits for
that file to appear (the server writes it atomically once it listens), so
no test guesses a port or sleeps to let the server start.  Standard
library only.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

EXE = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
KEY = "SG.fakesg-test-key.do-not-log"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
MAX_BODY = 30 * 1024 * 1024


class Server:
    """One fake-sendgrid process in its own temporary directory."""

    def __init__(self, *extra, key_args=None):
        self.dir = tempfile.TemporaryDirectory(prefix="fakesg-")
        self.port_file = os.path.join(self.dir.name, "port")
        self.record = os.path.join(self.dir.name, "record.jsonl")
        self.log_path = os.path.join(self.dir.name, "stderr.log")
        env = dict(os.environ, FAKESG_KEY=KEY)
        args = [EXE] + (key_args or ["--key-env", "FAKESG_KEY"])
        args += ["--listen", "127.0.0.1:0", "--port-file", self.port_file,
                 "--record", self.record] + list(extra)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        self.port = self._wait_port()

    def _wait_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited early: %s" % self.stderr())
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    return int(f.read())
            time.sleep(0.01)
        raise AssertionError("no port file within 10 s")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def records(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def close(self):
        self.stop()
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_call(url, data=None, headers=None, method=None, timeout=30):
    """Returns (status, headers, body bytes); status None when the
    connection closed without an answer."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return None, None, b""


def send(srv, body, key=KEY, ctype="application/json", raw=None):
    headers = {}
    if key is not None:
        headers["Authorization"] = "Bearer " + key
    if ctype is not None:
        headers["Content-Type"] = ctype
    data = raw if raw is not None else json.dumps(body).encode()
    return http_call(srv.url("/v3/mail/send"), data=data, headers=headers, method="POST")


def faults(srv, **kw):
    st, _, body = http_call(srv.url("/fake/faults"), data=json.dumps(kw).encode(),
                            headers={"Content-Type": "application/json"}, method="POST")
    assert st == 200, (st, body)
    return json.loads(body)


def stats(srv):
    st, _, body = http_call(srv.url("/fake/stats"))
    assert st == 200, st
    return json.loads(body)


def valid_body(n=1):
    return {
        "personalizations": [{"to": [{"email": "user%d@gmail.com" % i, "name": "U %d" % i}]}
                             for i in range(n)],
        "from": {"email": "news@example.com", "name": "News"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"},
                    {"type": "text/html", "value": "<p>Hi</p>"}],
    }


def check_error_shape(body):
    """SendGrid's error body: {"errors":[{"message","field","help"}]}."""
    doc = json.loads(body)
    assert list(doc.keys()) == ["errors"], doc
    assert isinstance(doc["errors"], list) and doc["errors"], doc
    for e in doc["errors"]:
        assert set(e.keys()) == {"message", "field", "help"}, e
        assert isinstance(e["message"], str) and e["message"], e
        assert e["field"] is None or isinstance(e["field"], str), e
        assert e["help"] is None, e
    return doc["errors"]


# ---------------------------------------------------------------- tests


def test_accepted_and_recorded(srv):
    body = valid_body(3)
    st, hdr, data = send(srv, body)
    assert st == 202, (st, data)
    assert data == b"", data
    mid = hdr.get("X-Message-Id")
    assert mid and ID_RE.match(mid), mid
    recs = srv.records()
    assert recs, "no record line"
    last = recs[-1]
    assert last["message_id"] == mid, last
    assert last["body"] == body, last
    assert isinstance(last["time"], (int, float)) and abs(last["time"] - time.time()) < 60
    # charset parameters on the content type are fine
    st, _, _ = send(srv, body, ctype="application/json; charset=utf-8")
    assert st == 202, st


def test_auth(srv):
    expected = {"errors": [{"message": "The provided authorization grant is invalid, "
                            "expired, or revoked", "field": None, "help": None}]}
    for key in ("wrong", KEY + "x", KEY[:-1], ""):
        st, _, data = send(srv, valid_body(), key=key)
        assert st == 401, (key, st)
        assert json.loads(data) == expected, data
    st, _, data = send(srv, valid_body(), key=None)
    assert st == 401 and json.loads(data) == expected, (st, data)
    st, _, _ = http_call(srv.url("/v3/mail/send"), data=json.dumps(valid_body()).encode(),
                         headers={"Authorization": "Basic " + KEY,
                                  "Content-Type": "application/json"}, method="POST")
    assert st == 401, st


def test_content_type(srv):
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        st, _, data = send(srv, valid_body(), ctype=ctype)
        assert st == 415, (ctype, st)
        check_error_shape(data)


def test_malformed_json(srv):
    for raw in (b"{", b"", b"[1,2", b'{"a":1} trailing', b"\x00{}", b"null"):
        st, _, data = send(srv, None, raw=raw)
        assert st == 400, (raw, st)
        check_error_shape(data)


def test_too_large(srv):
    # Bodies must be under 30 MB; the server reads and discards the rest
    # so the client still gets its answer.
    raw = b'{"x":"' + b"a" * MAX_BODY + b'"}'
    st, _, data = send(srv, None, raw=raw)
    assert st == 413, st
    check_error_shape(data)


def mutate(fn):
    b = valid_body()
    fn(b)
    return b


INVALID = [
    ("no personalizations", lambda b: b.pop("personalizations"), "personalizations"),
    ("personalizations not array", lambda b: b.update(personalizations={}), "personalizations"),
    ("empty personalizations", lambda b: b.update(personalizations=[]), "personalizations"),
    ("1001 personalizations",
     lambda b: b.update(personalizations=[{"to": [{"email": "u%d@x.org" % i}]}
                                          for i in range(1001)]), "personalizations"),
    ("1001 recipients",
     lambda b: b.update(personalizations=[
         {"to": [{"email": "a%d@x.org" % i} for i in range(600)]},
         {"to": [{"email": "b%d@x.org" % i} for i in range(401)]}]), "personalizations"),
    ("personalization without to",
     lambda b: b["personalizations"][0].pop("to"), "personalizations.0.to"),
    ("empty to", lambda b: b["personalizations"][0].update(to=[]), "personalizations.0.to"),
    ("bad address",
     lambda b: b["personalizations"][0]["to"][0].update(email="not-an-address"),
     "personalizations.0.to.0.email"),
    ("address with space",
     lambda b: b["personalizations"][0]["to"][0].update(email="a b@x.org"),
     "personalizations.0.to.0.email"),
    ("address without dot",
     lambda b: b["personalizations"][0]["to"][0].update(email="a@localhost"),
     "personalizations.0.to.0.email"),
    ("address too long",
     lambda b: b["personalizations"][0]["to"][0].update(email="a" * 310 + "@example.com"),
     "personalizations.0.to.0.email"),
    ("name with CRLF",
     lambda b: b["personalizations"][0]["to"][0].update(name="x\r\nBcc: y@z.org"),
     "personalizations.0.to.0.name"),
    ("duplicate recipient",
     lambda b: b["personalizations"][0].update(cc=[{"email": "USER0@gmail.com"}]),
     "personalizations.0.cc.0"),
    ("no from", lambda b: b.pop("from"), "from"),
    ("from without email", lambda b: b.update({"from": {"name": "x"}}), "from.email"),
    ("from bad email", lambda b: b.update({"from": {"email": "x@"}}), "from.email"),
    ("no subject", lambda b: b.pop("subject"), "subject"),
    ("subject not string", lambda b: b.update(subject=5), "subject"),
    ("empty subject", lambda b: b.update(subject=""), "subject"),
    ("subject CRLF", lambda b: b.update(subject="a\r\nBcc: x@y.org"), "subject"),
    ("personalization subject LF",
     lambda b: b["personalizations"][0].update(subject="a\nb"), "personalizations.0.subject"),
    ("no content", lambda b: b.pop("content"), "content"),
    ("empty content", lambda b: b.update(content=[]), "content"),
    ("html before plain", lambda b: b["content"].reverse(), "content"),
    ("plain twice",
     lambda b: b["content"].append({"type": "text/plain", "value": "x"}), "content"),
    ("other type before html",
     lambda b: b["content"].insert(1, {"type": "text/calendar", "value": "x"}), "content"),
    ("empty content value", lambda b: b["content"][0].update(value=""), "content.0.value"),
    ("content value not string", lambda b: b["content"][1].update(value=1), "content.1.value"),
    ("content type missing", lambda b: b["content"][0].pop("type"), "content.0.type"),
    ("11 categories", lambda b: b.update(categories=["c%d" % i for i in range(11)]),
     "categories"),
    ("category not string", lambda b: b.update(categories=[1]), "categories"),
    ("category too long", lambda b: b.update(categories=["c" * 256]), "categories"),
    ("duplicate category", lambda b: b.update(categories=["a", "a"]), "categories"),
    ("custom_args too big", lambda b: b.update(custom_args={"k": "v" * 10000}),
     "custom_args"),
    ("custom_args merged too big",
     lambda b: (b.update(custom_args={"a": "v" * 6000}),
                b["personalizations"][0].update(custom_args={"b": "w" * 6000})),
     "personalizations.0.custom_args"),
    ("custom_args value not string", lambda b: b.update(custom_args={"k": 1}),
     "custom_args"),
    ("reserved header", lambda b: b.update(headers={"Content-Type": "text/plain"}),
     "headers"),
    ("reserved header any case", lambda b: b.update(headers={"x-SG-id": "1"}), "headers"),
    ("reserved header in personalization",
     lambda b: b["personalizations"][0].update(headers={"bcc": "x@y.org"}),
     "personalizations.0.headers"),
    ("header value CRLF", lambda b: b.update(headers={"X-A": "1\r\nBcc: x@y.org"}),
     "headers"),
    ("header value not string", lambda b: b.update(headers={"X-A": 1}), "headers"),
    ("headers not object", lambda b: b.update(headers=["X-A"]), "headers"),
    ("send_at string", lambda b: b.update(send_at="1700000000"), "send_at"),
    ("send_at fraction", lambda b: b.update(send_at=1.5), "send_at"),
    ("personalization send_at string",
     lambda b: b["personalizations"][0].update(send_at="soon"), "personalizations.0.send_at"),
    ("attachment without filename",
     lambda b: b.update(attachments=[{"content": "aGVsbG8="}]), "attachments.0.filename"),
    ("attachment without content",
     lambda b: b.update(attachments=[{"filename": "a.txt"}]), "attachments.0.content"),
    ("attachment not base64",
     lambda b: b.update(attachments=[{"content": "not base64!", "filename": "a.txt"}]),
     "attachments.0.content"),
    ("attachments not array", lambda b: b.update(attachments={}), "attachments"),
    ("template_id not string", lambda b: b.update(template_id=7), "template_id"),
    ("reply_to bad", lambda b: b.update(reply_to={"email": "nope"}), "reply_to.email"),
    ("asm group_id string", lambda b: b.update(asm={"group_id": "1"}), "asm.group_id"),
    ("tracking enable not bool",
     lambda b: b.update(tracking_settings={"click_tracking": {"enable": "yes"}}),
     "tracking_settings.click_tracking.enable"),
    ("body not object", None, ""),
]


def test_invalid_bodies(srv):
    failures = []
    for name, fn, field in INVALID:
        body = mutate(fn) if fn else ["not", "an", "object"]
        st, _, data = send(srv, body)
        if st != 400:
            failures.append("%s: status %s" % (name, st))
            continue
        errors = check_error_shape(data)
        fields = [e["field"] or "" for e in errors]
        if field not in fields:
            failures.append("%s: want field %r, got %r" % (name, field, errors))
    assert not failures, "\n".join(failures)


def test_valid_variants(srv):
    variants = [
        ("template without content or subject",
         lambda b: (b.pop("content"), b.pop("subject"), b.update(template_id="d-123"))),
        ("subject in every personalization",
         lambda b: (b.pop("subject"), b["personalizations"][0].update(subject="S"))),
        ("html only", lambda b: b.update(content=[{"type": "text/html", "value": "<p>x</p>"}])),
        ("plain, html, other",
         lambda b: b["content"].append({"type": "text/calendar", "value": "BEGIN"})),
        ("1000 personalizations",
         lambda b: b.update(personalizations=[{"to": [{"email": "u%d@x.org" % i}]}
                                              for i in range(1000)])),
        ("same address in two personalizations",
         lambda b: b["personalizations"].append({"to": [{"email": "user0@gmail.com"}]})),
        ("custom headers and args",
         lambda b: b.update(headers={"X-Campaign": "spring"}, custom_args={"uid": "42"},
                            categories=["news"], send_at=1700000000,
                            attachments=[{"content": "aGVsbG8=", "filename": "a.txt",
                                          "type": "text/plain"}])),
        ("unknown field", lambda b: b.update(future_field={"anything": [1, 2]})),
    ]
    for name, fn in variants:
        st, _, data = send(srv, mutate(fn))
        assert st == 202, (name, st, data)


def test_faults(srv):
    f = faults(srv, rate_429=1)
    assert f["rate_429"] == 1, f
    st, hdr, data = send(srv, valid_body())
    assert st == 429, st
    assert hdr["X-RateLimit-Limit"].isdigit(), hdr
    assert hdr["X-RateLimit-Remaining"] == "0", hdr
    reset = int(hdr["X-RateLimit-Reset"])
    assert time.time() - 5 < reset < time.time() + 120, reset
    errors = check_error_shape(data)
    assert errors[0]["message"] == "too many requests", errors

    faults(srv, rate_429=0, rate_500="100%")
    st, _, data = send(srv, valid_body())
    assert st == 500, st
    check_error_shape(data)

    faults(srv, rate_500=0, drop_rate=1.0)
    st, _, _ = send(srv, valid_body())
    assert st is None, "expected the connection to close without an answer, got %s" % st

    faults(srv, drop_rate=0, slow_rate=1, slow_ms=300)
    t0 = time.monotonic()
    st, _, _ = send(srv, valid_body())
    assert st == 202, st
    assert time.monotonic() - t0 >= 0.3, "slow answer came early"

    f = faults(srv, slow_rate=0, slow_ms=0)
    assert f == {"rate_429": 0, "rate_500": 0, "slow_rate": 0, "slow_ms": 0, "drop_rate": 0,
                 "accept_drop_rate": 0, "rate_400": 0}, f
    st, _, _ = send(srv, valid_body())
    assert st == 202, st

    # a bad fault request changes nothing
    for bad in ({"rate_429": 2}, {"rate_429": "150%"}, {"nonsense": 1}, {"slow_ms": -1}):
        st, _, _ = http_call(srv.url("/fake/faults"), data=json.dumps(bad).encode(),
                             method="POST")
        assert st == 400, (bad, st)
    st, _, data = http_call(srv.url("/fake/faults"))
    assert st == 200 and json.loads(data)["rate_429"] == 0, data


def test_routes(srv):
    st, _, data = http_call(srv.url("/v3/mail/send"))
    assert st == 405, st
    check_error_shape(data)
    st, _, data = http_call(srv.url("/v3/nothing-here"))
    assert st == 404, st
    check_error_shape(data)


def test_stats():
    with Server() as srv:
        assert send(srv, valid_body(1))[0] == 202
        assert send(srv, valid_body(3))[0] == 202
        assert send(srv, {"personalizations": []})[0] == 400
        assert send(srv, valid_body(), key="bad")[0] == 401
        faults(srv, rate_429=1)
        assert send(srv, valid_body())[0] == 429
        faults(srv, rate_429=0, rate_500=1)
        assert send(srv, valid_body())[0] == 500
        faults(srv, rate_500=0, drop_rate=1)
        assert send(srv, valid_body())[0] is None
        s = stats(srv)
        want = {"requests": 7, "accepted": 2, "personalizations": 4, "rejected_400": 1,
                "rejected_401": 1, "throttled_429": 1, "failed_500": 1, "dropped": 1}
        got = {k: s.get(k) for k in want}
        assert got == want, s
        assert len(srv.records()) == 2


def test_seed_is_repeatable():
    def run():
        with Server("--seed", "7", "--rate-500", "0.5") as srv:
            out = []
            for _ in range(20):
                st, hdr, _ = send(srv, valid_body())
                out.append((st, hdr.get("X-Message-Id") if st == 202 else None))
            return out
    a, b = run(), run()
    assert a == b, (a, b)
    codes = {st for st, _ in a}
    assert codes == {202, 500}, codes


def test_options():
    def run(*args, env=None):
        p = subprocess.run([EXE] + list(args), capture_output=True, timeout=10,
                           env=dict(os.environ, **(env or {})))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    rc, out, _ = run("--help")
    assert rc == 0 and "--port-file" in out, (rc, out)
    rc, _, err = run("--key", "k", "--listen", "0.0.0.0:0")
    assert rc == 2 and "loopback" in err, (rc, err)
    rc, _, _ = run("--listen", "127.0.0.1:0")
    assert rc == 2, rc  # no key
    rc, _, _ = run("--key", "k", "--rate-429", "1.5")
    assert rc == 2, rc
    rc, _, _ = run("--key", "k", "--drop-rate", "abc")
    assert rc == 2, rc
    rc, _, _ = run("--key-env", "FAKESG_SURELY_UNSET_VARIABLE")
    assert rc != 0, rc


def test_key_file_and_percent_rate():
    with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as f:
        f.write(KEY + "\n")
        path = f.name
    try:
        with Server("--rate-429", "100%", key_args=["--key-file", path]) as srv:
            assert send(srv, valid_body())[0] == 429
            assert send(srv, valid_body(), key="other")[0] == 401
    finally:
        os.unlink(path)


def test_clean_shutdown_and_no_key_in_log():
    srv = Server()
    try:
        assert send(srv, valid_body())[0] == 202
        assert send(srv, valid_body(), key="bad")[0] == 401
        rc = srv.stop()
        assert rc == 0, rc
        assert not os.path.exists(srv.port_file), "port file left behind"
        log = srv.stderr()
        assert KEY not in log, "key leaked into the log"
        assert "POST /v3/mail/send 202 personalizations=1" in log, log
    finally:
        srv.close()


def main():
    if not EXE:
        print("usage: test_fakesg.py PATH-TO-fake-sendgrid", file=sys.stderr)
        return 2
    shared = [test_accepted_and_recorded, test_auth, test_content_type, test_malformed_json,
              test_too_large, test_invalid_bodies, test_valid_variants, test_faults,
              test_routes]
    alone = [test_stats, test_seed_is_repeatable, test_options,
             test_key_file_and_percent_rate, test_clean_shutdown_and_no_key_in_log]
    failed = 0
    srv = Server()
    try:
        for t in shared + alone:
            try:
                if t in shared:
                    t(srv)
                else:
                    t()
                print("ok   %s" % t.__name__)
            except Exception as e:  # report every test, not only the first failure
                failed += 1
                print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e))
    finally:
        rc = srv.stop()
        if rc != 0:  # under ASan a leak or error shows up here
            failed += 1
            print("FAIL shared server exited with %s" % rc)
        if failed:
            print("--- server stderr ---\n" + srv.stderr()[-4000:])
        srv.close()
    print("%d failed" % failed if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""test_tls.py -- the SMTP route over TLS, against loopback SMTP servers.

Drives tests/smtp/smtp_send (path in $SMTP_SEND) against TlsCapture, a small
SMTP server in this file that offers STARTTLS (or speaks TLS from the first
byte, for smtps://) with a certificate from a private CA made here with the
openssl command line, and records, per connection and in order, the TLS
handshake and every command, so a test can tell what was said in clear and
what inside TLS.

What is checked: with tls = required and ca_file naming the private CA the
message goes through STARTTLS, and AUTH comes only after the handshake even
when the relay offers AUTH in clear; smtps:// the same; without ca_file (the
system's CAs) and with a certificate for another host name the relay is
refused before anything is sent, as a tempfail whose error names the
certificate; tls = optional uses STARTTLS when offered and sends in clear
when not; one session carries several messages with one handshake; the
password never shows in the driver's output.

Nothing sleeps to wait: the driver runs until every unit has its result,
and the server's side of a connection is waited for by polling a condition
with a deadline.
"""
import base64
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

SMTP_SEND = os.environ.get("SMTP_SEND", "")
OPENSSL = shutil.which("openssl")

USER = "warmup"
PASSWORD = "Tls-s3cret-Pa55word-q8Zr"

CONTENT = {"from": {"email": "news@example.com"}, "subject": "over TLS",
           "content": [{"type": "text/plain", "value": "sent inside TLS\n"}]}
PERS = {"to": [{"email": "b@example.net"}]}

PKI = None  # paths of the CA and the certificates, made once in setUpModule


def openssl(*args, cwd):
    out = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], out.stderr.decode()))


def make_pki(d):
    """A private CA and two server certificates it signs: one for 127.0.0.1
    and localhost, one for another host name only."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=warmup test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    paths = {"ca": os.path.join(d, "ca.pem")}
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"),
                      ("other", "DNS:relay.other.example")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid,issuer\n"
                    "subjectAltName = %s\n" % san)
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + san.split(",")[0].split(":", 1)[1], cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", "0x%x" % (len(paths) + 0x1000), "-days", "2",
                "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
        paths[name] = (os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))
    return paths


def setUpModule():
    global PKI, _pki_dir
    if not (SMTP_SEND and OPENSSL):
        return
    _pki_dir = tempfile.TemporaryDirectory()
    PKI = make_pki(_pki_dir.name)


def tearDownModule():
    if PKI is not None:
        _pki_dir.cleanup()


def wait_for(cond, what, timeout=30.0):
    """Polls cond() until it returns a true value; fails after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


class TlsCapture(socketserver.ThreadingTCPServer):
    """An SMTP server on 127.0.0.1 that offers STARTTLS (or, with implicit,
    does TLS from the first byte) and records each connection's dialogue.

    Each connection is a list of events (kind, in_tls, detail): ("tls", False,
    version) once the handshake is done, ("tls-failed", .., reason) when the
    client gave up on it, ("cmd", in_tls, VERB) for every command,
    ("auth", in_tls, ok), ("data", in_tls, bytes) and ("closed", ..)."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, cert, starttls=True, implicit=False, auth=False):
        super().__init__(("127.0.0.1", 0), TlsHandler)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.starttls = starttls
        self.implicit = implicit
        self.auth = auth          # offers AUTH PLAIN, in clear as well as in TLS
        self.lock = threading.Lock()
        self.conns = []           # one event list per connection
        self.socks = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def events(self):
        with self.lock:
            return [list(c) for c in self.conns]

    def all_closed(self):
        """Every connection so far has ended on the server's side."""
        with self.lock:
            return all(c and c[-1][0] == "closed" for c in self.conns)

    def messages(self):
        return [e[2] for c in self.events() for e in c if e[0] == "data"]

    def stop(self):
        self.shutdown()
        for s in list(self.socks):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


class TlsHandler(socketserver.BaseRequestHandler):
    def setup(self):
        self.sock = self.request
        self.sock.settimeout(30)
        self.buf = b""
        self.tls = False
        with self.server.lock:
            self.ev = []
            self.server.conns.append(self.ev)
            self.server.socks.append(self.sock)

    def finish(self):
        if self.sock is not self.request:
            self.sock.close()

    def note(self, kind, detail=None):
        with self.server.lock:
            self.ev.append((kind, self.tls, detail))

    def send(self, *lines):
        self.sock.sendall(b"".join(l.encode() + b"\r\n" for l in lines))

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def handshake(self):
        try:
            self.sock = self.server.ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.note("tls-failed", str(e))
            return False
        with self.server.lock:
            self.server.socks.append(self.sock)
        self.note("tls", self.sock.version())
        self.tls = True
        return True

    def handle(self):
        try:
            self.dialogue()
        except (OSError, ValueError):
            pass
        finally:
            self.note("closed")

    def dialogue(self):
        srv = self.server
        if srv.implicit and not self.handshake():
            return
        self.send("220 tlscapture ESMTP")
        msg = None
        while True:
            line = self.readline()
            if line is None:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            self.note("cmd", verb)
            if verb in ("EHLO", "HELO"):
                caps = ["250-tlscapture", "250-PIPELINING", "250-8BITMIME"]
                if srv.starttls and not self.tls:
                    caps.append("250-STARTTLS")
                if srv.auth:
                    caps.append("250-AUTH PLAIN")
                self.send(*caps, "250 ENHANCEDSTATUSCODES")
            elif verb == "STARTTLS":
                if not srv.starttls or self.tls:
                    self.send("502 5.5.1 not now")
                    continue
                self.send("220 2.0.0 Ready to start TLS")
                if self.buf:
                    # Commands sent in clear must not survive the upgrade.
                    self.note("pipelined-after-starttls", self.buf)
                    return
                if not self.handshake():
                    return
                msg = None
            elif verb == "AUTH":
                ok = self.check_auth(text)
                self.note("auth", ok)
                self.send("235 2.7.0 Authentication successful" if ok
                          else "535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                msg = {"from": text[10:].strip(), "rcpt": []}
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                if msg is not None:
                    msg["rcpt"].append(text[8:].strip())
                self.send("250 2.1.5 Ok")
            elif verb == "DATA":
                self.send("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while True:
                    chunk = self.readline()
                    if chunk is None:
                        return
                    if chunk == b".\r\n":
                        break
                    data += chunk
                self.note("data", data)
                self.send("250 2.0.0 Ok: queued as TLS%04d" % len(srv.messages()))
                msg = None
            elif verb in ("RSET", "NOOP"):
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")

    def check_auth(self, text):
        parts = text.split()
        if len(parts) < 2 or parts[1].upper() != "PLAIN":
            return False
        if len(parts) > 2:
            resp = parts[2]
        else:
            self.send("334 ")
            resp = (self.readline() or b"").decode("latin-1").strip()
        try:
            _, user, pw = base64.b64decode(resp).split(b"\0")
        except ValueError:
            return False
        return user == USER.encode() and pw == PASSWORD.encode()


@unittest.skipUnless(SMTP_SEND and OPENSSL, "SMTP_SEND not set or no openssl")
class TestTls(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def capture(self, cert="server", **kw):
        s = TlsCapture(PKI[cert], **kw)
        self.addCleanup(s.stop)
        return s

    def write(self, name, obj):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f)
        return path

    def send(self, url, args=(), n=1, password=None):
        """Runs smtp_send for n units; returns the results.  Checks that the
        password shows nowhere in what the driver printed."""
        cmd = [SMTP_SEND, "--url", url, "--content", self.write("content.json", CONTENT)]
        for i in range(n):
            cmd += ["--pers", self.write("p%d.json" % i, PERS)]
        cmd += list(args)
        env = dict(os.environ)
        # The system's CAs, as the daemon would find them: nothing points
        # OpenSSL elsewhere.
        for k in ("SMTP_PASSWORD", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"):
            env.pop(k, None)
        if password is not None:
            env["SMTP_PASSWORD"] = password
        out = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        for stream in (out.stdout, out.stderr):
            self.assertNotIn(PASSWORD.encode(), stream)
            self.assertNotIn(base64.b64encode(PASSWORD.encode()), stream)
        res = [json.loads(l) for l in out.stdout.decode().splitlines()]
        self.assertEqual(len(res), n, out.stdout.decode())
        return res

    def settled(self, srv):
        """The server's events once every connection has ended on its side."""
        wait_for(srv.all_closed, "the server to finish its connections")
        return srv.events()

    def kinds(self, conn):
        return [(e[0], e[2]) if e[0] == "cmd" else e[0] for e in conn]

    def assert_all_inside_tls(self, conn):
        """The handshake comes before MAIL, and MAIL, RCPT, DATA, the message
        and any AUTH all come inside TLS."""
        kinds = self.kinds(conn)
        self.assertIn("tls", kinds, kinds)
        self.assertIn(("cmd", "MAIL"), kinds, kinds)
        self.assertLess(kinds.index("tls"), kinds.index(("cmd", "MAIL")), kinds)
        for kind, in_tls, detail in conn:
            if kind in ("auth", "data") or (kind == "cmd" and detail in
                                            ("AUTH", "MAIL", "RCPT", "DATA")):
                self.assertTrue(in_tls, (kind, detail, kinds))

    # --- STARTTLS --------------------------------------------------------

    def test_starttls_required_with_ca_file(self):
        srv = self.capture(auth=True)
        r = self.send("smtp://127.0.0.1:%d" % srv.port,
                      ["--tls", "required", "--ca", PKI["ca"], "--user", USER],
                      password=PASSWORD)[0]
        self.assertEqual((r["status"], r["code"]), ("accepted", 250), r)
        self.assertEqual(r["provider_id"], "TLS0001")
        conns = self.settled(srv)
        self.assertEqual(len(conns), 1, conns)
        kinds = self.kinds(conns[0])
        # EHLO in clear, STARTTLS, the handshake, EHLO again, then AUTH:
        # the relay offered AUTH in clear and was not taken up on it.
        self.assertEqual(kinds[:4], [("cmd", "EHLO"), ("cmd", "STARTTLS"), "tls",
                                     ("cmd", "EHLO")], kinds)
        self.assertIn(("cmd", "AUTH"), kinds)
        self.assertLess(kinds.index("tls"), kinds.index(("cmd", "AUTH")))
        self.assertIn("auth", kinds)
        self.assertNotIn("pipelined-after-starttls", kinds)
        self.assert_all_inside_tls(conns[0])
        auth = [e for e in conns[0] if e[0] == "auth"]
        self.assertEqual(auth, [("auth", True, True)])
        tls = [e for e in conns[0] if e[0] == "tls"][0]
        self.assertIn(tls[2], ("TLSv1.2", "TLSv1.3"))
        data = srv.messages()
        self.assertEqual(len(data), 1)
        self.assertIn(b"Subject: over TLS", data[0])
        self.assertIn(b"sent inside TLS", data[0])

    def test_starttls_is_the_default(self):
        srv = self.capture()
        r = self.send("smtp://127.0.0.1:%d" % srv.port, ["--ca", PKI["ca"]])[0]
        self.assertEqual(r["status"], "accepted", r)
        self.assert_all_inside_tls(self.settled(srv)[0])

    def test_starttls_localhost_name(self):
        # The certificate's DNS name, not its IP address, is checked here.
        srv = self.capture()
        r = self.send("smtp://localhost:%d" % srv.port, ["--ca", PKI["ca"]])[0]
        self.assertEqual(r["status"], "accepted", r)
        conns = [c for c in self.settled(srv) if c and c[0][0] != "closed"]
        self.assert_all_inside_tls(conns[-1])

    def test_one_handshake_for_several_messages(self):
        srv = self.capture(auth=True)
        res = self.send("smtp://127.0.0.1:%d" % srv.port,
                        ["--ca", PKI["ca"], "--user", USER, "--max-conn", "1"],
                        n=3, password=PASSWORD)
        self.assertEqual([r["status"] for r in res], ["accepted"] * 3, res)
        conns = self.settled(srv)
        self.assertEqual(len(conns), 1, conns)
        kinds = self.kinds(conns[0])
        self.assertEqual(kinds.count("tls"), 1, kinds)
        self.assertEqual(kinds.count(("cmd", "STARTTLS")), 1, kinds)
        self.assertEqual(kinds.count(("cmd", "AUTH")), 1, kinds)
        self.assertEqual(kinds.count("data"), 3, kinds)
        self.assert_all_inside_tls(conns[0])

    def test_wrong_password_over_tls_is_authfail(self):
        srv = self.capture(auth=True)
        r = self.send("smtp://127.0.0.1:%d" % srv.port,
                      ["--ca", PKI["ca"], "--user", USER],
                      password=PASSWORD[::-1])[0]
        self.assertEqual((r["status"], r["code"]), ("authfail", 535), r)
        self.assertNotIn(PASSWORD[::-1], r["error"])
        conns = self.settled(srv)
        self.assertEqual([e for e in conns[0] if e[0] == "auth"], [("auth", True, False)])
        self.assertEqual(srv.messages(), [])

    # --- smtps -----------------------------------------------------------

    def test_smtps_with_ca_file(self):
        srv = self.capture(implicit=True, starttls=False, auth=True)
        r = self.send("smtps://127.0.0.1:%d" % srv.port,
                      ["--ca", PKI["ca"], "--user", USER], password=PASSWORD)[0]
        self.assertEqual((r["status"], r["code"]), ("accepted", 250), r)
        conns = self.settled(srv)
        self.assertEqual(len(conns), 1, conns)
        kinds = self.kinds(conns[0])
        # TLS before the first byte of SMTP, and no STARTTLS inside it.
        self.assertEqual(kinds[0], "tls", kinds)
        self.assertNotIn(("cmd", "STARTTLS"), kinds)
        self.assertEqual([e for e in conns[0] if e[0] == "auth"], [("auth", True, True)])
        self.assert_all_inside_tls(conns[0])
        self.assertEqual(len(srv.messages()), 1)

    def test_smtps_with_tls_optional(self):
        # optional changes nothing for smtps://: TLS from the first byte.
        srv = self.capture(implicit=True, starttls=False)
        r = self.send("smtps://127.0.0.1:%d" % srv.port,
                      ["--tls", "optional", "--ca", PKI["ca"]])[0]
        self.assertEqual(r["status"], "accepted", r)
        self.assertEqual(self.kinds(self.settled(srv)[0])[0], "tls")

    # --- certificates refused ---------------------------------------------

    def assert_refused(self, srv, r, handshake=False):
        """A tempfail for the certificate: not one command inside TLS (so no
        AUTH, no MAIL, no message), and none in clear after the refusal.
        With handshake false the client gave up inside the handshake; a host
        name is checked once it is done, so the server sees it complete."""
        self.assertEqual(r["status"], "tempfail", r)
        self.assertIn("certificate", r["error"].lower(), r)
        conns = self.settled(srv)
        self.assertGreaterEqual(len(conns), 1)
        for c in conns:
            kinds = self.kinds(c)
            self.assertEqual("tls" in kinds, handshake, kinds)
            self.assertEqual([e for e in c if e[0] == "cmd" and e[1]], [], kinds)
            for verb in ("AUTH", "MAIL", "RCPT", "DATA"):
                self.assertNotIn(("cmd", verb), kinds, kinds)
        self.assertEqual(srv.messages(), [])
        self.assertNotIn(PASSWORD, r["error"])

    # curl's words: "SSL peer certificate or SSH remote key was not OK: SSL
    # certificate problem: unable to get local issuer certificate".
    VERIFY = "certificate.*(verif|issuer)|(verif|issuer).*certificate"

    def test_starttls_system_cas_refuse_private_ca(self):
        srv = self.capture(auth=True)
        r = self.send("smtp://127.0.0.1:%d" % srv.port,
                      ["--tls", "required", "--user", USER], password=PASSWORD)[0]
        self.assert_refused(srv, r)
        self.assertRegex(r["error"].lower(), self.VERIFY, r)

    def test_smtps_system_cas_refuse_private_ca(self):
        srv = self.capture(implicit=True, starttls=False, auth=True)
        r = self.send("smtps://127.0.0.1:%d" % srv.port, ["--user", USER],
                      password=PASSWORD)[0]
        self.assert_refused(srv, r)
        self.assertRegex(r["error"].lower(), self.VERIFY, r)

    def test_starttls_optional_does_not_fall_back_on_a_bad_certificate(self):
        # The relay offers STARTTLS, so optional takes it; a certificate that
        # does not verify ends the session, not a retry in clear.
        srv = self.capture(auth=True)
        r = self.send("smtp://127.0.0.1:%d" % srv.port,
                      ["--tls", "optional", "--user", USER], password=PASSWORD)[0]
        self.assert_refused(srv, r)

    def test_certificate_for_another_host_name(self):
        # The private CA signs it, but for relay.other.example: the host
        # name is checked too.
        srv = self.capture(cert="other")
        r = self.send("smtp://127.0.0.1:%d" % srv.port, ["--ca", PKI["ca"]])[0]
        self.assert_refused(srv, r, handshake=True)

    # --- in clear ---------------------------------------------------------

    def test_optional_without_starttls_sends_in_clear(self):
        srv = self.capture(starttls=False)
        r = self.send("smtp://127.0.0.1:%d" % srv.port, ["--tls", "optional"])[0]
        self.assertEqual((r["status"], r["code"]), ("accepted", 250), r)
        conns = self.settled(srv)
        kinds = self.kinds(conns[0])
        self.assertNotIn("tls", kinds)
        self.assertNotIn(("cmd", "STARTTLS"), kinds)
        self.assertIn(("cmd", "MAIL"), kinds)
        self.assertEqual(len(srv.messages()), 1)

    def test_optional_with_starttls_uses_it(self):
        srv = self.capture()
        r = self.send("smtp://127.0.0.1:%d" % srv.port,
                      ["--tls", "optional", "--ca", PKI["ca"]])[0]
        self.assertEqual(r["status"], "accepted", r)
        self.assert_all_inside_tls(self.settled(srv)[0])

    def test_none_ignores_starttls(self):
        srv = self.capture()
        r = self.send("smtp://127.0.0.1:%d" % srv.port, ["--tls", "none"])[0]
        self.assertEqual(r["status"], "accepted", r)
        kinds = self.kinds(self.settled(srv)[0])
        self.assertNotIn(("cmd", "STARTTLS"), kinds)
        self.assertNotIn("tls", kinds)

    def test_required_without_starttls_sends_nothing(self):
        # The plain server of the previous tests, under tls = required.
        srv = self.capture(starttls=False, auth=True)
        r = self.send("smtp://127.0.0.1:%d" % srv.port,
                      ["--tls", "required", "--ca", PKI["ca"], "--user", USER],
                      password=PASSWORD)[0]
        self.assertEqual(r["status"], "tempfail", r)
        self.assertIn("does not offer STARTTLS", r["error"])
        kinds = [k for c in self.settled(srv) for k in self.kinds(c)]
        for verb in ("AUTH", "MAIL"):
            self.assertNotIn(("cmd", verb), kinds, kinds)


if __name__ == "__main__":
    unittest.main(verbosity=2)

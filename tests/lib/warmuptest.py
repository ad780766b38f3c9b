"""warmuptest -- what warmup's Python integration tests share.

Polling with a deadline (never a fixed sleep), processes that report their
port through --port-file, warmupd and fake-sendgrid as such processes, HTTP
requests on loopback, the fake's record file, and the skeleton of a small
SMTP server.  Python 3 standard library only; each test puts this directory
on sys.path and imports what it needs.
"""
import datetime
import http.client
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zoneinfo

DEADLINE = 60.0
# What a condition may raise while what it waits for is not there yet.
RETRY_ON = (OSError, http.client.HTTPException, ValueError)


def midday_tz():
    """A fixed-offset zone (Etc/GMT-N) where it is now about noon: for tests
    whose pacing figures assume the local day has hours left, whatever the
    hour at which they run."""
    off = (12 - datetime.datetime.now(datetime.timezone.utc).hour + 24) % 24
    if off > 12:
        off -= 24
    # Etc/ names count the other way: Etc/GMT-9 is UTC+9.
    return "Etc/GMT%+d" % -off if off else "Etc/UTC"


# The zone the daemons of the tests run in: one where it is about noon when
# the tests start, so that no run crosses a local midnight (a new schedule
# day) halfway, whenever it runs.  Fixed offsets have no DST either.
TZ = midday_tz()


def today(tz=TZ):
    return datetime.datetime.now(zoneinfo.ZoneInfo(tz)).date()




def wait_for(cond, what, timeout=DEADLINE, interval=0.02, retry_on=RETRY_ON):
    """Polls cond() until it returns a true value; fails after timeout."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
        except retry_on as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def read_port(path, proc, timeout=DEADLINE):
    """The port a process wrote to its --port-file, once it is there."""
    def ready():
        if proc.poll() is not None:
            raise AssertionError("process exited with %d before listening" % proc.returncode)
        try:
            with open(path) as f:
                s = f.read().strip()
        except FileNotFoundError:
            return None
        return int(s) if s else None
    return wait_for(ready, "port file " + path, timeout)


def free_port():
    """A loopback port that was free a moment ago (bound, then closed); the
    caller retries when someone else takes it first."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mail(recipients, subject="Hello", body="Hello there", **extra):
    """A v3 mail/send body with one personalization per recipient."""
    m = {
        "personalizations": [{"to": [{"email": r}]} for r in recipients],
        "from": {"email": "news@example.org"},
        "subject": subject,
        "content": [{"type": "text/plain", "value": body}],
    }
    m.update(extra)
    return m


def recipients_of(body):
    """Every to, cc and bcc address of a v3 body, in order."""
    out = []
    for p in body.get("personalizations", []):
        for k in ("to", "cc", "bcc"):
            for a in p.get(k, []) or []:
                out.append(a["email"])
    return out


def read_records(path):
    """The complete lines of a JSON-lines record file (none if it is absent)."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def write_file(dir, name, text, mode=0o600):
    """Writes text to dir/name with mode; returns the path."""
    path = os.path.join(dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def make_pki(dir):
    """A private CA and a certificate for mx.test.example and 127.0.0.1,
    made with the openssl command in dir; returns dir."""
    os.makedirs(dir)

    def run(*a):
        subprocess.run(["openssl", *a], cwd=dir, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=warmup test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "mx.key", "-out", "mx.csr", "-subj", "/CN=mx.test.example")
    with open(os.path.join(dir, "ext"), "w") as f:
        f.write("subjectAltName=DNS:mx.test.example,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "mx.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "mx.pem", "-days", "2", "-extfile", "ext")
    # Postfix's smtp client reads the CA file as the postfix user.
    os.chmod(dir, 0o755)
    os.chmod(os.path.join(dir, "ca.pem"), 0o644)
    return dir


def http_request(port, method, path, body=None, raw=None, auth=None, headers=None,
                 ctype="application/json", timeout=30):
    """One request to 127.0.0.1:port: body is sent as JSON, raw as it is; auth
    is the Authorization header's value.  Returns (status, headers with
    lower-case names, body bytes)."""
    h = {}
    if auth:
        h["Authorization"] = auth
    if raw is None and body is not None:
        raw = json.dumps(body).encode()
    if raw is not None and ctype:
        h["Content-Type"] = ctype
    if headers:
        h.update(headers)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=raw, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        c.close()


# --- processes -------------------------------------------------------------

def stop_process(proc, timeout=10):
    """SIGTERM, and SIGKILL if it has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Proc:
    """A child process that listens on port 0 and reports its port through
    dir/NAME.port; its output goes to dir/NAME.log."""

    def __init__(self, argv, dir, name, env=None, log_mode="ab", stop_timeout=10,
                 port_timeout=DEADLINE, cwd=None):
        self.argv = list(argv)
        self.dir = dir
        self.env = env
        self.port_file = os.path.join(dir, name + ".port")
        self.log_path = os.path.join(dir, name + ".log")
        self.log_mode = log_mode
        self.stop_timeout = stop_timeout
        self.port_timeout = port_timeout
        self.cwd = cwd
        self.proc = None
        self.start()

    def start(self):
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        self.log = open(self.log_path, self.log_mode)
        self.proc = subprocess.Popen(self.argv + ["--port-file", self.port_file], env=self.env,
                                     cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = read_port(self.port_file, self.proc, self.port_timeout)

    def stop(self):
        stop_process(self.proc, self.stop_timeout)
        self.log.close()

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Fake(Proc):
    """fake-sendgrid with API key `key`, recording to dir/sent.jsonl."""

    def __init__(self, exe, dir, key, seed=7, args=(), env=None, **proc_kw):
        """seed None: the fake's own; env: the environment to add the key
        to (os.environ by default); proc_kw: as for Proc."""
        self.record = os.path.join(dir, "sent.jsonl")
        argv = [exe, "--listen", "127.0.0.1:0", "--key-env", "FAKE_SG_KEY",
                "--record", self.record]
        if seed is not None:
            argv += ["--seed", str(seed)]
        proc_kw.setdefault("log_mode", "wb")
        super().__init__(argv + list(args), dir, "fake",
                         dict(env if env is not None else os.environ, FAKE_SG_KEY=key),
                         **proc_kw)

    def request(self, method, path, body=None):
        st, _, data = http_request(self.port, method, path, body)
        return st, data

    def stats(self):
        st, b = self.request("GET", "/fake/stats")
        assert st == 200, st
        return json.loads(b)

    def faults(self, **kw):
        st, b = self.request("POST", "/fake/faults", kw)
        assert st == 200, (st, b)
        return json.loads(b)

    def records(self):
        return read_records(self.record)

    def sent_recipients(self):
        out = []
        for r in self.records():
            out.extend(recipients_of(r["body"]))
        return out


class Warmupd(Proc):
    """warmupd with a config, reached with a bearer token; start() starts it
    again (its log is appended to), stop() kills it."""

    def __init__(self, exe, dir, config, env, token, args=()):
        """args: more arguments, such as --smtp-port-file FILE."""
        self.config = config
        self.token = token
        super().__init__([exe, "--config", config, *args], dir, "warmupd", env)

    def terminate(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.log.close()
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and not self.log.closed:
            self.log.close()

    def request(self, method, path, body=None, headers=None, token=True, raw=None,
                ctype="application/json"):
        """token: True for this daemon's, a string for that Authorization
        header, None or False for none."""
        auth = "Bearer " + self.token if token is True else token
        return http_request(self.port, method, path, body, raw, auth, headers, ctype,
                            timeout=60)

    def send(self, m):
        st, h, b = self.request("POST", "/v3/mail/send", m)
        return st, h.get("x-message-id"), b

    def status(self):
        st, _, b = self.request("GET", "/v1/status")
        if st != 200:
            raise ValueError("status answered %d: %r" % (st, b))
        return json.loads(b)

    def metrics(self):
        st, _, b = self.request("GET", "/metrics")
        if st != 200:
            raise ValueError("metrics answered %d" % st)
        return b.decode()


# --- unittest --------------------------------------------------------------

def has_failed(test):
    """Whether a unittest test has failed or errored so far (from tearDown)."""
    res = getattr(test, "_outcome", None)
    result = getattr(res, "result", None) if res is not None else None
    if result is None:
        return False
    for t, _ in list(getattr(result, "failures", [])) + list(getattr(result, "errors", [])):
        if t is test:
            return True
    return False


class ProcTestCase(unittest.TestCase):
    """A test with a fresh directory (self.dir) and processes (self.procs)
    stopped in reverse order afterwards; their logs are shown when it fails."""
    prefix = "warmup-test-"

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix=self.prefix)
        self.dir = self._tmp.name
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        if has_failed(self):
            dump_logs(self.procs)
        self._tmp.cleanup()

    def write(self, name, text, mode=0o600):
        return write_file(self.dir, name, text, mode)


def dump_logs(procs):
    """Writes the tail of each process's log to stderr."""
    for p in procs:
        path = getattr(p, "log_path", None)
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                tail = f.read()[-6000:].decode("utf-8", "replace")
            sys.stderr.write("\n--- %s (tail) ---\n%s\n" % (os.path.basename(path), tail))


# --- SMTP ------------------------------------------------------------------

def unstuff(data):
    """SMTP dot-unstuffing of the raw DATA (RFC 5321 4.5.2)."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


class SmtpServer(socketserver.ThreadingTCPServer):
    """A threaded server on 127.0.0.1 port 0; serve() starts it in a thread.
    Handlers add their sockets to self.conns so that stop() can unblock
    them."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.conns = []

    def serve(self):
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.shutdown()
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


class SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()


class CountingSink(SmtpServer):
    """An SMTP server on loopback that takes every message and keeps its
    envelope recipients (rcpts, without the angle brackets); count() says
    how many so far."""

    def __init__(self):
        super().__init__(CountingSinkHandler)
        self.rcpts = []
        self.serve()

    def count(self):
        with self.lock:
            return len(self.rcpts)


class CountingSinkHandler(SmtpHandler):
    def handle(self):
        srv = self.server
        with srv.lock:
            srv.conns.append(self.request)
        rcpts = []
        try:
            self.reply("220 sink ESMTP")
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                verb = line.decode("latin-1").strip().split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250-sink")
                    self.reply("250 8BITMIME")
                elif verb in ("MAIL", "RSET"):
                    rcpts = []
                    self.reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts.append(line.decode("latin-1").split(":", 1)[1].strip().strip("<>"))
                    self.reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    self.reply("354 go ahead")
                    while self.rfile.readline() not in (b".\r\n", b""):
                        pass
                    with srv.lock:
                        srv.rcpts.extend(rcpts)
                    rcpts = []
                    self.reply("250 2.0.0 Ok queued")
                elif verb == "QUIT":
                    self.reply("221 2.0.0 Bye")
                    return
                else:
                    self.reply("250 Ok")
        except OSError:
            pass


def run_cases(cls, args):
    """Runs the test case class cls: all of it, or the cases named in args
    (a method name without its "test_" prefix, or any unittest name).
    Exits 77 (meson's "skipped") when every case that ran was skipped, with
    the reasons printed."""
    names = [a if "." in a else cls.__name__ + "." + (a if a.startswith("test_") else
                                                       "test_" + a) for a in args]
    loader = unittest.TestLoader()
    module = sys.modules[cls.__module__]
    suite = loader.loadTestsFromNames(names, module) if names else \
        loader.loadTestsFromTestCase(cls)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if result.wasSuccessful() and result.testsRun and len(result.skipped) == result.testsRun:
        for t, why in result.skipped:
            print("SKIP %s: %s" % (t.id(), why))
        sys.exit(77)
    sys.exit(0 if result.wasSuccessful() else 1)


# --- a private Postfix -----------------------------------------------------

POSTFIX_BIN = "/usr/sbin"


def postfix_unavailable():
    """Why a private Postfix instance cannot run here, or None when it can."""
    for prog in ("postfix", "postqueue", "sendmail", "smtp-source"):
        if not os.access(os.path.join(POSTFIX_BIN, prog), os.X_OK):
            return "%s/%s is missing (Debian package postfix)" % (POSTFIX_BIN, prog)
    if os.geteuid() != 0:
        return "postfix start needs root (its master runs as root, its daemons as postfix)"
    import grp
    import pwd
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError as e:
        return "user postfix or group postdrop missing: %s" % e
    return None


class Postfix:
    """A private Postfix instance under dir/NAME: its own config_directory
    (NAME/conf), queue_directory (NAME/queue) and data_directory, its log
    in NAME/maillog (postlogd), one smtpd on a free loopback port (.port),
    relaying everything to relayhost.  main is added to main.cf (it may
    override the defaults here: a later line wins).  Never touches
    /etc/postfix or port 25.  stop() waits for the master to exit."""

    MASTER_CF = """pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

    def __init__(self, dir, relayhost, main="", name="postfix"):
        self.top = os.path.join(dir, name)
        self.conf = os.path.join(self.top, "conf")
        self.queue = os.path.join(self.top, "queue")
        self.log_path = os.path.join(self.top, "maillog")
        self.master_pid = None
        os.makedirs(self.conf)
        os.makedirs(self.queue, 0o755)  # postfix check fills it
        # The daemons run as postfix: they must reach the data directory
        # (which postfix check creates, owned by postfix) by its path.
        for d in (dir, self.top):
            os.chmod(d, 0o711)
        self.main = f"""compatibility_level = 3.6
config_directory = {self.conf}
queue_directory = {self.queue}
data_directory = {self.top}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.test.example
mydomain = test.example
myorigin = $myhostname
mydestination =
relay_domains =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
relayhost = {relayhost}
smtp_host_lookup = native
disable_dns_lookups = yes
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {self.log_path}
maillog_file_prefixes = {self.top}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""
        self.main = self._merged(self.main, main)
        self.start()

    @staticmethod
    def _merged(base, extra):
        """main.cf text base with extra's "name = value" lines put in place
        of base's of the same name (Postfix warns of a repeated name)."""
        lines = base.splitlines()
        names = [l.split("=", 1)[0].strip() for l in lines]
        for l in extra.splitlines():
            if not l.strip():
                continue
            name = l.split("=", 1)[0].strip()
            if name in names:
                lines[names.index(name)] = l
            else:
                lines.append(l)
                names.append(name)
        return "\n".join(lines) + "\n"

    def postfix(self, *args, check=True):
        r = subprocess.run([os.path.join(POSTFIX_BIN, "postfix"), "-c", self.conf, *args],
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("postfix -c %s %s: exit %d: %s\n%s" % (
                self.conf, " ".join(args), r.returncode, (r.stdout + r.stderr).strip(),
                self.logtext()[-3000:]))
        return r

    def start(self):
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(self.main)
        last = None
        for _ in range(5):
            self.port = free_port()
            with open(os.path.join(self.conf, "master.cf"), "w") as f:
                f.write("127.0.0.1:%d inet n - n - - smtpd\n" % self.port + self.MASTER_CF)
            self.postfix("check")
            r = self.postfix("start", check=False)
            if r.returncode != 0:
                last = (r.stdout + r.stderr).strip()
                self.postfix("stop", check=False)
                continue
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                self.master_pid = int(f.read().strip())
            try:
                wait_for(self._listening, "Postfix smtpd on port %d" % self.port, timeout=20)
                return
            except AssertionError as e:
                last = str(e)
                self.stop()
        raise AssertionError("postfix -c %s start failed: %s\n%s" % (
            self.conf, last, self.logtext()[-3000:]))

    def _listening(self):
        # Only the master's own listener counts: a connect probe would also
        # succeed against someone else who took the port meanwhile.
        out = subprocess.run(["ss", "-ltnpH", "sport = :%d" % self.port],
                             capture_output=True, text=True).stdout
        return "pid=%d," % self.master_pid in out

    def stop(self):
        """postfix stop, and the wait until its master is gone (postfix stop
        returns before; a zombie counts as gone)."""
        if self.master_pid is None:
            return
        pid, self.master_pid = self.master_pid, None
        self.postfix("stop", check=False)

        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().split(") ", 1)[1].startswith("Z")
            except FileNotFoundError:
                return True
        try:
            wait_for(gone, "the Postfix master (pid %d) to exit" % pid, timeout=30)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            raise

    def sendmail(self, sender, recipients, data):
        """Postfix's sendmail(1) with this instance's config: data (bytes,
        LF or CRLF line ends) on its standard input."""
        r = subprocess.run([os.path.join(POSTFIX_BIN, "sendmail"), "-C", self.conf, "-i",
                            "-f", sender, "--", *recipients], input=data,
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("sendmail -C %s: exit %d: %r" % (self.conf, r.returncode,
                                                                  r.stdout + r.stderr))

    def smtp_source(self, *args):
        """smtp-source ARGS... against this instance's smtpd."""
        r = subprocess.run([os.path.join(POSTFIX_BIN, "smtp-source"), *args,
                            "127.0.0.1:%d" % self.port], capture_output=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("smtp-source %s: exit %d: %r" % (" ".join(args), r.returncode,
                                                                  r.stdout + r.stderr))
        return r.stdout

    def queue_listing(self):
        """postqueue -p: 'Mail queue is empty' once everything left."""
        r = subprocess.run([os.path.join(POSTFIX_BIN, "postqueue"), "-c", self.conf, "-p"],
                           capture_output=True, text=True, timeout=60)
        return r.stdout.strip() + ("\n" + r.stderr.strip() if r.stderr.strip() else "")

    def queue_empty(self):
        return self.queue_listing() == "Mail queue is empty"

    def logtext(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def deliveries(self, status="sent"):
        """[(recipient, log line)] of the smtp client's lines with
        status=STATUS, in log order."""
        out = []
        for line in self.logtext().splitlines():
            if " postfix/smtp[" in line and " status=%s " % status in line:
                out.append((line.split(" to=<", 1)[1].split(">", 1)[0], line))
        return out

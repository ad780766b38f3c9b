#!/usr/bin/env python3
"""What `meson install` puts where, tried as a packager and a new user would.

usage: test_install.py MESON [unittest arguments]

Installs the build (WU_BUILD_ROOT) with `meson install --destdir` into a
scratch directory once, then checks the tree: the binaries, the unit and
its sysusers.d user, the example configuration pointed at the installed
schedules, the schedules, the README and the manual pages.  The installed
configuration then goes through the installed `warmupd --check` with the
environment variables it names set to dummy values, and through the
`warmup simulate` line of its own header.  `systemd-analyze verify` reads
the installed unit (it needs no running systemd, only the files).

The installed files name absolute paths under the prefix, which exist only
inside the scratch directory; to run them, a copy is made with those
paths moved under it (and the store, the relay password file and the
listen port moved to scratch places).  Only those lines may differ.
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

MESON = None
E = os.environ
SRC, BUILD = E["WU_SOURCE_ROOT"], E["WU_BUILD_ROOT"]
BINDIR, SYSCONFDIR, DATADIR = E["WU_BINDIR"], E["WU_SYSCONFDIR"], E["WU_DATADIR"]
DOCDIR, MANDIR, UNITDIR, SYSUSERSDIR = (E["WU_DOCDIR"], E["WU_MANDIR"], E["WU_UNITDIR"],
                                        E["WU_SYSUSERSDIR"])
MAN = E.get("WU_MAN") == "1"
CONF = SYSCONFDIR + "/warmup/warmupd.conf"
UNIT = UNITDIR + "/warmupd.service"
PAGES = {"man8/warmupd.8", "man1/warmup.1", "man5/warmupd.conf.5", "man1/fake-sendgrid.1"}


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="warmup-install-")
        cls.dest = os.path.join(cls._tmp.name, "root")
        p = subprocess.run([MESON, "install", "-C", BUILD, "--destdir", cls.dest,
                            "--no-rebuild", "--quiet"], capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("meson install failed:\n%s%s" % (
                p.stdout.decode(), p.stderr.decode()))

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def at(self, path):
        """The installed file for an absolute path of the target system."""
        return self.dest + path

    def read(self, path):
        with open(self.at(path)) as f:
            return f.read()

    def rerooted(self, text):
        """text with the prefix's absolute paths moved under the scratch root."""
        for d in sorted({BINDIR, SYSCONFDIR, DATADIR, DOCDIR, MANDIR}, key=len, reverse=True):
            text = re.sub(r"(?<![\w/])" + re.escape(d) + r"(?=/|\b)", self.dest + d, text)
        return text

    # --- the tree ----------------------------------------------------------

    def test_binaries(self):
        for b in ("warmupd", "warmup", "fake-sendgrid"):
            path = self.at(BINDIR + "/" + b)
            self.assertTrue(os.path.isfile(path), path)
            self.assertTrue(os.stat(path).st_mode & stat.S_IXOTH, path)
        p = subprocess.run([self.at(BINDIR + "/warmupd"), "--version"], capture_output=True)
        self.assertEqual(p.returncode, 0)

    def test_schedules_and_readme(self):
        for name in os.listdir(os.path.join(SRC, "schedules")):
            with open(os.path.join(SRC, "schedules", name)) as f:
                self.assertEqual(self.read(DATADIR + "/schedules/" + name), f.read(), name)
        with open(os.path.join(SRC, "README.md")) as f:
            self.assertEqual(self.read(DOCDIR + "/README.md"), f.read())

    def test_man_pages(self):
        if not MAN:
            self.skipTest("built with -Dman=disabled or without scdoc")
        for page in PAGES:
            text = self.read(MANDIR + "/" + page)
            name, section = os.path.basename(page).rsplit(".", 1)
            self.assertRegex(text, r'(?m)^\.TH "%s" "%s"' % (re.escape(name), section), page)

    def test_unit(self):
        unit = self.read(UNIT)
        keys = {}
        for line in unit.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
        self.assertEqual(keys["ExecStart"], [BINDIR + "/warmupd --config " + CONF])
        self.assertEqual(keys["ExecStartPre"], [BINDIR + "/warmupd --check --config " + CONF])
        self.assertEqual(keys["StateDirectory"], ["warmup"])
        self.assertEqual(keys["ProtectSystem"], ["strict"])
        self.assertEqual(keys["NoNewPrivileges"], ["yes"])
        docs = " ".join(keys["Documentation"]).split()
        self.assertIn("man:warmupd(8)", docs)
        for d in docs:
            if d.startswith("man:"):
                name, section = re.fullmatch(r"man:([\w.-]+)\((\d)\)", d).groups()
                if MAN:
                    self.assertTrue(os.path.isfile(self.at(
                        "%s/man%s/%s.%s" % (MANDIR, section, name, section))), d)
            else:
                self.assertTrue(d.startswith("file://"), d)
                self.assertTrue(os.path.isfile(self.at(d[len("file://"):])), d)
        # The user: made by the installed sysusers.d file, or dynamic.
        if keys.get("DynamicUser") != ["yes"]:
            self.assertEqual(keys["User"], ["warmup"])
            users = self.read(SYSUSERSDIR + "/warmup.conf")
            self.assertRegex(users, r"(?m)^u warmup -")

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed (Debian package systemd)")
        # verify reads files only; the unit's commands and man pages must exist,
        # so it reads a copy whose paths point into the scratch root.
        d = os.path.join(self._tmp.name, "unit")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "warmupd.service")
        with open(path, "w") as f:
            f.write(self.rerooted(self.read(UNIT)))
        env = dict(os.environ, MANPATH=self.at(MANDIR), SYSTEMD_LOG_LEVEL="notice")
        p = subprocess.run([tool, "verify", "--man=%s" % ("yes" if MAN else "no"), path],
                           capture_output=True, env=env, timeout=60)
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertNotIn("warmupd.service:", out)

    # --- the installed example configuration --------------------------------

    def scratch_config(self):
        """A runnable copy of the installed config, and its environment."""
        text = self.read(CONF)
        self.assertIn("schedule = %s/schedules/seed-rollout.csv\n" % DATADIR, text)
        self.assertTrue(os.path.isfile(self.at(DATADIR + "/schedules/seed-rollout.csv")))
        d = tempfile.mkdtemp(dir=self._tmp.name, prefix="conf-")
        moved = {
            "path = /var/lib/warmup/warmup.db": "path = %s/state/warmup.db" % d,
            "password_file = /etc/warmup/relay.pass": "password_file = %s/relay.pass" % d,
            "address = 127.0.0.1:8025": "address = 127.0.0.1:0",
        }
        for old, new in moved.items():
            self.assertEqual(text.count(old + "\n"), 1, old)
            text = text.replace(old + "\n", new + "\n")
        out = self.rerooted(text)
        # Nothing else moved: the copy is the installed file.
        a, b = self.read(CONF).splitlines(), out.splitlines()
        self.assertEqual(len(a), len(b))
        changed = [x for x, y in zip(a, b) if x != y]
        self.assertEqual(len(changed), len(moved) + 2,
                         changed)  # + the schedule and the header's simulate line
        with open(os.path.join(d, "relay.pass"), "w") as f:
            f.write("dummy-relay-password\n")
        os.chmod(os.path.join(d, "relay.pass"), 0o600)
        path = os.path.join(d, "warmupd.conf")
        with open(path, "w") as f:
            f.write(out)
        env = dict(os.environ)
        for name in re.findall(r"(?m)^\w+_env = (\w+)$", text):
            env[name] = "dummy-" + name.lower()
        return path, env, d

    def test_check_installed_config(self):
        path, env, d = self.scratch_config()
        warmupd = self.at(BINDIR + "/warmupd")
        p = subprocess.run([warmupd, "--check", "--config", path], env=env,
                           capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn(": ok: schedule %s/schedules/seed-rollout.csv (10 days" % self.at(DATADIR),
                      out)
        for name, value in env.items():
            if value.startswith("dummy-"):
                self.assertNotIn(value, out)
        # Without the variables, every one is named.
        bare = {k: v for k, v in env.items() if not v.startswith("dummy-")}
        p = subprocess.run([warmupd, "--check", "--config", path], env=bare,
                           capture_output=True, timeout=30)
        out = p.stderr.decode()
        self.assertEqual(p.returncode, 1, out)
        for name in (k for k, v in env.items() if v.startswith("dummy-")):
            self.assertIn("environment variable %s is not set" % name, out)

    def simulate_line(self, text):
        m = re.search(r"(?m)^;\s+(warmup simulate .*)$", text)
        self.assertIsNotNone(m, "no 'warmup simulate' line in the config's header")
        return m.group(1).split()

    def test_simulate_line_of_installed_config(self):
        path, env, d = self.scratch_config()
        argv = self.simulate_line(self.read(CONF))
        self.assertEqual(argv[:4], ["warmup", "simulate", "--config", CONF])
        argv = [self.at(BINDIR + "/warmup"), "simulate", "--config", path] + argv[4:]
        p = subprocess.run(argv, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertRegex(p.stdout.decode(), r"(?m)^total ")

    def test_simulate_line_of_source_config(self):
        """The header of tools/warmupd.conf, run from the source root as it says."""
        with open(os.path.join(SRC, "tools", "warmupd.conf")) as f:
            argv = self.simulate_line(f.read())
        argv[0] = self.at(BINDIR + "/warmup")
        p = subprocess.run(argv, cwd=SRC, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertRegex(p.stdout.decode(), r"(?m)^total ")


if __name__ == "__main__":
    MESON = sys.argv.pop(1)
    unittest.main(verbosity=2)

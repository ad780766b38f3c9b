#!/usr/bin/env python3
"""The manual pages against the code and the README.

usage: test_docs.py [BUILT_PAGE...] [unittest arguments]

- every key of the configuration tables (struct key keys[] in
  scheduler/config.c, and the route, webhook and defer_rule tables in
  config_route.c, config_webhook.c and config_defer.c) appears in its section of doc/warmupd.conf.5.scd and of the
  README's "Configuration file";
- every command of tools/warmup.c (struct command commands[]) has its
  subsection in doc/warmup.1.scd and its line in the SYNOPSIS;
- the built pages lint clean: `mandoc -T lint -W warning` and
  `man --warnings`.  scdoc 1.11 writes a .PP after every .SH and .SS and
  for blank lines, which mandoc reports as "skipping paragraph macro";
  that message alone is let through, every other warning fails.
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

SRC = os.environ["WU_SOURCE_ROOT"]
PAGES = []

# enum sect of config.c -> the section's heading in the README (### ...) and
# in warmupd.conf(5) (# ...).
SECTIONS = {
    "S_WARMUP": "[warmup]", "S_LISTEN": "[listen]", "S_STORE": "[store]",
    "S_SMTP": "[smtp]", "S_ROUTE": "[route new] and [route old]", "S_ISP": "[isp NAME]",
    "S_GATE": "[gate]", "S_BACKOFF": "[backoff]", "S_LOG": "[log]",
    "S_SUPPRESS": "[suppress]", "S_ALERT": "[alert]", "S_WEBHOOK": "[webhook]",
    "S_DEFER": "[defer_rule NAME]", "S_DNS": "[dns]", "S_STATUS": "[status]",
    "S_CLUSTER": "[cluster]",
}


def read(*path):
    with open(os.path.join(SRC, *path)) as f:
        return f.read()


# The files that hold a key table, and the name of its array.
KEY_TABLES = [("config.c", "keys"), ("config_route.c", "cf_route_keys"),
              ("config_webhook.c", "cf_webhook_keys"), ("config_defer.c", "cf_defer_keys")]


def config_keys():
    """(enum sect, key) for every row of every key table under scheduler/."""
    keys = []
    for path, name in KEY_TABLES:
        src = read("scheduler", path)
        table = re.search(r"(?:static )?const struct key %s\[\] = \{(.*?)\n\};" % name, src,
                          re.S).group(1)
        table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
        for m in re.finditer(r'(?:\{\s*(S_\w+)\s*,\s*"(\w+)"|(?<!R)FND?\(\s*(S_\w+)\s*,\s*"(\w+)"'
                             r'|RFND?\(\s*"(\w+)")', table):
            if m.group(1):
                keys.append((m.group(1), m.group(2)))
            elif m.group(3):
                keys.append((m.group(3), m.group(4)))
            else:
                keys.append(("S_ROUTE", m.group(5)))
    return keys


def sections(text, mark):
    """{heading: text up to the next heading of that level} for lines 'mark heading'."""
    out, name, buf = {}, None, []
    for line in text.splitlines():
        if line.startswith(mark + " "):
            if name:
                out[name] = "\n".join(buf)
            name, buf = line[len(mark) + 1:].strip(), []
        elif name:
            buf.append(line)
    if name:
        out[name] = "\n".join(buf)
    return out


class DocsTest(unittest.TestCase):
    def test_config_table_parsed(self):
        keys = config_keys()
        self.assertGreater(len(keys), 90)
        self.assertIn(("S_WARMUP", "schedule"), keys)
        self.assertIn(("S_ROUTE", "api_key_env"), keys)
        self.assertIn(("S_SMTP", "hostname"), keys)
        self.assertEqual({s for s, _ in keys} - set(SECTIONS), set(), "a section with no heading")

    def test_every_key_in_man_page_and_readme(self):
        readme = read("README.md")
        readme = readme[readme.index("\n## Configuration file\n"):]
        readme = readme[:readme.index("\n## ", 1)]
        # A key is defined on a line of its own: "`key` = *type*" in the
        # README, "*key* = _type_" in scdoc (several keys may share it).
        docs = {"README.md": (sections(readme, "###"), "`", "`%s`"),
                "doc/warmupd.conf.5.scd": (sections(read("doc", "warmupd.conf.5.scd"), "#"),
                                           "*", "*%s*")}
        missing = []
        for where, (secs, lead, fmt) in docs.items():
            for sect, key in config_keys():
                head = SECTIONS[sect]
                text = secs.get(head)
                if text is None:
                    missing.append("%s: no section %s" % (where, head))
                    continue
                names = {fmt % key, fmt % key.replace("_", "\\_")}
                if not any(line.startswith(lead) and " = " in line and
                           any(n in line for n in names) for line in text.splitlines()):
                    missing.append("%s: %s %s" % (where, head, key))
        self.assertEqual(sorted(set(missing)), [])

    def test_every_command_in_warmup_1(self):
        src = read("tools", "warmup.c")
        table = re.search(r"commands\[\] = \{(.*?)\n\};", src, re.S).group(1)
        commands = re.findall(r'\{"([\w-]+)",', table)
        self.assertIn("simulate", commands)
        page = read("doc", "warmup.1.scd")
        subsections = [line[3:] for line in page.splitlines() if line.startswith("## ")]
        synopsis = sections(page, "#")["SYNOPSIS"]
        for c in commands:
            self.assertTrue(any(re.search(r"\b%s\b" % c, s) for s in subsections),
                            "warmup(1) has no subsection for %s" % c)
            self.assertIn("*warmup %s*" % c, synopsis)

    def test_lint(self):
        if not PAGES:
            self.skipTest("no manual pages built (-Dman=disabled or no scdoc)")
        mandoc = shutil.which("mandoc")
        if not mandoc:
            self.fail("mandoc is not installed (tools/setup installs it)")
        self.assertEqual(len(PAGES), 4)
        for page in PAGES:
            p = subprocess.run([mandoc, "-T", "lint", "-W", "warning", page],
                               capture_output=True, timeout=30)
            bad = [line for line in (p.stdout + p.stderr).decode().splitlines()
                   if "skipping paragraph macro" not in line]
            self.assertEqual(bad, [], page)
            env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
            p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", page],
                               capture_output=True, env=env, timeout=30)
            self.assertEqual(p.returncode, 0, page)
            self.assertEqual(p.stderr.decode(), "", page)


if __name__ == "__main__":
    while len(sys.argv) > 1 and os.path.isfile(sys.argv[1]):
        PAGES.append(sys.argv.pop(1))
    unittest.main(verbosity=2)

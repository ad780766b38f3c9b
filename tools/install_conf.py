#!/usr/bin/env python3
"""install_conf.py -- the example configuration as installed: tools/warmupd.conf
with its schedule pointed at the installed schedules and its header's
command lines at the installed file.

usage: install_conf.py IN OUT SCHEDULES_DIR CONFIG_PATH

Every replacement must match once: a change of the example that moves one
of these lines fails the build instead of installing a stale file.
"""
import sys

src, dst, schedules, config = sys.argv[1:5]
with open(src) as f:
    text = f.read()
for old, new in [
    ("schedule = ../schedules/seed-rollout.csv", "schedule = %s/seed-rollout.csv" % schedules),
    ("warmup simulate --config tools/warmupd.conf", "warmup simulate --config %s" % config),
]:
    if text.count(old) != 1:
        sys.exit("install_conf.py: %s: expected '%s' once" % (src, old))
    text = text.replace(old, new)
with open(dst, "w") as f:
    f.write(text)

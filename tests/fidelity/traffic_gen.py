#!/usr/bin/env python3
"""traffic_gen.py -- the fidelity suite's traffic generator.

usage: traffic_gen.py PLAN.json RESULT.json

Runs under the same libfaketime clock as the daemons it feeds (the test
starts it with the same FAKETIME and FAKETIME_SHARED), so its "now" is
theirs.  It reads the traffic description `warmup simulate` gets (a
`day,offered` CSV and a profile: even, business or blast@HH:MM), places
each day's arrivals at the instants `warmup simulate` places them (the
arrival rules of the README's "Traffic" options, to the microsecond), and
at each one posts the message to every daemon of the plan: one
personalization per message, all of a blast in one request.

Once a day, at the plan's sample time, it reads each daemon's /v1/status
and each fake SendGrid's /fake/stats.  It writes RESULT.json: for each post
its planned instant and how late (in fake microseconds) each daemon's 202
came, and the samples.

PLAN.json: {"traffic": FILE, "profile": P, "start": "YYYY-MM-DD",
"timezone": ZONE, "domain": D, "sample": "HH:MM", "lead_us": N,
"timeout_s": N, "daemons": [{"name", "port", "token"}], "fakes": [{"name", "port"}]}.
Exit status 0, or 1 with one line on stderr (a daemon refused a message,
or the generator started less than lead_us before the first arrival).
"""
import csv
import datetime
import http.client
import json
import os
import sys
import threading
import time
import zoneinfo

USEC = 1000000
# The business profile's share of a day in each local hour (tools/simulate.c).
BUSINESS = [1, 1, 1, 1, 1, 1, 1, 2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4, 3, 3, 2, 2, 1]


def now_us():
    return time.time_ns() // 1000


def local_us(date, minutes, zone):
    """The instant of local time `minutes` after midnight of date, in µs."""
    t = datetime.datetime.combine(date, datetime.time()) + datetime.timedelta(minutes=minutes)
    return int(t.replace(tzinfo=zone).timestamp()) * USEC


def evenly(frm, to, n):
    """n arrivals evenly spaced over [frm, to), the first at frm, the spacing's
    remainder spread as simulate spreads it."""
    out = []
    if n <= 0:
        return out
    q, r = divmod(to - frm, n)
    t, acc = frm, 0
    for _ in range(n):
        out.append(t)
        t += q
        acc += r
        if acc >= n:
            acc -= n
            t += 1
    return out


def business(edges, n):
    """A day's n arrivals apportioned to its hours by largest remainder."""
    w = [BUSINESS[h] if edges[h + 1] > edges[h] else 0 for h in range(24)]
    wsum = sum(w)
    count = [n * x // wsum for x in w]
    rem = [n * x % wsum for x in w]
    given = sum(count)
    while given < n:
        best = max(range(24), key=lambda h: (rem[h], -h))
        count[best] += 1
        rem[best] = -1
        given += 1
    out = []
    for h in range(24):
        out += evenly(edges[h], edges[h + 1], count[h])
    return out


def arrivals(plan):
    """[(day, instant µs, count)], in time order: one entry per message, or
    one per blast."""
    zone = zoneinfo.ZoneInfo(plan["timezone"])
    start = datetime.date.fromisoformat(plan["start"])
    with open(plan["traffic"]) as f:
        rows = [r for r in csv.DictReader(l for l in f if l.strip() and not l.startswith("#"))]
    out = []
    prof = plan["profile"]
    for i, r in enumerate(rows):
        day = start + datetime.timedelta(days=i)
        n = int(r["offered"])
        lo, hi = local_us(day, 0, zone), local_us(day, 1440, zone)
        if prof == "even":
            out += [(i + 1, t, 1) for t in evenly(lo, hi, n)]
        elif prof == "business":
            edges = [lo] + [min(max(local_us(day, h * 60, zone), lo), hi)
                            for h in range(1, 24)] + [hi]
            out += [(i + 1, t, 1) for t in business(edges, n)]
        elif prof.startswith("blast@"):
            hh, mm = prof[6:].split(":")
            t = min(max(local_us(day, int(hh) * 60 + int(mm), zone), lo), hi - 1)
            if n:
                out.append((i + 1, t, n))
        else:
            sys.exit("traffic_gen: unknown profile %r" % prof)
    return out, len(rows)


# A socket timeout is counted on the fake clock too: the plan's
# timeout_s is a minute of real time in fake seconds.
TIMEOUT = 60


def request(port, method, path, token=None, body=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                  headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def sleep_until(t):
    """Sleeps (on the fake clock) until now >= t."""
    while True:
        left = t - now_us()
        if left <= 0:
            return
        time.sleep(left / USEC)


def main():
    global TIMEOUT
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    TIMEOUT = plan["timeout_s"]
    arr, ndays = arrivals(plan)
    zone = zoneinfo.ZoneInfo(plan["timezone"])
    start = datetime.date.fromisoformat(plan["start"])
    hh, mm = plan["sample"].split(":")
    samples_at = [(d + 1, local_us(start + datetime.timedelta(days=d), int(hh) * 60 + int(mm),
                                   zone)) for d in range(ndays)]
    if arr and now_us() > arr[0][1] - plan["lead_us"]:
        sys.exit("traffic_gen: started %.0f fake s before the first arrival, less than the "
                 "lead of %.0f s" % ((arr[0][1] - now_us()) / USEC, plan["lead_us"] / USEC))
    # At one instant the posts go before the sample.
    events = sorted([(t, 0, day, n) for day, t, n in arr] +
                    [(t, 1, day, 0) for day, t in samples_at])
    posts, samples, seq = [], [], 0
    for t, kind, day, n in events:
        sleep_until(t)
        if kind == 1:
            s = {"day": day, "planned_us": t, "status": {}, "fake": {}}
            for d in plan["daemons"]:
                st, b = request(d["port"], "GET", "/v1/status", d["token"])
                if st != 200:
                    sys.exit("traffic_gen: %s: status answered %d" % (d["name"], st))
                s["status"][d["name"]] = json.loads(b)
            for fk in plan["fakes"]:
                st, b = request(fk["port"], "GET", "/fake/stats")
                s["fake"][fk["name"]] = json.loads(b)
            s["late_us"] = now_us() - t
            samples.append(s)
            continue
        rcpts = ["d%d-m%d-%d@%s" % (day, seq, k, plan["domain"]) for k in range(n)]
        seq += 1
        body = {"personalizations": [{"to": [{"email": r}]} for r in rcpts],
                "from": {"email": "news@example.org"}, "subject": "fidelity day %d" % day,
                "content": [{"type": "text/plain", "value": "Hello"}]}
        # Every daemon at once: one's commit does not make the next late.
        late, answers = {}, {}

        def post(d):
            answers[d["name"]] = request(d["port"], "POST", "/v3/mail/send", d["token"], body)
            late[d["name"]] = now_us() - t
        threads = [threading.Thread(target=post, args=(d,)) for d in plan["daemons"]]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for d in plan["daemons"]:
            st, b = answers.get(d["name"], (0, b"no answer"))
            if st != 202:
                sys.exit("traffic_gen: %s answered %d: %r" % (d["name"], st, b[:200]))
        posts.append({"day": day, "planned_us": t, "n": n, "late_us": late})
    with open(sys.argv[2] + ".tmp", "w") as f:
        json.dump({"posts": posts, "samples": samples}, f)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])


if __name__ == "__main__":
    main()

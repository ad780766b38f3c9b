// ui.js -- refreshes the status page from GET /v1/status (served as /ui/ui.js).
"use strict";
(function () {
  var routeCols = ["type", "url", "paused", "sent", "accepted", "tempfail", "permfail",
                   "delivered", "bounce", "complaint", "inflight"];
  function $(id) { return document.getElementById(id); }
  function num(v) { return v === null || v === undefined ? "unlimited" : Number(v).toLocaleString("en-US"); }
  function pct(v) { return (100 * v).toFixed(2) + "%"; }
  function set(id, text) { var e = $(id); if (e) e.textContent = text; }
  function rows(id, list) {
    var body = $(id);
    if (!body) return;
    body.textContent = "";
    list.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (c, i) {
        var td = document.createElement("td");
        td.textContent = c;
        if (i > 0 && typeof c === "string" && isNaN(c.replace(/,/g, ""))) td.className = "t";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function render(s) {
    set("date", s.date); set("day", s.day); set("time", s.time);
    set("cap", num(s.cap)); set("used", num(s.used)); set("remaining", num(s.remaining));
    set("hourly_cap", s.hourly_cap === null ? "none" : num(s.hourly_cap));
    var g = s.gate, st = $("gate-state");
    if (st) { st.textContent = g.state; st.className = g.state; }
    set("gate-worst", g.worst_today); set("gate-reason", g.reason || "none");
    set("bounce-rate", pct(g.bounce_rate)); set("bounce-warn", pct(g.bounce_warn));
    set("bounce-halt", pct(g.bounce_halt)); set("complaint-rate", pct(g.complaint_rate));
    set("complaint-warn", pct(g.complaint_warn)); set("complaint-halt", pct(g.complaint_halt));
    rows("routes", Object.keys(s.routes).map(function (r) {
      var o = s.routes[r];
      return [r].concat(routeCols.map(function (k) {
        return k === "paused" ? (o.paused ? "yes" : "no") : typeof o[k] === "number" ? num(o[k]) : String(o[k] || "");
      }));
    }));
    rows("isps", Object.keys(s.isps).map(function (i) {
      var o = s.isps[i];
      return [i, num(o.new.sent), num(o.old.sent), num(o.new.accepted), num(o.new.tempfail),
              num(o.new.permfail), o.new.share_limit === null ? "none" : num(o.new.share_limit),
              o.queued === null ? "?" : num(o.queued)];
    }));
    var q = s.queue;
    set("q-queued", num(q.queued)); set("q-inflight", num(q.inflight));
    set("q-sent", num(q.sent)); set("q-failed", num(q.failed));
    rows("events", (s.recent_events || []).map(function (e) {
      return [e.time, e.kind, e.route === null ? "" : e.route, e.text];
    }));
    set("updated", s.time);
    document.body.setAttribute("data-live", s.time);
  }
  function chart(id, url) {
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : Promise.reject(r.status);
    }).then(function (svg) { var e = $(id); if (e) e.innerHTML = svg; }, function () {});
  }
  function poll() {
    fetch("/v1/status", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : Promise.reject("HTTP " + r.status);
    }).then(function (s) { render(s); set("error", ""); },
            function (e) { set("error", "refresh failed: " + e); });
    chart("hours", "/ui/hours.svg");
    chart("plan", "/ui/plan.svg");
  }
  poll();
  setInterval(poll, 5000);
})();

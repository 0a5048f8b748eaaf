// The admin page: reads /state.json and /metrics, and explains requests with
// POST /explain. Everything is written with textContent (never as HTML): details
// hold claims from pasted tokens. Nothing is kept in storage.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
}

async function loadState() {
  const r = await fetch("/state.json", { cache: "no-store" });
  const s = await r.json();
  const ready = document.getElementById("ready");
  ready.textContent = s.ready ? "ready" : "not ready";
  ready.className = "badge " + (s.ready ? "ok" : "bad");
  document.getElementById("now").textContent = "as of " + s.now;
  fill("providers", s.providers.map((p) => row([
    p.name,
    (p.issuer || "(any issuer)") + (p.audiences.length ? " / " + p.audiences.join(", ") : ""),
    p.keys.length
      ? p.keys.map((k) => (k.kid || "(no kid)") + " " + k.algorithms.join("/") + " " + k.type).join("\n")
      : "no keys",
    p.source,
    p.fetched_at || "-",
    p.next_refresh || "-",
    p.last_error ? p.last_error.at + ": " + p.last_error.error : "-",
  ])));
  fill("rules", s.rules.map((r, i) => {
    const match = [];
    if (r.methods.length) match.push(r.methods.join(","));
    match.push(r.hosts.length ? r.hosts.join(", ") : "any host");
    match.push(r.paths.length ? r.paths.join(", ") : "any path");
    const needs = [r.access];
    if (r.providers.length) needs.push("from " + r.providers.join(", "));
    needs.push(...r.claims, ...r.scopes.map((s) => "scope " + s));
    if (r.deny_template) needs.push("(custom deny)");
    return row([i + 1, r.name, match.join(" "), needs.join("; "), r.mode]);
  }));
}

function parseLabels(text) {
  const labels = {};
  const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(text)) !== null) labels[m[1]] = m[2];
  return labels;
}

async function loadCounters() {
  const r = await fetch("/metrics", { cache: "no-store" });
  const text = await r.text();
  const rows = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("portcullis_decisions_total{")) continue;
    const end = line.lastIndexOf("}");
    const l = parseLabels(line.slice(line.indexOf("{") + 1, end));
    const count = line.slice(end + 1).trim();
    rows.push(row([l.result, l.reason || "-", l.rule || "-", l.provider || "-", l.frontend, count]));
  }
  fill("counters", rows.length ? rows : [row(["no decisions yet", "", "", "", "", ""])]);
}

function headerLines(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    const name = line.slice(0, at).trim().toLowerCase();
    const value = line.slice(at + 1).trim();
    headers[name] = headers[name] ? headers[name] + ", " + value : value;
  }
  return headers;
}

async function explain(event) {
  event.preventDefault();
  const error = document.getElementById("error");
  error.hidden = true;
  const token = document.getElementById("token").value.trim();
  const body = {
    method: document.getElementById("method").value,
    url: document.getElementById("url").value.trim(),
    headers: headerLines(document.getElementById("headers").value),
    token: token || null,
  };
  const r = await fetch("/explain", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
  });
  const x = await r.json();
  if (r.status !== 200) {
    error.textContent = "Cannot explain: " + (x.detail || r.status);
    error.hidden = false;
    return;
  }
  const verdict = document.getElementById("verdict");
  verdict.textContent = x.decision.toUpperCase() + " " + x.status +
    (x.reason ? " " + x.reason : "") +
    " (rule " + (x.rule || "-") + ", provider " + (x.provider || "-") + ")";
  verdict.className = x.decision;
  fill("steps", x.steps.map((s) => row([
    el("td", s.ok ? "ok" : "FAIL", s.ok ? "ok-cell" : "bad-cell"),
    s.step,
    el("td", s.detail, "mono"),
  ])));
  document.getElementById("result").hidden = false;
  loadCounters();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("debugger").addEventListener("submit", (e) => {
    explain(e).catch((err) => {
      const error = document.getElementById("error");
      error.textContent = "Cannot explain: " + err;
      error.hidden = false;
    });
  });
  loadState().catch(() => {});
  loadCounters().catch(() => {});
  setInterval(() => { loadState().catch(() => {}); loadCounters().catch(() => {}); }, 5000);
});

// The Apex console: fetch /console/state every few seconds and fill the tables.
// Every value is written with textContent (never as HTML); every change is a POST that
// carries the session's CSRF token in X-CSRF-Token.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const refreshSeconds = Number(document.querySelector('meta[name="refresh-seconds"]').content) || 5;

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined || text === "" ? "-" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(id, items, build, empty) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const item of items) {
    const row = document.createElement("tr");
    build(row, item);
    body.appendChild(row);
  }
  if (!items.length) {
    const row = document.createElement("tr");
    const td = cell(row, empty, "muted");
    td.colSpan = document.querySelectorAll(`#${id} thead th`).length;
    body.appendChild(row);
  }
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function pollers(source) {
  const accounts = (source.accounts || []).concat((source.reconcile || []).map((a) => ({ ...a, reconcile: true })));
  if (!accounts.length) return "";
  return accounts
    .map((a) => {
      const what = a.reconcile ? "reconcile " : "";
      const running = "running" in a ? (a.running ? "running" : "stopped") : "unknown";
      const cursor = a.cursor ? `, cursor ${String(a.cursor).slice(0, 24)}` : "";
      const last = a.last_success ? `, last success ${a.last_success}` : "";
      return `${what}${a.account}: ${running}${cursor}${last}`;
    })
    .join("; ");
}

function render(doc) {
  const st = doc.status;
  const health = document.getElementById("health");
  health.textContent = st.healthy ? "healthy" : "unhealthy";
  health.className = "badge " + (st.healthy ? "ok" : "bad");
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()} (every ${refreshSeconds} s)`;
  const problems = document.getElementById("problems");
  problems.replaceChildren();
  for (const p of st.problems) {
    const li = document.createElement("li");
    li.textContent = p;
    problems.appendChild(li);
  }
  fill("sources", st.sources || [], (row, s) => {
    cell(row, s.name);
    cell(row, s.mode);
    cell(row, s.priority);
    cell(row, s.last_write);
    cell(row, pollers(s));
  }, "no source installed");
  fill("backlog", st.inbox || [], (row, r) => {
    row.dataset.source = r.source;
    cell(row, r.source);
    cell(row, r.backlog, r.backlog ? "bad" : "");
    cell(row, age(r.oldest_pending_seconds));
    cell(row, r.stuck, r.stuck ? "bad" : "");
    cell(row, r.rate_per_minute);
  }, "the inbox is empty");
  fill("checks", Object.entries(st.checks || {}), (row, [name, value]) => {
    cell(row, name);
    cell(row, value, value === "ok" ? "ok" : value.startsWith("skipped") ? "muted" : "error");
  }, "no check ran");
  fill("breakers", st.breakers || [], (row, b) => {
    cell(row, `${b.sink}/${b.op}`);
    cell(row, b.state, b.state === "closed" ? "ok" : "error");
    cell(row, b.endpoint);
  }, "no breaker reported (APEX_STATUS_METRICS_URLS names the workers' /metrics)");
  fill("workers", st.workers || [], (row, w) => {
    cell(row, w.queue);
    cell(row, w.workflow_pollers, w.workflow_pollers ? "" : "bad");
    cell(row, w.activity_pollers, w.activity_pollers ? "" : "bad");
    cell(row, (w.identities || []).join(", "));
  }, st.workers ? "no task queue" : "Temporal did not answer");
  fill("dead-letters", doc.dead_letters || [], (row, d) => {
    row.dataset.id = d.id;
    cell(row, d.id);
    cell(row, d.batch_id.endsWith(":quarantine") ? "quarantine" : "failed compensation");
    cell(row, d.created_at);
    cell(row, `${d.records}: ${(d.keys || []).join(", ")}`);
    cell(row, (d.failed || []).join(", "));
    cell(row, d.error, "error");
    const actions = cell(row, "", "actions");
    actions.textContent = "";
    for (const action of ["replay", "discard"]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = action;
      button.dataset.action = action;
      button.dataset.id = d.id;
      button.textContent = action;
      button.addEventListener("click", () => act(d.id, action));
      actions.appendChild(button);
    }
  }, doc.dead_letters_error || "no open dead letter");
  fill("recent", doc.recent || [], (row, r) => {
    cell(row, r.source);
    cell(row, r.id);
    cell(row, r.version);
    cell(row, r.written_at);
    cell(row, r.origin);
    const link = document.createElement("a");
    link.href = `/console/trace?${new URLSearchParams({ source: r.source, id: r.id })}`;
    link.textContent = "trace";
    link.className = "trace";
    const td = document.createElement("td");
    td.appendChild(link);
    row.appendChild(td);
  }, doc.recent_error || "nothing written yet");
}

function say(text, bad) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = bad ? "error" : "muted";
}

async function refresh() {
  try {
    const resp = await fetch("/console/state", { credentials: "same-origin", cache: "no-store" });
    if (resp.status === 401) {
      window.location.reload(); // the session ended: back to the sign-in form
      return;
    }
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    render(await resp.json());
  } catch (err) {
    say(`could not refresh: ${err.message}`, true);
  }
}

async function act(id, action) {
  if (action === "discard" && !window.confirm(`Discard dead letter ${id}? It is kept, marked discarded.`)) return;
  say(`${action} of dead letter ${id}…`);
  const resp = await fetch(`/console/dead-letters/${id}/${action}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf },
  });
  const body = await resp.json().catch(() => ({}));
  if (resp.ok) {
    const detail = action === "replay" ? ` (${body.written} written, ${body.skipped} skipped)` : "";
    say(`dead letter ${id}: ${body.status}${detail}`);
  } else {
    say(`dead letter ${id}: ${action} failed: ${body.error || resp.status}`, true);
  }
  await refresh();
}

document.getElementById("logout").addEventListener("submit", async (event) => {
  event.preventDefault();
  await fetch("/console/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  window.location.reload();
});

refresh();
setInterval(refresh, refreshSeconds * 1000);

// The operator console page: reads the same API routes as any client, with the operator's token.
// Live: a server-sent event stream read through fetch (EventSource cannot send an Authorization header).
"use strict";
const state = { token: null, picture: null, microgridId: null, shownCycle: null, renders: 0, plots: [] };
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const kw = (w) => (w == null ? "-" : (w / 1000).toFixed(1) + " kW");

function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("mgrid-token", fromHash); history.replaceState(null, "", location.pathname); }
  return sessionStorage.getItem("mgrid-token");
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: "Bearer " + state.token,
    "Content-Type": "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${r.status} ${body.reason_code || ""}: ${body.message || r.statusText}`);
  return body;
}

function showError(e) { const el = $("#error"); el.hidden = !e; el.textContent = e ? String(e.message || e) : ""; }

async function pictureUrl() {
  const m = location.pathname.match(/^\/console\/(depots|microgrids)\/([0-9a-f-]{36})/);
  if (m) return `/api/operator/${m[1]}/${m[2]}`;
  const dir = await api("/api/operator/microgrids");
  if (!dir.microgrids.length) throw new Error("no microgrid known yet: run a scenario (./mgrid demo)");
  return `/api/operator/microgrids/${dir.microgrids[0].microgrid_id}`;
}

function bar(allocated, limit, requested) {
  if (allocated == null) return '<span class="muted">-</span>';
  const ofRequest = limit == null;  // a connector without a limit of its own: shown against its request
  if (ofRequest) limit = requested;
  if (limit == null) return kw(allocated);
  const ratio = limit > 0 ? allocated / limit : 1;
  const cls = ofRequest ? "request" : ratio >= 0.95 ? "full" : ratio >= 0.75 ? "near" : "ok";
  return `<div class="bar ${cls}" title="${ratio.toFixed(2)}"><span style="width:${Math.min(100, ratio * 100)}%"></span></div>`
    + `<span class="bar-label">${kw(allocated)} ${ofRequest ? "of " + kw(limit) + " asked" : "/ " + kw(limit)}</span>`;
}

function renderTree(p) {
  const names = Object.fromEntries(p.nodes.map((n) => [n.node_id, n.name]));
  $("#tree tbody").innerHTML = p.nodes.map((n) => {
    const stale = n.telemetry_state === "STALE" || n.telemetry_state === "MISSING" || n.telemetry_state === "INVALID";
    return `<tr data-node-id="${n.node_id}" data-allocated="${n.allocated_watts ?? ""}" data-effective="${n.effective_limit_watts ?? ""}"
      data-telemetry="${n.telemetry_state ?? ""}" class="${stale ? "stale" : ""}">
      <td style="padding-left:${0.5 + n.depth * 1.2}em">${esc(n.name)}</td><td>${n.node_type}</td>
      <td>${bar(n.allocated_watts, n.effective_limit_watts, n.requested_watts)}</td>
      <td>${esc(n.effective_limit_source ?? "-")}</td>
      <td>${n.baseline_limits.map((l) => `${l.constraint_type} ${kw(l.limit_watts)}`).join("<br>") || "-"}</td>
      <td>${n.envelopes.map((e) => `${e.envelope_type} ${e.status} ${kw(e.current_limit_watts)}`).join("<br>") || "-"}</td>
      <td>${kw(n.measured_watts)}${stale ? `<div class="stale-note">${n.telemetry_state}${n.fallback ? ", on " + esc(n.fallback) : ""}</div>` : ""}</td>
      <td>${n.binding_constraint_ref ? esc(n.binding_source) + " " + esc(names[n.binding_constraint_ref] || n.binding_constraint_ref.slice(0, 8)) : "-"}</td></tr>`;
  }).join("");
}

const cycleItem = (c) => `<li data-cycle-id="${c.cycle_id}" class="${c.cycle_id === state.shownCycle ? "selected" : ""}">
    <span class="${c.outcome}">${c.outcome}</span> ${new Date(c.ended_at).toLocaleTimeString()} ${esc(c.source)}
    ${kw(c.total_allocated_watts)} of ${kw(c.total_requested_watts)}
    <span class="muted">${c.reason_codes.join(", ")}${c.breaches.length ? ` · ${c.breaches.length} breach(es)` : ""}</span></li>`;

function renderCycles(p) {
  $("#cycles").innerHTML = p.cycles.map(cycleItem).join("");
  $("#cycles").dataset.latest = p.cycles.length ? p.cycles[0].cycle_id : "";
}

function noteLatency(cycle, parts) {
  // How long after the cycle completed (its ended_at) the page shows it: the live path end to end.
  if (state.latestSeen === cycle.cycle_id) return;
  const first = !state.latestSeen;
  state.latestSeen = cycle.cycle_id;
  if (first) return;
  const latency = Date.now() - Date.parse(cycle.ended_at);
  document.body.dataset.lastLatencyMs = latency;
  document.body.dataset.lastLatencyParts = JSON.stringify(parts);
  $("#latency").textContent = `last cycle shown ${latency} ms after it completed`;
}

function showChange(change) {
  // The event carries the latest cycle: show it at once (list and tree bars), then reload the rest.
  const c = change.latest_cycle;
  if (!c || !state.picture || state.latestSeen === c.cycle_id) return;
  if (!document.querySelector(`#cycles li[data-cycle-id="${c.cycle_id}"]`)) $("#cycles").insertAdjacentHTML("afterbegin", cycleItem(c));
  $("#cycles").dataset.latest = c.cycle_id;
  for (const n of change.nodes) {
    const row = document.querySelector(`#tree tr[data-node-id="${n.node_id}"]`);
    if (!row) continue;
    row.dataset.allocated = n.allocated_watts;
    row.dataset.effective = n.effective_limit_watts ?? "";
    row.children[2].innerHTML = bar(n.allocated_watts, n.effective_limit_watts, n.requested_watts);
  }
  noteLatency(c, { signalled: state.changedAt - Date.parse(c.ended_at), render: Date.now() - state.changedAt });
}

async function explain(cycleId) {
  state.shownCycle = cycleId;
  document.querySelectorAll("#cycles li").forEach((li) => li.classList.toggle("selected", li.dataset.cycleId === cycleId));
  const e = await api(`/api/operator/microgrids/${state.microgridId}/cycles/${cycleId}/explanation`);
  const names = Object.fromEntries(state.picture.nodes.map((n) => [n.node_id, n.name]));
  $("#explanation").textContent = e.explanation;
  $("#explanation").dataset.cycleId = cycleId;
  $("#explanation-connectors tbody").innerHTML = e.connectors.map((c) => `<tr><td>${esc(names[c.node_id] || c.node_id)}</td>
    <td>${kw(c.allocated_watts)} of ${kw(c.requested_watts)}</td><td>${esc(c.binding_source || "-")} ${esc(c.binding_constraint_ref || "")}</td></tr>`).join("");
}

function renderSide(p) {
  $("#capacities tbody").innerHTML = p.circuit_capacities.map((c) => `<tr><td>${c.circuit_id.slice(0, 8)}</td>
    <td>${kw(c.effective_capacity_watts)}</td><td>${kw(c.previous_capacity_watts)}</td><td>${c.reason}<br><span class="muted">${esc(c.basis)}</span></td>
    <td>${new Date(c.evaluated_at).toLocaleTimeString()}</td></tr>`).join("");
  $("#status-cards").innerHTML = p.capability_status.map((s) => `<span class="card">${s.capability_type}
    ${s.latest_operational_status} · ${s.freshness_seconds} s ago</span>`).join("") || '<span class="muted">none reported</span>';
  const names = Object.fromEntries(p.nodes.map((n) => [n.node_id, n.name]));
  $("#envelopes tbody").innerHTML = p.envelopes.map((e) => `<tr data-envelope-id="${e.envelope_id}"><td>${esc(names[e.node_id])}</td>
    <td>${e.envelope_type}</td><td>${e.status}</td><td>${esc(e.source_ref)}</td>
    <td>${e.blocks.map((b) => `${new Date(b.block_from).toLocaleTimeString()}–${new Date(b.block_to).toLocaleTimeString()} ${kw(b.target_watts ?? b.max_limit_watts)}`).join("<br>")}</td>
    <td>${e.transitions.map((t) => `${t.previous_status || "·"} → ${t.status} (${t.transition})`).join("<br>")}</td></tr>`).join("");
}

function renderTimelines(p) {
  state.plots.forEach((u) => u.destroy());
  state.plots = [];
  const box = $("#timelines");
  box.innerHTML = "";
  for (const t of p.timelines) {
    const el = document.createElement("div");
    el.className = "timeline";
    el.dataset.nodeId = t.node_id;
    el.dataset.points = t.points.length;
    el.innerHTML = `<div>${esc(t.name)} ${t.circuit_id ? `<span class="muted">circuit ${t.circuit_id.slice(0, 8)}</span>` : ""}</div>`;
    box.appendChild(el);
    // One x per cycle, plus each envelope block's edges so a block shows over its whole extent.
    const at = new Map(t.points.map((q) => [Date.parse(q.at) / 1000, q]));
    const edges = t.bands.flatMap((b) => [Date.parse(b.start) / 1000, Date.parse(b.end) / 1000 - 1]);
    const xs = [...new Set([...at.keys(), ...edges])].sort((a, b) => a - b);
    const band = (x) => { const b = t.bands.find((b) => Date.parse(b.start) / 1000 <= x && x < Date.parse(b.end) / 1000); return b ? b.limit_watts : null; };
    const col = (f) => xs.map((x) => (at.has(x) ? f(at.get(x)) : null));
    const data = [xs, col((q) => q.requested_watts), col((q) => q.drawn_watts), col((q) => q.allocated_watts),
      col((q) => q.effective_limit_watts), xs.map(band)];
    const opts = { width: Math.max(400, box.clientWidth - 20), height: 180, scales: { x: { time: true } },
      axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => (v / 1000).toFixed(0) + " kW") }],
      series: [{}, { label: "requested", stroke: "#7a5cc7", spanGaps: true }, { label: "drawn", stroke: "#1f77b4", spanGaps: true },
        { label: "allocated", stroke: "#2e9d57", width: 2, spanGaps: true },
        { label: "effective limit", stroke: "#c9352b", dash: [6, 4], spanGaps: true },
        { label: "envelope block", stroke: "#e0a10088", fill: "#e0a10022", paths: uPlot.paths.stepped({ align: 1 }) }] };
    state.plots.push(new uPlot(opts, data, el));
  }
}

function renderWhatIf(p) {
  const canWrite = p.viewer.can_write;
  $("#what-if").hidden = !canWrite;
  $("#controls").hidden = !canWrite;
  if (!canWrite) return;
  const kind = $("#wi-kind").value;
  const sel = $("#wi-node"), keep = sel.value;
  const options = kind === "tou_limit"
    ? p.timelines.filter((t) => t.circuit_id).map((t) => [t.circuit_id, `${t.name} (circuit)`])
    : p.nodes.filter((n) => n.node_type !== "CONNECTOR" || kind === "node_limit").map((n) => [n.node_id, n.name]);
  sel.innerHTML = options.map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join("");
  if (options.some(([v]) => v === keep)) sel.value = keep;
}

async function previewWhatIf(ev) {
  ev.preventDefault();
  const kind = $("#wi-kind").value, target = $("#wi-node").value, watts = Number($("#wi-watts").value);
  const from = new Date(Date.now() - 60000), to = new Date(Date.now() + Number($("#wi-minutes").value) * 60000);
  const body = kind === "node_limit" ? { node_limit: { node_id: target, limit_watts: watts } }
    : kind === "envelope" ? { envelope: { node_id: target, envelope_type: "OVERRIDE", blocks: [{ block_from: from.toISOString(), block_to: to.toISOString(), max_limit_watts: watts }] } }
    : { tou_limit: { circuit_id: target, periods: [{ start: from.toISOString(), end: to.toISOString(), limit_watts: watts }] } };
  try {
    const r = await api(`/api/operator/microgrids/${state.microgridId}/what-if`, { method: "POST", body: JSON.stringify(body) });
    $("#wi-summary").innerHTML = `now <b class="${r.before.outcome}">${r.before.outcome}</b> ${kw(r.before.total_allocated_watts)}
      (${r.before.reason_codes.join(", ") || "no reason codes"}) → would be <b class="${r.after.outcome}">${r.after.outcome}</b>
      ${kw(r.after.total_allocated_watts)} (${r.after.reason_codes.join(", ") || "no reason codes"}). Preview ${r.preview_id.slice(0, 8)}, nothing stored.`;
    $("#wi-result tbody").innerHTML = r.connectors.map((c) => `<tr data-node-id="${c.node_id}" data-after="${c.after_watts}" data-before="${c.before_watts}">
      <td>${esc(c.name)}</td><td>${kw(c.requested_watts)}</td><td>${kw(c.before_watts)}</td><td>${kw(c.after_watts)}</td>
      <td class="${c.change}">${c.change} ${c.delta_watts ? kw(c.delta_watts) : ""}</td><td>${esc(c.binding_after || "-")}</td></tr>`).join("");
    showError(null);
  } catch (e) { showError(e); }
}

async function refresh() {
  try {
    const asked = Date.now();
    const p = await api(state.url);
    const fetched = Date.now();
    state.picture = p;
    state.microgridId = p.microgrid_id;
    $("#where").textContent = `depot ${p.depot_id.slice(0, 8)} · microgrid ${p.microgrid_id.slice(0, 8)} · topology v${p.topology_version}`;
    $("#viewer").textContent = `${p.viewer.subject}${p.viewer.can_write ? " (operator:write)" : " (read only)"}`;
    renderTree(p); renderCycles(p); renderSide(p); renderTimelines(p); renderWhatIf(p);
    $("#main").hidden = false;
    state.renders += 1;
    document.body.dataset.renders = state.renders;
    if (p.cycles.length) noteLatency(p.cycles[0], { fetch: fetched - asked, render: Date.now() - fetched });
    showError(null);
  } catch (e) { showError(e); }
}

async function listen() {
  // Read the SSE stream with fetch so the bearer token travels in the header, as on every other route.
  for (;;) {
    try {
      const r = await fetch(`/api/operator/microgrids/${state.microgridId}/events`, { headers: { Authorization: "Bearer " + state.token } });
      if (!r.ok) throw new Error("event stream " + r.status);
      $("#live").textContent = "live"; $("#live").classList.add("live");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          if (/^event: changed$/m.test(frame)) {
            state.changedAt = Date.now();
            const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
            try { showChange(JSON.parse(data)); } catch (e) { /* the reload below shows it */ }
            await refresh();
          }
        }
      }
    } catch (e) { /* fall through: reconnect */ }
    $("#live").textContent = "reconnecting"; $("#live").classList.remove("live");
    await new Promise((ok) => setTimeout(ok, 1000));
    await refresh();
  }
}

async function start() {
  state.token = token();
  if (!state.token) { $("#login").hidden = false; return; }
  try { state.url = await pictureUrl(); } catch (e) { showError(e); return; }
  await refresh();
  if (!state.microgridId) return;
  $("#cycles").addEventListener("click", (e) => { const li = e.target.closest("li[data-cycle-id]"); if (li) explain(li.dataset.cycleId).catch(showError); });
  $("#what-if-form").addEventListener("submit", previewWhatIf);
  $("#wi-kind").addEventListener("change", () => renderWhatIf(state.picture));
  $("#rebalance").addEventListener("click", () => api(`/api/microgrid/${state.microgridId}/rebalance`, { method: "POST",
    headers: { "Idempotency-Key": "console-" + Date.now() }, body: "{}" }).catch(showError));
  listen();
}

$("#login-form").addEventListener("submit", (e) => { e.preventDefault(); sessionStorage.setItem("mgrid-token", $("#token").value.trim()); location.reload(); });
start();

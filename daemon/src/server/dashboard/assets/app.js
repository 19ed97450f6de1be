// The dashboard: reads the daemon's JSON and draws it; refreshes itself every few seconds.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function get(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) {
    window.location = "/dashboard/signin";
    throw new Error("signed out");
  }
  return response.json();
}

function when(seconds) {
  if (!seconds) return "—";
  const d = new Date(seconds * 1000);
  return d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

function duration(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m`;
}

function quotaBar(name, window) {
  const used = Math.max(0, Math.min(100, window.used_percent));
  const fill = el("div", { class: "fill" + (used >= 90 ? " full" : used >= 75 ? " high" : "") });
  fill.style.width = used + "%";
  return el("div", { class: "quota" },
    el("div", { class: "label" }, el("span", {}, `${name}: ${used.toFixed(0)}% used`),
      el("span", { class: "muted" }, window.resets_at ? "resets " + when(window.resets_at) : "")),
    el("div", { class: "track", role: "meter", "aria-valuenow": used.toFixed(0),
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": name }, fill));
}

function accountCard(a) {
  const card = el("div", { class: "card account" },
    el("h3", {}, a.label || a.email || a.id),
    el("div", { class: "muted" }, `${a.id}${a.plan ? " · " + a.plan : ""}`),
    el("div", { class: "state " + a.state }, a.state.replace("_", " ") +
      (a.cooldown_until ? " until " + when(a.cooldown_until) : "")));
  if (a.primary) card.append(quotaBar("5 hours", a.primary));
  if (a.secondary) card.append(quotaBar("week", a.secondary));
  if (!a.primary && !a.secondary) card.append(el("p", { class: "muted" }, "quota not known yet"));
  card.append(el("div", { class: "muted" }, `${a.requests} requests${a.pinned ? " · pinned" : ""}`));
  if (a.login_reason) card.append(el("div", { class: "error" }, a.login_reason));
  return card;
}

async function refreshStatus() {
  const s = await get("/dashboard/api/status");
  document.getElementById("daemon").textContent =
    `${s.daemon_version} · up ${duration(s.uptime_seconds)} · ${s.listen} · ${s.strategy}` +
    ` · ${s.in_flight} in flight`;
  const box = document.getElementById("accounts");
  box.replaceChildren(...(s.accounts.length ? s.accounts.map(accountCard)
    : [el("p", { class: "muted" }, "No account yet: sign in with codexctl login.")]));
}

async function refreshUsage() {
  const range = document.getElementById("range").value;
  const view = await get("/dashboard/api/usage?range=" + range);
  const totals = view.buckets.map((b) => ({
    start: b.start,
    requests: b.rows.reduce((n, r) => n + r.requests, 0),
    input: b.rows.reduce((n, r) => n + r.input_tokens, 0),
    cached: b.rows.reduce((n, r) => n + r.cached_tokens, 0),
    output: b.rows.reduce((n, r) => n + r.output_tokens, 0),
  }));
  const box = document.getElementById("usage");
  if (!totals.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No usage in this range yet."));
    return;
  }
  const slots = range === "month" ? 30 : 288;
  const step = view.step_seconds;
  const end = Math.floor(Date.now() / 1000 / step) * step;
  const max = Math.max(...totals.map((t) => t.requests), 1);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${slots} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  for (const t of totals) {
    const slot = slots - 1 - Math.round((end - t.start) / step);
    if (slot < 0 || slot >= slots) continue;
    const h = (t.requests / max) * 100;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", slot);
    rect.setAttribute("y", 100 - h);
    rect.setAttribute("width", 0.8);
    rect.setAttribute("height", h);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${new Date(t.start * 1000).toLocaleString()}: ${t.requests} requests, ${t.input} in, ${t.output} out`;
    rect.append(title);
    svg.append(rect);
  }
  const sum = (k) => totals.reduce((n, t) => n + t[k], 0);
  const input = sum("input");
  const hit = input ? Math.round((sum("cached") * 100) / input) + "%" : "—";
  svg.setAttribute("aria-label", `${sum("requests")} requests`);
  box.replaceChildren(svg, el("p", { class: "muted" },
    `${sum("requests")} requests · ${input} input tokens (${hit} from the prompt cache) · ${sum("output")} output tokens`));
}

async function refreshRequests() {
  const surface = document.getElementById("surface").value;
  const failed = document.getElementById("failed").checked;
  const data = await get(`/dashboard/api/requests?limit=200&failed=${failed}&surface=${encodeURIComponent(surface)}`);
  const body = document.querySelector("#requests tbody");
  const rows = [];
  for (const r of data.requests) {
    const bad = r.status >= 400 || r.error;
    rows.push(el("tr", { class: bad ? "failed" : "" },
      el("td", {}, new Date(r.at_ms).toLocaleTimeString()), el("td", {}, r.surface),
      el("td", {}, `${r.method} ${r.path}`), el("td", {}, r.model || "—"), el("td", {}, r.account || "—"),
      el("td", { class: "num" }, r.status), el("td", { class: "num" }, r.duration_ms + " ms"),
      el("td", { class: "num" }, r.first_byte_ms == null ? "—" : r.first_byte_ms + " ms"),
      el("td", { class: "num" }, r.input_tokens), el("td", { class: "num" }, r.output_tokens)));
    if (r.error) rows.push(el("tr", { class: "failed" }, el("td", { class: "error", colspan: "10" }, r.error)));
  }
  body.replaceChildren(...rows);
}

function refreshAll() {
  return Promise.all([refreshStatus(), refreshUsage(), refreshRequests()]).catch(() => {});
}

document.getElementById("signout").addEventListener("submit", async (event) => {
  event.preventDefault();
  await fetch("/dashboard/signout", { method: "POST", headers: { "x-csrf-token": csrf }, credentials: "same-origin" });
  window.location = "/dashboard/signin";
});
for (const id of ["range", "surface", "failed"]) {
  document.getElementById(id).addEventListener("change", refreshAll);
}
refreshAll();
setInterval(refreshAll, 5000);

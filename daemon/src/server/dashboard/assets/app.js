// The dashboard: reads the daemon's JSON and draws it, refreshing itself every few seconds
// while the page is visible; actions go to /dashboard/api/control as the same requests
// codexctl sends over the control socket.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 3000;
let names = new Map(); // account id → the name shown

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function signedOut(response) {
  if (response.status === 401) {
    window.location = "/dashboard/signin";
    throw new Error("signed out");
  }
}

async function get(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  signedOut(response);
  return response.json();
}

async function send(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "x-csrf-token": csrf, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  signedOut(response);
  const text = await response.text();
  let answer;
  try {
    answer = text ? JSON.parse(text) : {};
  } catch {
    answer = { response: "error", kind: "failed", message: text || response.statusText };
  }
  return answer;
}

let noticeTimer;
function notice(text, bad = false) {
  const box = $("notice");
  box.textContent = text;
  box.className = bad ? "bad" : "";
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, bad ? 12000 : 5000);
}

// Runs a control request; reports its message or error; refreshes the page's data.
async function control(request, done) {
  const answer = await send("POST", "/dashboard/api/control", request);
  if (answer.response === "error") {
    notice(answer.message || "failed", true);
    return null;
  }
  if (done) notice(done(answer));
  else if (answer.message) notice(answer.message);
  refreshStatus().catch(() => {});
  return answer;
}

function when(seconds) {
  if (!seconds) return "—";
  const d = new Date(seconds * 1000);
  return d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600),
    m = Math.floor((seconds % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function count(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(0) + "k";
  return String(n);
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

// Links from the auth server are shown only when they are web addresses.
function webUrl(url) {
  return /^https?:\/\//i.test(url) ? url : "#";
}

function labelForm(a, card) {
  const open = card.querySelector("form.row input");
  if (open) return open.focus();
  const input = el("input", { type: "text", maxlength: "64", value: a.label || "",
    placeholder: "label", "aria-label": "label" });
  const form = el("form", { class: "row" }, input, el("button", { type: "submit" }, "Save"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const label = input.value.trim();
    await control({ request: "account_label", account: a.id, label: label || null });
  });
  card.append(form);
  input.focus();
}

function accountCard(a) {
  const name = a.label || a.email || a.id;
  const card = el("div", { class: "card account", "data-account": a.id },
    el("h3", {}, name),
    el("div", { class: "muted" }, `${a.label && a.email ? a.email + " · " : ""}${a.id}${a.plan ? " · " + a.plan : ""}`),
    el("div", { class: "state " + a.state }, a.state.replace("_", " ") +
      (a.cooldown_until ? " until " + when(a.cooldown_until) : "") + (a.pinned ? " · pinned" : "")));
  if (a.primary) card.append(quotaBar("5 hours", a.primary));
  if (a.secondary) card.append(quotaBar("week", a.secondary));
  if (!a.primary && !a.secondary) card.append(el("p", { class: "muted" }, "quota not known yet"));
  const day = lastDay.get(a.id) || { requests: 0, tokens: 0 };
  card.append(el("div", { class: "muted" }, `last 24 h: ${plural(day.requests, "request")}, ${count(day.tokens)} tokens` +
    (a.quota_updated_at ? ` · quota read ${when(a.quota_updated_at)}` : "")));
  if (a.login_reason) card.append(el("div", { class: "error" }, a.login_reason));
  const failure = lastErrors[a.id];
  if (failure) {
    card.append(el("div", { class: "last-error" }, `last error ${new Date(failure.at_ms).toLocaleTimeString()}: `,
      failure.error || `status ${failure.status}`));
  }
  const disabled = a.state === "disabled";
  card.append(el("div", { class: "actions" },
    el("button", { type: "button", onclick: () => control({ request: "account_refresh", account: a.id },
      () => `${name}: tokens and quota refreshed`) }, "Refresh"),
    a.pinned
      ? el("button", { type: "button", onclick: () => control({ request: "rotate_unpin" }) }, "Unpin")
      : el("button", { type: "button", onclick: () => control({ request: "rotate_pin", account: a.id }) }, "Pin"),
    el("button", { type: "button", onclick: () => control({ request: disabled ? "account_enable" : "account_disable", account: a.id }) },
      disabled ? "Enable" : "Disable"),
    el("button", { type: "button", onclick: () => labelForm(a, card) }, "Label"),
    el("button", { type: "button", class: "danger", onclick: () => {
      if (window.confirm(`Sign ${name} out and remove it from the pool?`)) {
        control({ request: "logout", account: a.id }, () => `${name} removed`);
      }
    } }, "Remove")));
  return card;
}

// Keeps a card the person is typing in (a label form) instead of redrawing it.
function editing(box) {
  const active = document.activeElement;
  return active && box.contains(active) && active.tagName === "INPUT";
}

let lastDay = new Map(); // account id → {requests, tokens} over the last 24 h
let lastErrors = {}; // account id → its latest failed request

async function refreshStatus() {
  const [s, day] = await Promise.all([get("/dashboard/api/status"), get("/dashboard/api/usage?range=day")]);
  lastErrors = s.last_errors || {};
  lastDay = new Map();
  for (const b of day.buckets) {
    for (const r of b.rows) {
      const t = lastDay.get(r.account) || { requests: 0, tokens: 0 };
      t.requests += r.requests;
      t.tokens += r.input_tokens + r.output_tokens;
      lastDay.set(r.account, t);
    }
  }
  $("daemon").textContent =
    `${s.daemon_version} · up ${duration(s.uptime_seconds)} · ${s.listen} · ${s.in_flight} in flight` +
    (s.queued ? ` · ${s.queued} waiting for a free account` : "");
  if (document.activeElement !== $("strategy")) $("strategy").value = s.strategy;
  $("next").disabled = s.strategy === "least_used";
  names = new Map(s.accounts.map((a) => [a.id, a.label || a.email || a.id]));
  const box = $("accounts");
  if (editing(box)) return;
  if (!s.accounts.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No account yet: add one above."));
    togglePanel("add", true);
    return;
  }
  const warnings = [];
  if (s.save_failure) warnings.push(el("p", { class: "error card" }, `Saving the accounts fails: ${s.save_failure.message}`));
  box.replaceChildren(...warnings, ...s.accounts.map(accountCard));
}

// ---- usage ----------------------------------------------------------------------------

const SERIES = 8; // colours s0…s7 in app.css; more groups share the last ("others")

function groupKey(row, group) {
  if (group === "account") return names.get(row.account) || row.account;
  if (group === "model") return row.model;
  return "all";
}

function amount(row, measure) {
  return measure === "tokens" ? row.input_tokens + row.output_tokens : row.requests;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function refreshUsage() {
  const range = $("range").value, measure = $("measure").value, group = $("group").value;
  const view = await get("/dashboard/api/usage?range=" + range);
  const box = $("usage");
  if (!view.buckets.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No usage in this range yet."));
    return;
  }
  // Totals per group, to order the series by size and build the table.
  const totals = new Map();
  for (const b of view.buckets) {
    for (const r of b.rows) {
      const k = groupKey(r, group);
      const t = totals.get(k) || { requests: 0, input: 0, cached: 0, output: 0, reasoning: 0, amount: 0 };
      t.requests += r.requests; t.input += r.input_tokens; t.cached += r.cached_tokens;
      t.output += r.output_tokens; t.reasoning += r.reasoning_tokens; t.amount += amount(r, measure);
      totals.set(k, t);
    }
  }
  const order = [...totals.keys()].sort((x, y) => totals.get(y).amount - totals.get(x).amount);
  const series = new Map(order.map((k, i) => [k, Math.min(i, SERIES - 1)]));
  const slots = range === "month" ? 30 : 288;
  const step = view.step_seconds;
  const end = Math.floor(Date.now() / 1000 / step) * step;
  const stacks = view.buckets.map((b) => {
    const parts = new Array(SERIES).fill(0);
    for (const r of b.rows) parts[series.get(groupKey(r, group))] += amount(r, measure);
    return { start: b.start, parts, sum: parts.reduce((a, n) => a + n, 0) };
  });
  const max = Math.max(...stacks.map((s) => s.sum), 1);
  const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${slots} 100`, preserveAspectRatio: "none", role: "img" });
  for (const s of stacks) {
    const slot = slots - 1 - Math.round((end - s.start) / step);
    if (slot < 0 || slot >= slots) continue;
    let y = 100;
    s.parts.forEach((v, i) => {
      if (!v) return;
      const h = (v / max) * 100;
      y -= h;
      const rect = svgEl("rect", { x: slot, y, width: 0.8, height: h, class: "s" + i });
      const title = svgEl("title", {});
      title.textContent = `${new Date(s.start * 1000).toLocaleString()}: ${count(s.sum)} ${measure}`;
      rect.append(title);
      svg.append(rect);
    });
  }
  const all = [...totals.values()].reduce((a, t) => ({
    requests: a.requests + t.requests, input: a.input + t.input, cached: a.cached + t.cached,
    output: a.output + t.output, reasoning: a.reasoning + t.reasoning }),
  { requests: 0, input: 0, cached: 0, output: 0, reasoning: 0 });
  svg.setAttribute("aria-label", `${all.requests} requests, ${all.input + all.output} tokens, peak ${max} ${measure} per ${range === "month" ? "day" : "5 minutes"}`);
  const hit = (t) => (t.input ? Math.round((t.cached * 100) / t.input) + "%" : "—");
  const rows = order.map((k) => {
    const t = totals.get(k);
    return el("tr", {},
      el("td", {}, el("span", { class: "swatch s" + series.get(k) }), group ? k : "all"),
      el("td", { class: "num" }, t.requests), el("td", { class: "num" }, count(t.input)),
      el("td", { class: "num" }, hit(t)), el("td", { class: "num" }, count(t.output)),
      el("td", { class: "num" }, count(t.reasoning)));
  });
  const axis = el("div", { class: "axis muted" },
    el("span", {}, range === "month" ? "30 days ago" : "24 h ago"), el("span", {}, `peak ${count(max)}`), el("span", {}, "now"));
  const table = el("div", { class: "table" }, el("table", { class: "usage" },
    el("thead", {}, el("tr", {}, el("th", {}, group || "total"), el("th", { class: "num" }, "Requests"),
      el("th", { class: "num" }, "Input"), el("th", { class: "num" }, "Cache hit"),
      el("th", { class: "num" }, "Output"), el("th", { class: "num" }, "Reasoning"))),
    el("tbody", {}, ...rows)));
  box.replaceChildren(svg, axis, table);
}

// ---- requests -------------------------------------------------------------------------

async function refreshRequests() {
  const surface = $("surface").value;
  const failed = $("failed").checked;
  const data = await get(`/dashboard/api/requests?limit=200&failed=${failed}&surface=${encodeURIComponent(surface)}`);
  const rows = [];
  for (const r of data.requests) {
    const bad = r.status >= 400 || r.error;
    rows.push(el("tr", { class: bad ? "failed" : "" },
      el("td", {}, new Date(r.at_ms).toLocaleTimeString()), el("td", {}, r.surface),
      el("td", {}, `${r.method} ${r.path}`), el("td", {}, r.model || "—"),
      el("td", {}, r.account ? names.get(r.account) || r.account : "—"),
      el("td", { class: "num" }, r.status), el("td", { class: "num" }, r.duration_ms + " ms"),
      el("td", { class: "num" }, r.first_byte_ms == null ? "—" : r.first_byte_ms + " ms"),
      el("td", { class: "num" }, r.input_tokens), el("td", { class: "num" }, r.output_tokens)));
    if (r.error) rows.push(el("tr", { class: "failed" }, el("td", { class: "error", colspan: "10" }, r.error)));
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { class: "muted", colspan: "10" }, "No requests yet.")));
  document.querySelector("#requests tbody").replaceChildren(...rows);
}

// ---- actions --------------------------------------------------------------------------

function togglePanel(name, open) {
  const button = $(name), panel = $(name + "-panel");
  const show = open ?? panel.hidden;
  panel.hidden = !show;
  button.setAttribute("aria-expanded", String(show));
}

let device = null; // the device login being waited for: {id, timer}

async function deviceLogin() {
  const box = $("device-box");
  if (device) return;
  const shown = await send("POST", "/dashboard/api/login/device");
  if (shown.response === "error") {
    box.replaceChildren(el("p", { class: "error" }, shown.message));
    return;
  }
  device = { id: shown.id };
  const cancel = el("button", { type: "button", onclick: async () => {
    await send("DELETE", "/dashboard/api/login/device?id=" + encodeURIComponent(shown.id));
    stopDevice();
    box.replaceChildren(el("p", { class: "muted" }, "Cancelled."));
  } }, "Cancel");
  box.replaceChildren(
    el("p", {}, "Open ", el("a", { href: webUrl(shown.verification_url), target: "_blank", rel: "noopener noreferrer" },
      shown.verification_url), " and enter"),
    el("p", { class: "code", id: "device-code" }, shown.user_code),
    el("p", { class: "muted" }, `Waiting for approval (the code works for ${Math.round(shown.expires_in_seconds / 60)} minutes)… `, cancel));
  device.timer = setInterval(async () => {
    const progress = await send("GET", "/dashboard/api/login/device?id=" + encodeURIComponent(shown.id));
    if (progress.response === "waiting") return;
    stopDevice();
    if (progress.response === "logged_in") {
      const a = progress.account;
      box.replaceChildren(el("p", { class: "ok" }, `Signed in as ${a.email || a.id}${progress.replaced ? " (replaced its old sign-in)" : ""}.`));
      notice(`Signed in as ${a.email || a.id}`);
      refreshStatus().catch(() => {});
    } else {
      box.replaceChildren(el("p", { class: "error" }, progress.message || "The login did not finish."));
    }
  }, 2000);
}

function stopDevice() {
  if (device) clearInterval(device.timer);
  device = null;
}

function signedIn(answer) {
  const a = answer.account;
  return `Signed in as ${a.email || a.id}${answer.replaced ? " (replaced its old sign-in)" : ""}`;
}

async function browserLogin() {
  // The redirect goes to the address the Codex CLI uses; nothing listens there, so the person
  // copies it back into the form below.
  const answer = await control({ request: "login_browser", callback_port: 1455 }, () => "Follow the link, then paste the address you land on");
  if (answer) {
    $("browser-link").replaceChildren(el("a", { href: webUrl(answer.authorize_url), target: "_blank",
      rel: "noopener noreferrer" }, "Continue to OpenAI's sign-in page ↗"));
  }
}

async function pasteLogin(event) {
  event.preventDefault();
  const url = $("paste").value.trim();
  const answer = await control({ request: "login_paste", url }, signedIn);
  if (answer) $("paste").value = "";
}

async function importLogin(event) {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return notice("Choose an auth.json file first.", true);
  if (file.size > 60 * 1024) return notice("That file is too large to be an auth.json.", true);
  const answer = await control({ request: "login_import", auth_json: await file.text() }, signedIn);
  if (answer) $("import-file").value = "";
}

function showKey(answer) {
  $("key-value").textContent = answer.key;
  $("key-copy").hidden = false;
  $("key-rotate").disabled = answer.source !== "generated";
  $("key-rotate").title = answer.source === "generated" ? "" : "The key comes from server.api_keys in the config file";
}

// ---- wiring ---------------------------------------------------------------------------

// The status first: the other views name accounts by what it says.
function refreshAll() {
  return refreshStatus().then(() => Promise.all([refreshUsage(), refreshRequests()])).catch(() => {});
}

$("signout").addEventListener("submit", async (event) => {
  event.preventDefault();
  await fetch("/dashboard/signout", { method: "POST", headers: { "x-csrf-token": csrf }, credentials: "same-origin" });
  window.location = "/dashboard/signin";
});
$("strategy").addEventListener("change", () => control({ request: "rotate_strategy", strategy: $("strategy").value }));
$("next").addEventListener("click", () => control({ request: "rotate_next" }));
$("add").addEventListener("click", () => togglePanel("add"));
$("key").addEventListener("click", () => togglePanel("key"));
$("device").addEventListener("click", deviceLogin);
$("browser").addEventListener("click", browserLogin);
$("paste-form").addEventListener("submit", pasteLogin);
$("import-form").addEventListener("submit", importLogin);
$("key-show").addEventListener("click", async () => {
  const answer = await control({ request: "key_show" }, () => "Shown below; reload the page to hide it");
  if (answer) showKey(answer);
});
$("key-copy").addEventListener("click", () => navigator.clipboard.writeText($("key-value").textContent)
  .then(() => notice("Copied"), () => notice("The browser did not allow copying", true)));
$("key-rotate").addEventListener("click", async () => {
  if (!window.confirm("Make a new API key? Every client using the old one stops working.")) return;
  const answer = await control({ request: "key_rotate" }, () => "New key made; the old one no longer works");
  if (answer) showKey(answer);
});
for (const id of ["range", "measure", "group"]) $(id).addEventListener("change", () => refreshUsage().catch(() => {}));
for (const id of ["surface", "failed"]) $(id).addEventListener("change", () => refreshRequests().catch(() => {}));

// Live: redraw every few seconds while the page is visible, at once when it becomes visible.
refreshAll();
setInterval(() => { if (!document.hidden) refreshAll(); }, REFRESH_MS);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshAll(); });

// llmrelay dashboard: a page over the admin API, signed in with a session cookie.
// Text from the server is only ever set as text (textContent), never parsed as HTML.
"use strict";

const state = { who: null, csrf: null, timer: null, charts: [] };
const $ = (id) => document.getElementById(id);

// ---- small helpers ------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: { message: text.slice(0, 300) } }; }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText}`;
    if (response.status === 401 && path !== "/ui/session") showSignIn("Your session has ended: sign in again.");
    throw new Error(message);
  }
  return data;
}

const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString()),
  usd: (n) => (n === null || n === undefined ? "–" : "$" + (n < 1 ? n.toFixed(4) : n.toFixed(2))),
  ms: (n) => (n === null || n === undefined || n === 0 ? "–" : n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms"),
  pct: (n) => (n === null || n === undefined ? "–" : (100 * n).toFixed(1) + "%"),
  time: (t) => (t ? new Date(t * 1000).toLocaleString() : "–"),
};

function errorLine() { return h("p", { class: "error", role: "alert" }); }
function fail(where, err) { where.textContent = err.message || String(err); }

// ---- signing in ----------------------------------------------------------------------

function showSignIn(message) {
  state.who = null;
  state.csrf = null;
  stopTimer();
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("page").replaceChildren();
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("key").focus();
}

function signedIn(who) {
  state.who = who;
  state.csrf = who.csrf;
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  for (const link of document.querySelectorAll("nav a[data-admin]")) link.hidden = !who.admin;
  $("who").textContent = who.admin ? "master key" : `tenant ${who.tenant} · key ${who.key_name || who.key_id}`;
  route();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("key");
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    const who = await api("POST", "/ui/session", { key: input.value });
    input.value = "";
    signedIn(who);
  } catch (err) {
    $("sign-in-error").textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try { await api("DELETE", "/ui/session"); } catch { /* gone already */ }
  location.hash = "";
  showSignIn("Signed out.");
}

// ---- pages -----------------------------------------------------------------------------

const pages = { overview, deployments, keys, usage, playground };

function stopTimer() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
}

function route() {
  if (!state.who) return;
  stopTimer();
  let name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "overview";
  if (!pages[name] || (name === "deployments" && !state.who.admin)) name = "overview";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === name);
  const page = $("page");
  page.replaceChildren();
  page.dataset.page = name;
  pages[name](page);
}

// ---- overview: charts from /admin/usage/series ------------------------------------------

const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
const COLORS = ["#2f6fde", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0b7285", "#f08c00", "#5c940d",
  "#a61e4d", "#364fc7", "#868e96"];

function rangeControls(onChange, withSplit) {
  const range = h("select", { id: "range" },
    ...Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === "24h" }, "last " + r)),
    h("option", { value: "custom" }, "custom"));
  const since = h("input", { id: "since", type: "datetime-local" });
  const until = h("input", { id: "until", type: "datetime-local" });
  const split = h("select", { id: "split" }, h("option", { value: "" }, "no split"),
    h("option", { value: "model" }, "by model"),
    state.who.admin ? h("option", { value: "tenant" }, "by tenant") : null,
    h("option", { value: "key" }, "by key"));
  const read = () => {
    const now = Date.now() / 1000;
    let from = now - (RANGES[range.value] || 86400);
    let to = now;
    if (range.value === "custom" && since.value && until.value) {
      from = new Date(since.value).getTime() / 1000;
      to = new Date(until.value).getTime() / 1000;
    }
    return { since: Math.floor(from), until: Math.ceil(to), split: withSplit ? split.value : "" };
  };
  const custom = [h("div", { hidden: true }, h("label", { for: "since", text: "From" }), since),
    h("div", { hidden: true }, h("label", { for: "until", text: "To" }), until)];
  range.addEventListener("change", () => {
    for (const box of custom) box.hidden = range.value !== "custom";
    if (range.value !== "custom") onChange(read());
  });
  for (const el of [since, until, split]) el.addEventListener("change", () => onChange(read()));
  const row = h("div", { class: "row" },
    h("div", {}, h("label", { for: "range", text: "Range" }), range),
    ...custom,
    withSplit ? h("div", {}, h("label", { for: "split", text: "Split" }), split) : null);
  return { row, read };
}

function bucketFor(seconds) {  // as the API's default: the finest giving at most 200 buckets
  if (seconds <= 200 * 60) return "minute";
  if (seconds <= 200 * 3600) return "hour";
  return "day";
}

function overview(page) {
  const tiles = h("div", { class: "tiles", id: "tiles" });
  const charts = h("div", { class: "grid", id: "charts" });
  const spenders = h("div", { class: "card", id: "spenders" });
  const budgets = h("div", { class: "card", id: "budgets" });
  const problem = errorLine();
  const controls = rangeControls(draw, true);
  page.append(h("div", { class: "card" }, controls.row, problem), tiles, charts,
    h("div", { class: "grid" }, spenders, budgets));

  async function draw(range) {
    problem.textContent = "";
    const bucket = bucketFor(range.until - range.since);
    const params = new URLSearchParams({ bucket, since: range.since, until: range.until });
    if (range.split) { params.set("split", range.split); params.set("top", "8"); }
    try {
      const data = await api("GET", "/admin/usage/series?" + params);
      drawTiles(tiles, data);
      drawCharts(charts, data);
      await drawSpenders(spenders, range);
      await drawBudgets(budgets);
    } catch (err) {
      fail(problem, err);
    }
  }
  draw(controls.read());
  state.timer = setInterval(() => draw(controls.read()), 30000);
}

function total(data, metric) {
  return data.series.reduce((sum, s) => sum + s[metric].reduce((a, b) => a + b, 0), 0);
}

function drawTiles(tiles, data) {
  const requests = total(data, "requests");
  const errors = total(data, "errors");
  const tokens = total(data, "prompt_tokens") + total(data, "completion_tokens");
  const cost = total(data, "cost_usd");
  tiles.replaceChildren(
    ...[["Requests", fmt.int(requests)], ["Errors", `${fmt.int(errors)} (${requests ? fmt.pct(errors / requests) : "–"})`],
      ["Tokens", fmt.int(tokens)], ["Cost", fmt.usd(cost)]].map(([name, value]) =>
      h("div", { class: "tile", "data-tile": name.toLowerCase() }, h("div", { class: "muted", text: name }),
        h("div", { class: "value", text: value }))));
}

function drawCharts(box, data) {
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  box.replaceChildren();
  const xs = data.buckets.map((b) => Date.parse(b) / 1000);
  const named = (s) => (s.other ? "other" : s.name === null ? "(none)" : String(s.name));
  const split = Boolean(data.split);
  const specs = split
    ? [["Requests", "requests", fmt.int], ["Cost (USD)", "cost_usd", fmt.usd], ["Latency p95", "latency_ms_p95", fmt.ms],
       ["Time to first token p95", "ttft_ms_p95", fmt.ms], ["Errors", "errors", fmt.int]]
        .map(([title, metric, f]) => ({ title, f, lines: data.series.map((s) => [named(s), s[metric]]) }))
    : (() => {
        const s = data.series[0] || {};
        const pick = (m) => s[m] || xs.map(() => 0);
        return [
          { title: "Requests and errors", f: fmt.int, lines: [["requests", pick("requests")], ["errors", pick("errors")]] },
          { title: "Latency", f: fmt.ms, lines: [["p50", pick("latency_ms_p50")], ["p95", pick("latency_ms_p95")]] },
          { title: "Time to first token", f: fmt.ms, lines: [["p50", pick("ttft_ms_p50")], ["p95", pick("ttft_ms_p95")]] },
          { title: "Tokens", f: fmt.int, lines: [["prompt", pick("prompt_tokens")], ["completion", pick("completion_tokens")]] },
          { title: "Cost (USD)", f: fmt.usd, lines: [["cost", pick("cost_usd")]] },
        ];
      })();
  for (const spec of specs) {
    const holder = h("div", { class: "chart", "data-chart": spec.title });
    box.append(h("div", { class: "card" }, h("h2", { text: spec.title }), holder));
    const width = Math.max(holder.clientWidth || box.clientWidth || 600, 280);
    const options = {
      width, height: 220,
      scales: { x: { time: true } },
      axes: [{ stroke: "#888", grid: { stroke: "rgba(128,128,128,.15)" } },
        { stroke: "#888", grid: { stroke: "rgba(128,128,128,.15)" }, size: 70, values: (u, v) => v.map(spec.f) }],
      series: [{}, ...spec.lines.map(([label], i) => ({
        label, stroke: COLORS[i % COLORS.length], width: 1.5, value: (u, v) => spec.f(v), points: { show: false },
      }))],
    };
    state.charts.push(new uPlot(options, [xs, ...spec.lines.map(([, values]) => values)], holder));
  }
}

async function drawSpenders(box, range) {
  const by = state.who.admin ? "tenant" : "key";
  const params = new URLSearchParams({ since: range.since, until: range.until, group_by: by, limit: "1" });
  const data = await api("GET", "/admin/usage?" + params);
  const name = by === "tenant" ? "tenant" : "key_id";
  const rows = data.totals.filter((t) => t.requests).sort((a, b) => b.cost_usd - a.cost_usd).slice(0, 10);
  box.replaceChildren(h("h2", { text: `Top spenders by ${by}` }),
    rows.length ? h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { text: by }), h("th", { text: "requests" }), h("th", { text: "tokens" }),
        h("th", { text: "cost" }))),
      h("tbody", {}, ...rows.map((t) => h("tr", {}, h("td", { text: t[name] === null ? "(master key)" : t[name] }),
        h("td", { text: fmt.int(t.requests) }), h("td", { text: fmt.int(t.prompt_tokens + t.completion_tokens) }),
        h("td", { text: fmt.usd(t.cost_usd) }))))))
      : h("p", { class: "muted", text: "No requests in this range." }));
}

function periodStart(period) {
  const now = new Date();
  if (period === "day") return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) / 1000;
  if (period === "month") return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) / 1000;
  return 0;
}

async function drawBudgets(box) {
  const keys = (await api("GET", "/admin/keys")).data;
  const owners = keys.filter((k) => k.budget_usd !== null).map((k) => ({ kind: "key", id: k.id, name: k.name || k.id,
    budget: k.budget_usd, period: k.budget_period }));
  if (state.who.admin) {
    for (const t of (await api("GET", "/admin/tenants")).data) {
      if (t.budget_usd !== null) owners.push({ kind: "tenant", id: t.id, name: t.id, budget: t.budget_usd, period: t.budget_period });
    }
  }
  const spent = {};
  for (const period of new Set(owners.map((o) => o.period))) {
    for (const by of ["key", "tenant"]) {
      const params = new URLSearchParams({ since: periodStart(period), group_by: by, limit: "1" });
      if (by === "tenant" && !state.who.admin) continue;
      for (const t of (await api("GET", "/admin/usage?" + params)).totals) {
        spent[`${by}:${by === "key" ? t.key_id : t.tenant}:${period}`] = t.cost_usd;
      }
    }
  }
  box.replaceChildren(h("h2", { text: "Budgets" }),
    owners.length ? h("table", { id: "budget-table" }, h("tbody", {}, ...owners.map((o) => {
      const used = spent[`${o.kind}:${o.id}:${o.period}`] || 0;
      const share = o.budget > 0 ? Math.min(used / o.budget, 1) : 1;
      const bar = h("div", { class: "bar" + (used >= o.budget ? " over" : "") }, h("span", {}));
      bar.firstChild.style.width = (100 * share).toFixed(1) + "%";
      return h("tr", {}, h("td", { text: `${o.kind} ${o.name}` }), h("td", {}, bar),
        h("td", { text: `${fmt.usd(used)} of ${fmt.usd(o.budget)} / ${o.period}` }));
    }))) : h("p", { class: "muted", text: "No tenant or key here has a budget." }));
}

// ---- deployments --------------------------------------------------------------------------

function deployments(page) {
  const problem = errorLine();
  const body = h("tbody", {});
  page.append(h("div", { class: "card" }, h("h2", { text: "Deployments" }),
    h("p", { class: "muted", text: "As the router sees them now (this process). Refreshes every 5 seconds." }), problem,
    h("div", { class: "scroll" }, h("table", { id: "deployments" }, h("thead", {}, h("tr", {},
      ...["group", "deployment", "state", "why", "breaker", "success", "calls", "latency", "first token",
        "last error", "override"].map((t) => h("th", { text: t })))), body))));

  async function setHealth(name, healthy) {
    try {
      await api("PUT", `/admin/deployments/${encodeURIComponent(name).replace(/%2F/g, "/")}/health`, { healthy });
      await load();
    } catch (err) { fail(problem, err); }
  }
  async function load() {
    try {
      const rows = (await api("GET", "/admin/deployments")).data;
      problem.textContent = "";
      body.replaceChildren(...rows.map((d) => h("tr", { "data-deployment": d.deployment },
        h("td", { text: d.group }), h("td", { text: d.deployment }),
        h("td", {}, h("span", { class: "badge " + d.status, text: d.status })),
        h("td", { class: "wrap", text: d.reason }),
        h("td", { text: d.breaker }), h("td", { text: fmt.pct(d.success_rate) }), h("td", { text: fmt.int(d.calls) }),
        h("td", { text: fmt.ms(d.latency_ms) }), h("td", { text: fmt.ms(d.ttft_ms) }),
        h("td", { class: "wrap", text: d.last_error || "" }),
        h("td", {}, h("div", { class: "actions" },
          h("button", { class: "quiet", onclick: () => setHealth(d.deployment, true), disabled: d.manual === true }, "Keep in"),
          h("button", { class: "quiet", onclick: () => setHealth(d.deployment, false), disabled: d.manual === false }, "Take out"),
          h("button", { class: "quiet", onclick: () => setHealth(d.deployment, null), disabled: d.manual === null }, "Clear"))))));
    } catch (err) { fail(problem, err); }
  }
  load();
  state.timer = setInterval(load, 5000);
}

// ---- keys and tenants --------------------------------------------------------------------

function field(label, input) { return h("div", {}, h("label", { for: input.id, text: label }), input); }
function numberOrNull(value) { return value === "" ? null : Number(value); }

function showSecret(box, key) {
  const secret = h("div", { class: "secret", id: "new-secret", text: key.key });
  const copy = h("button", { class: "quiet", onclick: async () => {
    try { await navigator.clipboard.writeText(key.key); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy it"; }
  } }, "Copy");
  box.replaceChildren(h("h2", { text: `Secret of ${key.name || key.id}` }),
    h("p", { text: "Shown once, now: it is not stored and cannot be shown again." }), secret, copy,
    h("button", { class: "quiet", onclick: () => box.replaceChildren() }, "Done"));
}

function keys(page) {
  const admin = state.who.admin;
  const manage = state.who.self_keys;  // the master key, or a tenant that manages its own keys
  const problem = errorLine();
  const secretBox = h("div", { class: "card", id: "secret-box" });
  const body = h("tbody", {});
  const revoked = h("input", { type: "checkbox", id: "include-revoked" });
  revoked.style.width = "auto";
  revoked.addEventListener("change", load);
  if (manage) page.append(createKeyForm());
  if (admin) page.append(tenantsCard());
  page.append(secretBox, h("div", { class: "card" }, h("h2", { text: admin ? "Keys" : "Your tenant's keys" }),
    h("label", {}, revoked, " show revoked keys"), problem,
    h("div", { class: "scroll" }, h("table", { id: "keys" }, h("thead", {}, h("tr", {},
      ...["name", "id", "tenant", "status", "models", "budget", "rpm / tpm", "created", ""].map((t) => h("th", { text: t })))),
      body))));
  secretBox.replaceChildren();

  async function act(key, what) {
    try {
      if (what === "revoke" && !confirm(`Revoke ${key.name || key.id}? Requests with it will fail at once.`)) return;
      if (what === "rotate" && !confirm(`Rotate ${key.name || key.id}? Its current secret stops working at once.`)) return;
      const done = await api("POST", `/admin/keys/${encodeURIComponent(key.id)}/${what}`);
      if (done.key) showSecret(secretBox, done);
      await load();
    } catch (err) { fail(problem, err); }
  }
  function editRow(key, row) {
    const name = h("input", { id: "edit-name", value: key.name });
    const models = h("input", { id: "edit-models", value: key.models.join(", ") });
    const budget = h("input", { id: "edit-budget", type: "number", min: "0", step: "any", value: key.budget_usd ?? "" });
    const rpm = h("input", { id: "edit-rpm", type: "number", min: "1", value: key.rpm ?? "" });
    const tpm = h("input", { id: "edit-tpm", type: "number", min: "1", value: key.tpm ?? "" });
    const cell = h("td", { colspan: "9" }, h("div", { class: "row" }, field("Name", name), field("Models (comma separated, empty: all)", models),
      field("Budget USD", budget), field("rpm", rpm), field("tpm", tpm),
      h("button", { onclick: async () => {
        try {
          await api("PATCH", `/admin/keys/${encodeURIComponent(key.id)}`, { name: name.value,
            models: models.value.split(",").map((m) => m.trim()).filter(Boolean), budget_usd: numberOrNull(budget.value),
            rpm: numberOrNull(rpm.value), tpm: numberOrNull(tpm.value) });
          await load();
        } catch (err) { fail(problem, err); }
      } }, "Save"), h("button", { class: "quiet", onclick: load }, "Cancel")));
    row.after(h("tr", { class: "editing" }, cell));
  }
  async function load() {
    try {
      const params = revoked.checked ? "?include_revoked=true" : "";
      const rows = (await api("GET", "/admin/keys" + params)).data;
      problem.textContent = "";
      body.replaceChildren(...rows.map((k) => {
        const row = h("tr", { "data-key": k.id }, h("td", { text: k.name || "–" }), h("td", { text: k.id }), h("td", { text: k.tenant }),
          h("td", {}, h("span", { class: "badge " + k.status, text: k.status })),
          h("td", { class: "wrap", text: k.models.length ? k.models.join(", ") : "all" }),
          h("td", { text: k.budget_usd === null ? "–" : `${fmt.usd(k.budget_usd)} / ${k.budget_period}` }),
          h("td", { text: `${k.rpm ?? "–"} / ${k.tpm ?? "–"}` }), h("td", { text: fmt.time(k.created_at) }),
          h("td", {}, manage && k.status === "active" ? h("div", { class: "actions" },
            h("button", { class: "quiet", onclick: (e) => editRow(k, e.target.closest("tr")) }, "Edit"),
            h("button", { class: "quiet", onclick: () => act(k, "rotate") }, "Rotate"),
            h("button", { class: "danger", onclick: () => act(k, "revoke") }, "Revoke")) : null));
        return row;
      }));
    } catch (err) { fail(problem, err); }
  }

  function createKeyForm() {
    const tenant = h("input", { id: "new-key-tenant", required: true, placeholder: "acme",
      value: admin ? null : state.who.tenant, readonly: !admin });
    const name = h("input", { id: "new-key-name", placeholder: "backend" });
    const models = h("input", { id: "new-key-models", placeholder: "all models" });
    const budget = h("input", { id: "new-key-budget", type: "number", min: "0", step: "any" });
    const period = h("select", { id: "new-key-period" }, ...["month", "day", "total"].map((p) => h("option", { value: p }, p)));
    const rpm = h("input", { id: "new-key-rpm", type: "number", min: "1" });
    const tpm = h("input", { id: "new-key-tpm", type: "number", min: "1" });
    const oops = errorLine();
    const form = h("form", { id: "new-key-form" }, h("div", { class: "row" }, field("Tenant", tenant), field("Name", name),
      field("Models (comma separated)", models), field("Budget USD", budget), field("Budget period", period),
      field("rpm", rpm), field("tpm", tpm), h("button", { type: "submit" }, "Create key")), oops);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      oops.textContent = "";
      try {
        const made = await api("POST", "/admin/keys", { tenant: tenant.value.trim(), name: name.value,
          models: models.value.split(",").map((m) => m.trim()).filter(Boolean), budget_usd: numberOrNull(budget.value),
          budget_period: period.value, rpm: numberOrNull(rpm.value), tpm: numberOrNull(tpm.value) });
        form.reset();
        showSecret(secretBox, made);
        await load();
      } catch (err) { fail(oops, err); }
    });
    return h("div", { class: "card" }, h("h2", { text: "New key" }), form);
  }

  function tenantsCard() {
    const body = h("tbody", {});
    const id = h("input", { id: "new-tenant-id", required: true, placeholder: "acme" });
    const budget = h("input", { id: "new-tenant-budget", type: "number", min: "0", step: "any" });
    const period = h("select", { id: "new-tenant-period" }, ...["month", "day", "total"].map((p) => h("option", { value: p }, p)));
    const rpm = h("input", { id: "new-tenant-rpm", type: "number", min: "1" });
    const selfKeys = h("input", { id: "new-tenant-self-keys", type: "checkbox" });
    selfKeys.style.width = "auto";
    const oops = errorLine();
    const form = h("form", { id: "new-tenant-form" }, h("div", { class: "row" }, field("Tenant id", id),
      field("Budget USD", budget), field("Budget period", period), field("rpm", rpm),
      h("div", {}, h("label", { for: "new-tenant-self-keys", text: "Manages its own keys" }), selfKeys),
      h("button", { type: "submit" }, "Create tenant")), oops);
    async function loadTenants() {
      try {
        const rows = (await api("GET", "/admin/tenants")).data;
        body.replaceChildren(...rows.map((t) => h("tr", { "data-tenant": t.id }, h("td", { text: t.id }),
          h("td", { text: t.budget_usd === null ? "–" : `${fmt.usd(t.budget_usd)} / ${t.budget_period}` }),
          h("td", { text: `${t.rpm ?? "–"} / ${t.tpm ?? "–"}` }), h("td", { text: t.max_parallel ?? "–" }),
          h("td", { text: t.self_keys ? "yes" : "no" }))));
      } catch (err) { fail(oops, err); }
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      oops.textContent = "";
      try {
        await api("POST", "/admin/tenants", { id: id.value.trim(), budget_usd: numberOrNull(budget.value),
          budget_period: period.value, rpm: numberOrNull(rpm.value), self_keys: selfKeys.checked });
        form.reset();
        await loadTenants();
      } catch (err) { fail(oops, err); }
    });
    loadTenants();
    return h("div", { class: "card" }, h("h2", { text: "Tenants" }), form, h("div", { class: "scroll" },
      h("table", { id: "tenants" }, h("thead", {}, h("tr", {}, ...["id", "budget", "rpm / tpm", "in flight", "manages its keys"].map((t) => h("th", { text: t })))), body)));
  }
  load();
}

// ---- usage: the ledger ---------------------------------------------------------------------

function usage(page) {
  const PAGE = 50;
  let offset = 0;
  const problem = errorLine();
  const inputs = {
    tenant: state.who.admin ? h("input", { id: "filter-tenant", placeholder: "any" }) : null,
    key_id: h("input", { id: "filter-key", placeholder: "any" }),
    model: h("input", { id: "filter-model", placeholder: "any" }),
    since: h("input", { id: "filter-since", type: "datetime-local" }),
    until: h("input", { id: "filter-until", type: "datetime-local" }),
  };
  const body = h("tbody", {});
  const info = h("span", { class: "muted", id: "usage-count" });
  const prev = h("button", { class: "quiet", onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "Newer");
  const next = h("button", { class: "quiet", onclick: () => { offset += PAGE; load(); } }, "Older");
  const csv = h("a", { id: "usage-csv", href: "#", download: "llmrelay-usage.csv" }, "Export CSV");
  const filters = () => {
    const params = new URLSearchParams();
    for (const [name, input] of Object.entries(inputs)) {
      if (!input || !input.value.trim()) continue;
      params.set(name, name === "since" || name === "until" ? String(new Date(input.value).getTime() / 1000) : input.value.trim());
    }
    return params;
  };
  page.append(h("div", { class: "card" }, h("h2", { text: "Usage ledger" }),
    h("div", { class: "row" }, inputs.tenant ? field("Tenant", inputs.tenant) : null, field("Key id", inputs.key_id),
      field("Model", inputs.model), field("From", inputs.since), field("To", inputs.until),
      h("button", { onclick: () => { offset = 0; load(); } }, "Filter")), problem,
    h("div", { class: "row" }, info, h("div", { class: "actions" }, prev, next, csv)),
    h("div", { class: "scroll" }, h("table", { id: "usage" }, h("thead", {}, h("tr", {},
      ...["time", "tenant", "key", "model", "deployment", "status", "prompt", "completion", "cost", "latency", "first token",
        "error"].map((t) => h("th", { text: t })))), body))));

  async function load() {
    const params = filters();
    csv.href = "/admin/usage.csv?" + params;
    params.set("limit", String(PAGE));
    params.set("offset", String(offset));
    try {
      const data = await api("GET", "/admin/usage?" + params);
      problem.textContent = "";
      info.textContent = data.total_count ? `${offset + 1}–${offset + data.data.length} of ${fmt.int(data.total_count)}` : "no records";
      prev.disabled = offset === 0;
      next.disabled = offset + PAGE >= data.total_count;
      body.replaceChildren(...data.data.map((r) => h("tr", {}, h("td", { text: fmt.time(r.created_at) }),
        h("td", { text: r.tenant ?? "–" }), h("td", { text: r.key_id ?? "–" }), h("td", { text: r.model }),
        h("td", { text: r.deployment ?? "–" }), h("td", { text: r.status }), h("td", { text: fmt.int(r.prompt_tokens) }),
        h("td", { text: fmt.int(r.completion_tokens) }), h("td", { text: fmt.usd(r.cost_usd) }), h("td", { text: fmt.ms(r.latency_ms) }),
        h("td", { text: fmt.ms(r.ttft_ms) }), h("td", { class: "wrap", text: r.error ?? "" }))));
    } catch (err) { fail(problem, err); }
  }
  load();
}

// ---- playground: a streamed chat -----------------------------------------------------------

function playground(page) {
  const model = h("select", { id: "play-model" });
  const prompt = h("textarea", { id: "play-prompt", placeholder: "Ask something" });
  const answer = h("div", { class: "answer", id: "play-answer", "aria-live": "polite" });
  const facts = h("div", { class: "facts", id: "play-facts" });
  const problem = errorLine();
  const send = h("button", { id: "play-send" }, "Send");
  page.append(h("div", { class: "card" }, h("h2", { text: "Playground" }),
    h("p", { class: "muted", text: "A streamed chat completion through the gateway, as the signed-in key." }),
    field("Model", model), field("Message", prompt), send, problem, h("h2", { text: "Answer" }), answer, facts));
  api("GET", "/v1/models").then((data) => {
    model.replaceChildren(...data.data.map((m) => h("option", { value: m.id }, m.id)));
  }).catch((err) => fail(problem, err));

  send.addEventListener("click", async () => {
    problem.textContent = "";
    answer.textContent = "";
    facts.replaceChildren();
    send.disabled = true;
    const began = performance.now();
    const requestId = "ui-" + Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
    let first = null;
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": state.csrf, "x-request-id": requestId },
        body: JSON.stringify({ model: model.value, stream: true, stream_options: { include_usage: true },
          messages: [{ role: "user", content: prompt.value }] }),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        throw new Error((data.error && data.error.message) || `${response.status}`);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let usage = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
            const chunk = JSON.parse(line.slice(6));
            if (chunk.error) throw new Error(chunk.error.message || "the stream failed");
            const text = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
            if (text) {
              if (first === null) first = performance.now() - began;
              answer.textContent += text;
            }
            if (chunk.usage) usage = chunk.usage;
          }
        }
      }
      const latency = performance.now() - began;
      const shown = (record) => facts.replaceChildren(
        h("span", { "data-fact": "deployment", text: `deployment: ${record ? record.deployment || "–" : "…"}` }),
        h("span", { "data-fact": "tokens", text: `tokens: ${usage ? `${usage.prompt_tokens} in, ${usage.completion_tokens} out` : "–"}` }),
        h("span", { "data-fact": "cost", text: `cost: ${record ? fmt.usd(record.cost_usd) : "…"}` }),
        h("span", { "data-fact": "latency", text: `latency: ${fmt.ms(latency)}` }),
        h("span", { "data-fact": "ttft", text: `first token: ${fmt.ms(first)}` }));
      shown(null);
      shown(await ledgerRecord(requestId, began));
    } catch (err) {
      fail(problem, err);
    } finally {
      send.disabled = false;
    }
  });
}

async function ledgerRecord(requestId, began) {
  // the ledger writes in batches (every half second or so): ask a few times
  const since = Math.floor((Date.now() - (performance.now() - began)) / 1000) - 5;
  for (let tries = 0; tries < 10; tries++) {
    const data = await api("GET", `/admin/usage?request_id=${encodeURIComponent(requestId)}&since=${since}&limit=1`);
    if (data.data.length) return data.data[0];
    await new Promise((done) => setTimeout(done, 400));
  }
  return { deployment: "not recorded yet", cost_usd: null };
}

// ---- start -----------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
window.addEventListener("resize", () => {
  for (const chart of state.charts) {
    const holder = chart.root.parentElement;
    if (holder) chart.setSize({ width: Math.max(holder.clientWidth, 280), height: 220 });
  }
});
document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  try {
    signedIn(await api("GET", "/ui/session"));
  } catch {
    showSignIn("");
  }
});

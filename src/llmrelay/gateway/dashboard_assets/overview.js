// The overview: totals, charts over time (/admin/usage/series), top spenders, budgets.
import { api, errorLine, fail, fmt, h, state } from "./ui.js";

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

export function overview(page) {
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

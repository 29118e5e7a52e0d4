// The usage ledger (filters, pages, CSV) and the playground (a streamed chat, its ledger record).
import { api, errorLine, fail, field, fmt, h, state } from "./ui.js";

export function usage(page) {
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

export function playground(page) {
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

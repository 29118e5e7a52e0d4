// Deployments (their health and manual overrides), keys and tenants.
import { api, errorLine, fail, field, fmt, h, numberOrNull, state } from "./ui.js";

export function deployments(page) {
  const problem = errorLine();
  const body = h("tbody", {});
  page.append(h("div", { class: "card" }, h("h2", { text: "Deployments" }),
    h("p", { class: "muted", text: "As the router sees them now (this process). Refreshes every 5 seconds." }), problem,
    h("div", { class: "scroll" }, h("table", { id: "deployments" }, h("thead", {}, h("tr", {},
      ...["group", "deployment", "state", "override", "why", "breaker", "success", "calls", "latency", "first token",
        "latest errors"].map((t) => h("th", { text: t })))), body))));

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
        h("td", {}, h("div", { class: "actions" },
          h("button", { class: "quiet", onclick: () => setHealth(d.deployment, true), disabled: d.manual === true }, "Keep in"),
          h("button", { class: "quiet", onclick: () => setHealth(d.deployment, false), disabled: d.manual === false }, "Take out"),
          h("button", { class: "quiet", onclick: () => setHealth(d.deployment, null), disabled: d.manual === null }, "Clear"))),
        h("td", { class: "wrap", text: d.reason }),
        h("td", { text: d.breaker }), h("td", { text: fmt.pct(d.success_rate) }), h("td", { text: fmt.int(d.calls) }),
        h("td", { text: fmt.ms(d.latency_ms) }), h("td", { text: fmt.ms(d.ttft_ms) }),
        h("td", { class: "wrap errors" }, ...d.recent_errors.map((e) =>
          h("div", { text: `${new Date(e.at * 1000).toLocaleTimeString()} ${e.error}` }))),
        )));
    } catch (err) { fail(problem, err); }
  }
  load();
  state.timer = setInterval(load, 5000);
}

function showSecret(box, key) {
  const secret = h("div", { class: "secret", id: "new-secret", text: key.key });
  const copy = h("button", { class: "quiet", onclick: async () => {
    try { await navigator.clipboard.writeText(key.key); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy it"; }
  } }, "Copy");
  box.replaceChildren(h("h2", { text: `Secret of ${key.name || key.id}` }),
    h("p", { text: "Shown once, now: it is not stored and cannot be shown again." }), secret, copy,
    h("button", { class: "quiet", onclick: () => box.replaceChildren() }, "Done"));
}

export function keys(page) {
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
          h("td", { text: t.self_keys ? "yes" : "no" }),
          h("td", {}, h("button", { class: "quiet", onclick: (e) => editTenant(t, e.target.closest("tr")) }, "Edit")))));
      } catch (err) { fail(oops, err); }
    }
    function editTenant(t, row) {
      const budget = h("input", { id: "edit-tenant-budget", type: "number", min: "0", step: "any", value: t.budget_usd ?? "" });
      const period = h("select", { id: "edit-tenant-period" },
        ...["month", "day", "total"].map((p) => h("option", { value: p, selected: p === t.budget_period }, p)));
      const rpm = h("input", { id: "edit-tenant-rpm", type: "number", min: "1", value: t.rpm ?? "" });
      const tpm = h("input", { id: "edit-tenant-tpm", type: "number", min: "1", value: t.tpm ?? "" });
      const parallel = h("input", { id: "edit-tenant-parallel", type: "number", min: "1", value: t.max_parallel ?? "" });
      const own = h("input", { id: "edit-tenant-self-keys", type: "checkbox", checked: t.self_keys });
      own.style.width = "auto";
      row.after(h("tr", { class: "editing" }, h("td", { colspan: "6" }, h("div", { class: "row" },
        field("Budget USD", budget), field("Budget period", period), field("rpm", rpm), field("tpm", tpm),
        field("In flight at most", parallel),
        h("div", {}, h("label", { for: "edit-tenant-self-keys", text: "Manages its own keys" }), own),
        h("button", { onclick: async () => {
          try {
            await api("PATCH", `/admin/tenants/${encodeURIComponent(t.id)}`, { budget_usd: numberOrNull(budget.value),
              budget_period: period.value, rpm: numberOrNull(rpm.value), tpm: numberOrNull(tpm.value),
              max_parallel: numberOrNull(parallel.value), self_keys: own.checked });
            await loadTenants();
          } catch (err) { fail(oops, err); }
        } }, "Save"), h("button", { class: "quiet", onclick: loadTenants }, "Cancel")))));
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
      h("table", { id: "tenants" }, h("thead", {}, h("tr", {}, ...["id", "budget", "rpm / tpm", "in flight", "manages its keys", ""].map((t) => h("th", { text: t })))), body)));
  }
  load();
}

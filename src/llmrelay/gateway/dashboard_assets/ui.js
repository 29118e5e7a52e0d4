// Shared by every page: the session's state, element building, the API, formats.
// Text from the server is only ever set as text (textContent), never parsed as HTML.

export const state = { who: null, csrf: null, timer: null, charts: [] };
export const $ = (id) => document.getElementById(id);
let sessionEnded = () => {};

/** What to do when the API says the session has ended (the sign-in form, set by app.js). */
export function whenSessionEnds(action) { sessionEnded = action; }

export function h(tag, attrs, ...children) {
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

export async function api(method, path, body) {
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
    if (response.status === 401 && path !== "/ui/session") sessionEnded("Your session has ended: sign in again.");
    throw new Error(message);
  }
  return data;
}

export const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString()),
  usd: (n) => (n === null || n === undefined ? "–" : "$" + (n < 1 ? n.toFixed(4) : n.toFixed(2))),
  ms: (n) => (n === null || n === undefined || n === 0 ? "–" : n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms"),
  pct: (n) => (n === null || n === undefined ? "–" : (100 * n).toFixed(1) + "%"),
  time: (t) => (t ? new Date(t * 1000).toLocaleString() : "–"),
};

export function errorLine() { return h("p", { class: "error", role: "alert" }); }
export function fail(where, err) { where.textContent = err.message || String(err); }

export function field(label, input) { return h("div", {}, h("label", { for: input.id, text: label }), input); }
export function numberOrNull(value) { return value === "" ? null : Number(value); }

// llmrelay dashboard: a page over the admin API, signed in with a session cookie.
// Text from the server is only ever set as text (textContent), never parsed as HTML.
import { deployments, keys } from "./manage.js";
import { playground, usage } from "./ledger.js";
import { overview } from "./overview.js";
import { $, api, state, whenSessionEnds } from "./ui.js";

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

window.addEventListener("hashchange", route);
window.addEventListener("resize", () => {
  for (const chart of state.charts) {
    const holder = chart.root.parentElement;
    if (holder) chart.setSize({ width: Math.max(holder.clientWidth, 280), height: 220 });
  }
});
whenSessionEnds(showSignIn);
document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  try {
    signedIn(await api("GET", "/ui/session"));
  } catch {
    showSignIn("");
  }
});

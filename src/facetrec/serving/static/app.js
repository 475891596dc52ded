// The facetrec web page: plain DOM code over the JSON API, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, text: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function ranking() {
  return { diversity: $("diversity").value, lambda: $("lambda").value };
}

function say(message) { $("status").textContent = message || ""; }

function renderRecs(data) {
  const box = $("recs");
  box.replaceChildren();
  const groups = new Map();
  for (const item of data.items) {  // one group per interest, in order of its best item
    if (!groups.has(item.interest)) groups.set(item.interest, []);
    groups.get(item.interest).push(item);
  }
  for (const [interest, items] of groups) {
    const name = interest < 0 ? "popular" : `${items[0].label || "interest"} (#${interest + 1})`;
    const list = el("ol");
    for (const item of items) {
      const li = el("li", { "data-item": item.item }, item.title, " ", el("span", { class: "score" }, item.score.toFixed(3)));
      if (state.user) {
        const button = el("button", { class: "click", "data-item": item.item }, "click");
        button.addEventListener("click", () => recordClick(item.item));
        li.append(button);
      }
      if (item.explanation) li.append(el("div", { class: "why" }, item.explanation));
      list.append(li);
    }
    box.append(el("div", { class: "group" }, el("h3", {}, name), list));
  }
  if (data.matched && data.matched.length) box.prepend(el("p", { class: "why" }, `matched items: ${data.matched.join(", ")}`));
}

function renderInterest(interest, j) {
  // With a language model on the server: its name for the interest, the template label beside it
  // and its sentence; else (or when it failed, which the summary's reason says) the template label.
  const summary = interest.summary;
  const written = summary && summary.source === "llm";
  const heading = el("h3", {}, `#${j + 1} ${written ? summary.name : interest.label} (${Math.round(interest.weight * 100)}%)`);
  if (written) heading.append(" ", el("span", { class: "score" }, interest.label));
  if (summary && !written) heading.setAttribute("title", `template label: ${summary.reason}`);
  const group = el("div", { class: "group interest" }, heading);
  if (written) group.append(el("div", { class: "why summary" }, summary.sentence));
  group.append(el("ul", {}, ...interest.examples.map((x) => el("li", {}, x.title))));
  return group;
}

async function showUser() {
  const user = $("user").value.trim();
  if (!user) return say("type or pick a user id");
  state.user = user; state.text = null;
  say("");
  const q = new URLSearchParams({ k: 10, explain: true, ...ranking() });
  const id = encodeURIComponent(user);
  try {
    const [history, interests, recs] = await Promise.all([
      api(`/users/${id}/history?limit=20`), api(`/users/${id}/interests`), api(`/users/${id}/recommendations?${q}`),
    ]);
    $("history").replaceChildren(...history.events.map((e) => el("li", {}, `${e.title} `, el("span", { class: "score" }, e.event))));
    $("interests").replaceChildren(...interests.interests.map(renderInterest));
    renderRecs(recs);
    document.body.dataset.loaded = String(Date.now());
  } catch (error) { say(error.message); }
}

async function askText() {
  const text = $("text").value.trim();
  if (!text) return say("describe some interests first");
  state.user = null; state.text = text;
  say("");
  try {
    const r = ranking();
    const recs = await api("/recommendations", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, k: 10, explain: true, diversity: r.diversity, lambda: Number(r.lambda) }),
    });
    $("history").replaceChildren(); $("interests").replaceChildren();
    renderRecs(recs);
  } catch (error) { say(error.message); }
}

async function recordClick(item) {
  const key = $("key").value;
  if (!key) return say("enter the API key to record clicks");
  try {
    await api("/events", {
      method: "POST", headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ user: state.user, item, event: "click" }),
    });
    await showUser();
  } catch (error) { say(error.message); }
}

function refresh() { if (state.user) showUser(); else if (state.text) askText(); }

async function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) localStorage.setItem("facetrec-key", fromHash);
  $("key").value = localStorage.getItem("facetrec-key") || "";
  $("key").addEventListener("change", () => localStorage.setItem("facetrec-key", $("key").value));
  $("load").addEventListener("click", showUser);
  $("user").addEventListener("keydown", (e) => { if (e.key === "Enter") showUser(); });
  $("ask").addEventListener("click", askText);
  $("text").addEventListener("keydown", (e) => { if (e.key === "Enter") askText(); });
  $("lambda").addEventListener("input", () => { $("lambda-value").textContent = Number($("lambda").value).toFixed(2); });
  $("lambda").addEventListener("change", refresh);
  $("diversity").addEventListener("change", refresh);
  try {
    const users = await api("/users?limit=50");
    $("users").replaceChildren(...users.users.map((u) => el("option", { value: u })));
  } catch (error) { say(error.message); }
}

start();

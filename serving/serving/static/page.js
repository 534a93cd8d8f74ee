// The prediction page: a form built from the model this server serves (GET model),
// answered by POST predict. Plain script, no build step, nothing from another host:
// the server's Content-Security-Policy allows this origin only, and no inline code.
"use strict";

const POLL_MS = 2000;
const INTEGRAL = new Set(["long", "integer"]);
// What a person types is sent for the server to judge, whose message the page shows:
// a number in range as that number, an out-of-range one (1e400) as typed, other text
// as a string. A number input would not do: the browser empties a field it cannot
// parse, and the page would then send the example value the person did not choose.
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

const $ = (id) => document.getElementById(id);
let model = null; // the last answer of GET model
let answers = 0; // predictions and errors shown: the form's data-answers, for tests

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

async function fetchModel() {
  let response;
  try {
    response = await fetch("model", { cache: "no-store", headers: { Accept: "application/json" } });
  } catch (err) {
    throw new Error(`the server does not answer (${err.message})`);
  }
  const info = await response.json().catch(() => null);
  if (!info || info.version == null) {
    const alias = info && info.alias ? ` for @${info.alias}` : "";
    throw new Error(`no model loaded${alias} yet (HTTP ${response.status})`);
  }
  return info;
}

function field(feature, type, index) {
  const id = `feature-${index}`;
  const row = document.createElement("div");
  row.className = "field";
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = feature;
  const input = document.createElement("input");
  input.id = id;
  input.name = feature;
  input.type = "text";
  input.inputMode = INTEGRAL.has(type) ? "numeric" : "decimal";
  input.autocomplete = "off";
  input.spellcheck = false;
  input.dataset.testid = "feature-input";
  input.setAttribute("aria-describedby", `${id}-type`);
  const kind = document.createElement("span");
  kind.id = `${id}-type`;
  kind.className = "type";
  kind.textContent = type;
  row.append(label, input, kind);
  return row;
}

function setExample(info) {
  const example = info.input_example || {};
  for (const input of $("fields").querySelectorAll("input")) {
    const has = Object.hasOwn(example, input.name);
    input.placeholder = has ? String(example[input.name]) : "";
    if (has) input.dataset.example = JSON.stringify(example[input.name]);
    else delete input.dataset.example;
  }
}

function buildForm(info) {
  const typed = {};
  for (const input of $("fields").querySelectorAll("input")) typed[input.name] = input.value;
  const types = info.types || [];
  $("fields").replaceChildren(
    ...info.features.map((feature, i) => field(feature, types[i] || "double", i)),
  );
  for (const input of $("fields").querySelectorAll("input")) input.value = typed[input.name] || "";
}

function sameFeatures(a, b) {
  return a && JSON.stringify([a.features, a.types]) === JSON.stringify([b.features, b.types]);
}

function applyModel(info) {
  const previous = model;
  model = info;
  if (previous && String(previous.version) !== String(info.version)) {
    show($("live-change"), `Now serving version ${info.version} (was ${previous.version})`);
  }
  $("live-version").textContent = info.version;
  $("live-alias").textContent = `@${info.alias}`;
  $("live-sha").textContent = info.git_sha ? `git sha ${info.git_sha}` : "";
  $("title").textContent = `${info.name} @${info.alias}`;
  document.title = `${info.name} @${info.alias}`;
  if (!sameFeatures(previous, info)) buildForm(info);
  setExample(info);
  $("predict").disabled = false;
}

async function poll() {
  try {
    const info = await fetchModel();
    applyModel(info);
    show($("live-problem"), "");
    return info;
  } catch (err) {
    show($("live-problem"), err.message);
    return null;
  }
}

function literal(input) {
  const text = input.value.trim();
  if (text === "") return input.dataset.example ?? null; // no example: the server names it
  const number = Number(text);
  if (Number.isFinite(number)) return JSON.stringify(number);
  return JSON_NUMBER.test(text) ? text : JSON.stringify(text);
}

function requestBody() {
  const pairs = [];
  for (const input of $("fields").querySelectorAll("input")) {
    const value = literal(input);
    if (value !== null) pairs.push(`${JSON.stringify(input.name)}: ${value}`);
  }
  return `{"instances": [{${pairs.join(", ")}}]}`;
}

async function showResult(answer) {
  let info = model;
  const version = String(answer.model_version);
  if (!info || String(info.version) !== version) info = (await poll()) || info;
  const known = info && String(info.version) === version;
  const label = answer.predictions[0];
  const names = known ? info.class_names || [] : [];
  $("prediction").textContent = String(label);
  $("class-name").textContent =
    Number.isInteger(label) && label >= 0 && label < names.length ? names[label] : "";
  const sha = known && info.git_sha ? `, git sha ${info.git_sha}` : "";
  $("answered-by").textContent = `answered by version ${version} @${answer.alias}${sha}`;
  $("result").hidden = false;
}

async function predict(event) {
  event.preventDefault();
  const button = $("predict");
  button.disabled = true;
  $("result").hidden = true;
  show($("error"), "");
  try {
    let response;
    try {
      response = await fetch("predict", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: requestBody(),
      });
    } catch (err) {
      show($("error"), `the server does not answer (${err.message})`);
      return;
    }
    const answer = await response.json().catch(() => null);
    if (!response.ok || !answer || !Array.isArray(answer.predictions)) {
      show($("error"), answer && answer.error ? answer.error : `HTTP ${response.status}`);
      return;
    }
    await showResult(answer);
  } finally {
    button.disabled = false;
    $("predict-form").dataset.answers = String(++answers);
  }
}

async function follow() {
  await poll();
  setTimeout(follow, POLL_MS);
}

$("predict-form").addEventListener("submit", predict);
follow();

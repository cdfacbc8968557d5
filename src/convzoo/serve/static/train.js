// The Train view: a form for `convzoo train` (the real trainer, run by the server as a
// subprocess into --runs), one run at a time, followed live on a chart; Stop sends the
// trainer the signal Ctrl-C sends (it checkpoints and exits), Resume runs it with --resume.
import { el, int } from "./format.js";
import { RunFollower, drawChart, getJSON, onView, pct, send } from "./runs.js";

const $ = (id) => document.getElementById(id);
let loaded = false;
let follower = null;
let trainer = null; // the last /api/train answer
let statusTimer = null;
const chart = { x: "epoch", metric: "accuracy" };

function fail(err) {
  $("train-error").textContent = err.message;
  $("train-error").hidden = false;
}

function formBody() {
  const v = (id) => $(id).value.trim();
  const num = (id) => (v(id) === "" ? undefined : v(id));
  const body = {
    model: v("train-model"), data: v("train-data"), epochs: num("train-epochs"), batch_size: num("train-batch"),
    lr: num("train-lr"), amp: $("train-amp").checked, name: num("train-name"), subset: num("train-subset"),
    max_steps: num("train-max-steps"), threads: num("train-threads"), log_every: num("train-log-every"),
    input_size: num("train-input-size"),
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return body;
}

function follow(path) {
  if (follower && follower.path === path) return;
  if (follower) follower.stop();
  follower = new RunFollower(path, redraw);
  follower.keepAlive = true;
  follower.start();
}

function redraw() {
  if (!follower) return;
  drawChart($("train-chart"), [{ label: follower.path, records: follower.records }], chart);
  showStatus();
}

function showStatus() {
  const t = trainer || {};
  const info = follower && follower.info;
  const status = t.running ? "running" : info ? info.status : t.returncode === null || t.returncode === undefined ? "" : "stopped";
  const epochs = info ? `epoch ${info.epochs_done ?? 0} of ${info.epochs ?? "?"}, step ${int(info.steps)}` : "";
  const acc = info && info.test_top1 !== null && info.test_top1 !== undefined ? `, test top-1 ${pct(info.test_top1)}` : "";
  $("train-status").dataset.status = status;
  $("train-status").textContent = t.path ? `${status || "starting"}: ${t.path}${epochs ? ` (${epochs}${acc})` : ""}${t.running ? `, PID ${t.pid}` : ""}` : "no training started from this page yet";
  $("train-stop").disabled = !t.running;
  $("train-start").disabled = !!t.running;
  $("train-resume").disabled = !!t.running || !t.path || status === "finished";
  const failed = !t.running && t.returncode && t.returncode !== 0 && status !== "interrupted";
  $("train-output").hidden = !failed;
  if (failed) $("train-output").textContent = `the trainer exited with status ${t.returncode}:\n${t.output}`;
}

async function pollTrainer() {
  clearTimeout(statusTimer);
  try {
    trainer = await getJSON("/api/train");
    if (trainer.path) follow(trainer.path);
    showStatus();
  } catch (err) { fail(err); }
  statusTimer = setTimeout(pollTrainer, trainer && trainer.running ? 1000 : 3000);
}

async function act(path, body) {
  $("train-error").hidden = true;
  try {
    trainer = await send(path, body);
    if (trainer.path) follow(trainer.path);
    showStatus();
    pollTrainer();
  } catch (err) { fail(err); }
}

async function init() {
  if (loaded) { pollTrainer(); return; }
  loaded = true;
  try {
    const models = await getJSON("/api/models");
    const list = Array.isArray(models) ? models : models.models || [];
    $("train-models").replaceChildren(...list.map((m) => el("option", { value: typeof m === "string" ? m : m.name })));
  } catch (err) { /* the box still takes a name */ }
  $("train-form").addEventListener("submit", (e) => { e.preventDefault(); act("/api/train", formBody()); });
  $("train-stop").addEventListener("click", () => act("/api/train/stop"));
  $("train-resume").addEventListener("click", () => act("/api/train/resume", { path: trainer.path }));
  $("train-x").addEventListener("change", (e) => { chart.x = e.target.value; redraw(); });
  $("train-metric").addEventListener("change", (e) => { chart.metric = e.target.value; redraw(); });
  pollTrainer();
}

onView((v) => { if (v === "train") init(); });

// burla's dashboard: the cluster and its jobs, live from main_service's feeds.
// Everything a job printed is shown with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_LINES = 5000;
const ADMIN = "admin"; // users.ADMIN
let feed = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function show(section) {
  for (const id of ["login", "overview", "job"]) $(id).hidden = id !== section;
}

function setConnection(text) {
  $("connection").textContent = text;
}

function openFeed(url, onData) {
  if (feed) feed.close();
  feed = new EventSource(url);
  feed.onopen = () => setConnection("live");
  feed.onerror = () => setConnection("reconnecting…");
  feed.onmessage = (message) => onData(JSON.parse(message.data));
}

function progressBar(done, total) {
  const bar = el("div", null, "bar");
  const fill = el("div");
  fill.style.width = total ? `${(100 * done) / total}%` : "0";
  bar.append(fill);
  return bar;
}

function usd(amount) {
  return amount === null || amount === undefined ? "no price" : `$${amount.toFixed(4)}`;
}

// A job's node time and cost, its max_cost, and why it stopped if it reached it.
function costText(job) {
  if (!job.cost) return "";
  const cost = job.cost;
  let text = `node time ${cost.node_seconds.toFixed(1)} node-seconds, cost ${usd(cost.usd)}`;
  if (cost.basis) text += ` (${cost.basis})`;
  const cap = job.max_cost ?? job.spec?.max_cost;
  if (cap) text += `; max_cost $${cap}`;
  const stop = job.budget_stop;
  if (stop) {
    text += `; stopped at its max_cost after ${stop.finished} inputs finished ` +
      `(their results: burla jobs result ${job.job_id} --return-exceptions)`;
  }
  return text;
}

function clockTime(epochSeconds) {
  return epochSeconds ? new Date(epochSeconds * 1000).toLocaleTimeString() : "";
}

// The cluster ---------------------------------------------------------------------
function renderCluster(data) {
  const cluster = data.cluster;
  $("cpus-busy").textContent = cluster.cpus_busy;
  $("cpus").textContent = cluster.cpus;
  $("cpus-bar").style.width = cluster.cpus ? `${(100 * cluster.cpus_busy) / cluster.cpus}%` : "0";
  $("jobs-running").textContent = cluster.jobs_running;

  const byType = $("nodes-by-type").tBodies[0];
  byType.replaceChildren();
  for (const [type, states] of Object.entries(cluster.nodes_by_type)) {
    const row = el("tr");
    row.append(el("td", type));
    for (const state of ["booting", "ready", "busy"]) row.append(el("td", states[state] || 0));
    byType.append(row);
  }

  const standby = $("standby");
  standby.replaceChildren();
  for (const group of cluster.standby.nodes) {
    const type = group.node_type;
    const price = type.price_per_hour === null || type.price_per_hour === undefined
      ? "" : `, $${type.price_per_hour} an hour`;
    standby.append(el("li", `${group.count} × ${type.name} (${type.cpus} CPUs, ${type.ram_gb} GB${price})`));
  }
  for (const spec of cluster.standby.containers) standby.append(el("li", `image ${spec.image}`));
  if (!standby.children.length) standby.append(el("li", "none: nodes start on demand", "muted"));

  const jobs = $("jobs").tBodies[0];
  jobs.replaceChildren();
  for (const job of data.jobs) {
    const row = el("tr");
    row.dataset.job = job.job_id;
    const link = el("a", job.job_id);
    link.href = `#/jobs/${job.job_id}`;
    const cell = el("td");
    cell.append(link);
    const progress = el("td");
    const ran = job.succeeded + job.failed;
    progress.append(progressBar(ran, job.n_inputs), el("span", `${ran} / ${job.n_inputs}`, "count"));
    row.append(cell, el("td", job.owner, "admin-only"), stateCell(job.state), progress,
      el("td", job.failed), el("td", job.func_cpu), el("td", clockTime(job.submitted_at)),
      el("td", job.cost ? job.cost.node_seconds.toFixed(1) : ""),
      el("td", job.cost ? usd(job.cost.usd) : ""));
    jobs.append(row);
  }
  $("no-jobs").hidden = data.jobs.length > 0;

  const nodes = $("nodes").tBodies[0];
  nodes.replaceChildren();
  for (const node of cluster.nodes) {
    const row = el("tr");
    row.append(el("td", node.node_id), el("td", node.type), el("td", node.cpus),
      el("td", node.state), el("td", node.job_id || ""));
    nodes.append(row);
  }
  $("creation-errors").textContent = cluster.creation_errors
    .map((error) => `${new Date(error.at * 1000).toLocaleTimeString()}  ${error.message}`)
    .join("\n");
  renderLosses(cluster.node_losses);
}

// Nodes lost, by cause: a preempted spot VM reads apart from a machine that failed.
function renderLosses(losses) {
  const counts = losses ? Object.entries(losses.counts).filter(([, n]) => n > 0) : [];
  $("node-losses").hidden = counts.length === 0;
  if (!counts.length) return;
  $("loss-counts").textContent = "Nodes lost: " + counts.map(([cause, n]) => `${n} ${cause}`).join(", ");
  $("loss-list").textContent = losses.recent.slice(-10)
    .map((loss) => `${new Date(loss.at * 1000).toLocaleTimeString()}  ${loss.node_id} ` +
      `(${loss.node_type}${loss.job_id ? `, on job ${loss.job_id}` : ""}): ${loss.cause}`)
    .join("\n");
}

function stateCell(state) {
  const cell = el("td");
  cell.append(el("span", state, `state ${state}`));
  return cell;
}

// One job -------------------------------------------------------------------------
function renderJob(data) {
  const job = data.job;
  $("job-state").textContent = job.state;
  $("job-state").className = `state ${job.state}`;
  const ran = job.succeeded + job.failed;
  $("job-bar").style.width = job.n_inputs ? `${(100 * ran) / job.n_inputs}%` : "0";
  const never = job.never_run ? `, ${job.never_run} never ran` : "";
  $("job-count").textContent = `${ran} / ${job.n_inputs} inputs ran${never}`;
  const failed = job.failed ? `, ${job.failed} failed` : "";
  $("job-facts").textContent =
    `${job.func_cpu} CPU per input, ${data.busy_cpus} CPUs busy${failed}` +
    (job.image ? `, image ${job.image}` : "") + `; submitted ${clockTime(job.submitted_at)}`;
  const failure = job.failure
    ? `input ${job.failure.input} failed: ${job.failure.type}: ${job.failure.message}`
    : "";
  $("job-error").textContent = job.error || failure;
  $("job-cost").textContent = costText(job);
  $("cancel").hidden = job.state !== "running";
  renderCells(data.letters, job.n_inputs);
  appendLines(data.lines);
}

const STATUS_NAMES = { q: "queued", r: "at a worker", s: "succeeded", f: "failed", c: "never ran" };

function renderCells(letters, total) {
  const cells = $("cells");
  while (cells.children.length < letters.length) {
    const cell = el("span", null, "cell");
    cell.dataset.index = cells.children.length;
    cells.append(cell);
  }
  for (let i = 0; i < letters.length; i++) {
    const cell = cells.children[i];
    if (cell.dataset.status !== letters[i]) {
      cell.dataset.status = letters[i];
      cell.className = `cell ${letters[i]}`;
      cell.title = `input ${i}: ${STATUS_NAMES[letters[i]]}`;
    }
  }
  const hidden = total - letters.length;
  if (hidden > 0 && !cells.dataset.more) {
    cells.dataset.more = "1";
    cells.after(el("p", `and ${hidden} more inputs`, "muted"));
  }
}

function appendLines(lines) {
  const logs = $("logs");
  const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
  for (const line of lines) {
    const row = el("div", null, `line ${line.stream}`);
    row.dataset.input = line.input;
    const label = line.input === null ? "not kept"
      : line.stream === "error" ? `input ${line.input} failed` : `input ${line.input}`;
    row.append(el("span", label, "input"), el("span", line.text.replace(/\n$/, "")));
    logs.append(row);
  }
  while (logs.children.length > MAX_LINES) logs.firstChild.remove();
  if (atBottom) logs.scrollTop = logs.scrollHeight;
}

async function appendStoredLines(jobId) {
  // What it printed, as the cluster's Store keeps it: page by page, from the first line.
  let after = 0;
  for (;;) {
    const response = await fetch(`/jobs/${encodeURIComponent(jobId)}/logs?after=${after}`);
    if (!response.ok) return;
    const page = await response.json();
    appendLines(page.lines);
    if (!page.lines.length || page.next === after) return;
    after = page.next;
  }
}

async function openJob(jobId) {
  show("job");
  $("job-id").textContent = jobId;
  $("cells").replaceChildren();
  delete $("cells").dataset.more;
  $("logs").replaceChildren();
  const response = await fetch(`/jobs/${encodeURIComponent(jobId)}`);
  const job = await response.json();
  if (!response.ok) {
    $("job-error").textContent = job.message;
    return;
  }
  if (!("inputs" in job)) {
    // Ended a while ago: only its record and results are left.
    $("job-state").textContent = job.state;
    $("job-state").className = `state ${job.state}`;
    $("job-count").textContent = `${job.spec.n_inputs} inputs`;
    $("job-facts").textContent = "its inputs are no longer held; its results are: burla jobs result " + jobId;
    $("job-error").textContent = job.error || "";
    $("job-cost").textContent = costText(job);
    await appendStoredLines(jobId);
    return;
  }
  openFeed(`/dashboard/feed/jobs/${encodeURIComponent(jobId)}`, renderJob);
}

$("cancel").addEventListener("click", async () => {
  const jobId = $("job-id").textContent;
  $("cancel").disabled = true;
  await fetch(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" });
  $("cancel").disabled = false;
});

// Each user's total, read now and then: it reads every job's record.
const COSTS_EVERY_MS = 30000;

async function refreshCosts() {
  const response = await fetch("/costs");
  if (!response.ok) return;
  const body = $("costs").tBodies[0];
  body.replaceChildren();
  for (const user of (await response.json()).users) {
    const row = el("tr");
    const unpriced = user.unpriced ? ` (+${user.unpriced} without a price)` : "";
    row.append(el("td", user.user), el("td", user.jobs),
      el("td", (user.node_seconds / 3600).toFixed(2)), el("td", usd(user.usd) + unpriced));
    body.append(row);
  }
}

// Pages ---------------------------------------------------------------------------
function route() {
  const match = location.hash.match(/^#\/jobs\/([A-Za-z0-9-]+)$/);
  if (match) {
    openJob(match[1]);
  } else {
    show("overview");
    openFeed("/dashboard/feed/cluster", renderCluster);
  }
}

async function start() {
  const response = await fetch("/me");
  if (response.status === 401) {
    show("login");
    $("denied").hidden = location.hash !== "#denied";
    setConnection("signed out");
    return;
  }
  const user = (await response.json()).user;
  $("who").textContent = `signed in as ${user}`;
  // The admin (the cluster token's user) sees every user's jobs, with their owners; a
  // user sees only their own.
  const admin = user === ADMIN;
  document.body.classList.toggle("admin", admin);
  $("jobs-title").textContent = admin ? "Jobs" : "Your jobs";
  $("costs-title").textContent = admin ? "Cost by user" : "Your cost";
  refreshCosts();
  setInterval(refreshCosts, COSTS_EVERY_MS);
  window.addEventListener("hashchange", route);
  route();
}

start();

// Client compatibility: drives tandem's RunPod-compatible job API (docs/jobs.md) with RunPod's
// official JavaScript SDK, `runpod-sdk` (the version pinned in package.json), against a real
// `tandem serve`. See docs/client-compatibility.md.
//
//   cd build && ctest -R js.runpod_sdk --output-on-failure
//   TANDEM_BINARY=build/tandem node --test tests/js/runpod_sdk.test.mjs
//
// Every wait is a poll of a condition with a deadline; nothing sleeps a fixed time to let
// something happen.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import runpodSdk from "runpod-sdk";

const SOURCE_DIR =
  process.env.TANDEM_SOURCE_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BINARY = process.env.TANDEM_BINARY ?? path.join(SOURCE_DIR, "build/tandem");

const START_TIMEOUT_MS = 30_000; // the address line, then a ready worker
const JOB_TIMEOUT_MS = 20_000; // a digits job takes milliseconds; this only bounds a broken server
const STOP_TIMEOUT_MS = 5_000; // SIGTERM, then SIGKILL
const FINAL = ["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"];

// ---- helpers ---------------------------------------------------------------------------------

/** Calls `probe` until it returns something truthy, at most `timeoutMs`; returns that value. */
async function pollUntil(what, probe, timeoutMs = JOB_TIMEOUT_MS, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/** Rows of models/digits/heldout.csv: 64 pixel values (0..16) and the label. */
function loadHeldout() {
  const text = readFileSync(path.join(SOURCE_DIR, "models/digits/heldout.csv"), "utf8");
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const values = line.split(",").map(Number);
      assert.equal(values.length, 65, `heldout.csv: bad row ${line}`);
      return { pixels: values.slice(0, 64), label: values[64] };
    });
}

/** The Open Inference Protocol v2 request for one row: the job's `input`. */
const v2Input = (row) => ({ inputs: [{ name: "pixels", datatype: "FP32", shape: [1, 64], data: row.pixels }] });

/** The predicted label in a v2 response (the job's `output`). */
function labelOf(v2Response) {
  assert.ok(v2Response && Array.isArray(v2Response.outputs), `not a v2 response: ${JSON.stringify(v2Response)}`);
  const label = v2Response.outputs.find((o) => o.name === "label");
  assert.ok(label, `no "label" output in ${JSON.stringify(v2Response)}`);
  return Number(label.data[0]);
}

// ---- the server ------------------------------------------------------------------------------

const server = { dir: null, child: null, base: null, logPath: null };

function serverLogTail(lines = 40) {
  try {
    return readFileSync(server.logPath, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A test whose failure message carries the end of the server's log. */
function serverTest(name, fn) {
  test(name, { timeout: 30_000 }, async () => {
    try {
      await fn();
    } catch (error) {
      error.message += `\n--- tandem serve log (last lines) ---\n${serverLogTail()}`;
      throw error;
    }
  });
}

async function getJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

// Two endpoints on the same model directory:
// - `digits`, the endpoint of tests/integration/harness.cpp digits_endpoint(1): one dedicated worker.
// - `held`: a dedicated pool with `replicas: 0` and no serverless pool, so it never has any
//   capacity. A job submitted there with `policy.lowPriority` (which only takes idle capacity and
//   never scales a pool up, docs/jobs.md) stays IN_QUEUE for as long as the server runs: a
//   deterministic queued job for `cancel` and `purgeQueue`, with no race against a worker.
function writeConfig(dir) {
  const model = JSON.stringify(path.join(SOURCE_DIR, "models/digits"));
  const config = path.join(dir, "tandem.yaml");
  writeFileSync(
    config,
    [
      "server:",
      "  listen: 127.0.0.1:0",
      `  state: ${JSON.stringify(path.join(dir, "state"))}`,
      "endpoints:",
      "  digits:",
      `    model: ${model}`,
      "    slo: {timeout_ms: 3000}",
      "    dedicated: {replicas: 1, max_concurrency_per_worker: 4}",
      "  held:",
      `    model: ${model}`,
      "    dedicated: {replicas: 0}",
      "",
    ].join("\n"),
  );
  return config;
}

/** Resolves with "http://HOST:PORT" once the server prints its address; rejects if it exits first. */
function waitForAddress(child) {
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`tandem serve printed no address in ${START_TIMEOUT_MS} ms; stdout: ${stdout}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk) => {
      stdout += chunk;
      const match = /listening on (http:\/\/\S+:\d+)/.exec(stdout);
      if (match) {
        cleanup();
        resolve(match[1]);
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`tandem serve exited (${code ?? signal}) before printing its address; stdout: ${stdout}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.off("exit", onExit);
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
    child.once("exit", onExit);
  });
}

async function stopServer() {
  const child = server.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  // An unref'd timer: once the server is gone, it must not keep this process alive.
  const deadline = delay(STOP_TIMEOUT_MS, false, { ref: false });
  const stopped = await Promise.race([exited.then(() => true), deadline]);
  if (!stopped) {
    child.kill("SIGKILL");
    await exited;
  }
}

// If this process dies without running `after` (an uncaught error, a runner timeout), the
// server must not outlive it.
process.on("exit", () => {
  if (server.child && server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL");
});

before(async () => {
  server.dir = mkdtempSync(path.join(tmpdir(), "tandem-js-"));
  const config = writeConfig(server.dir);
  server.logPath = path.join(server.dir, "serve.log");
  const logFd = openSync(server.logPath, "a");
  server.child = spawn(BINARY, ["serve", "-c", config, "--shutdown-grace-ms", "3000"], {
    stdio: ["ignore", "pipe", logFd],
  });
  closeSync(logFd);
  server.child.stdout.resume(); // keep draining stdout after the address line
  try {
    server.base = await waitForAddress(server.child);
  } catch (error) {
    error.message += `\n--- tandem serve log ---\n${serverLogTail()}`;
    throw error;
  }
  await pollUntil(
    "a ready worker of endpoint digits (GET /admin/v1/workers)",
    async () => {
      const { status, body } = await getJson(`${server.base}/admin/v1/workers`);
      return status === 200 && body.workers.some((w) => w.endpoint === "digits" && w.state === "ready");
    },
    START_TIMEOUT_MS,
  );
});

after(async () => {
  await stopServer();
  if (server.dir) rmSync(server.dir, { recursive: true, force: true });
});

// ---- the tests -------------------------------------------------------------------------------

const endpointOf = (name) => runpodSdk("test-key", { baseUrl: `${server.base}/runpod/v2` }).endpoint(name);

// Jobs this file has seen COMPLETED on `digits`, for the health check.
let completedJobs = 0;

// Rows the model classifies correctly, with the synchronous answer for each: found by asking
// POST /v2/models/digits/infer rather than assumed. Distinct labels, so a job answered with
// another job's output is caught.
let knownRowsCache;
async function knownRows() {
  if (knownRowsCache) return knownRowsCache;
  const rows = [];
  const labels = new Set();
  for (const row of loadHeldout()) {
    if (labels.has(row.label)) continue;
    const { status, body } = await getJson(`${server.base}/v2/models/digits/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(v2Input(row)),
    });
    assert.equal(status, 200, `POST /v2/models/digits/infer: ${JSON.stringify(body)}`);
    if (labelOf(body) !== row.label) continue;
    labels.add(row.label);
    rows.push({ ...row, sync: body });
    if (rows.length === 4) break;
  }
  assert.ok(rows.length >= 2, "the digits model gets fewer than 2 held-out rows right");
  knownRowsCache = rows;
  return rows;
}

serverTest("run answers an id and IN_QUEUE; status polls to COMPLETED with the v2 output", async () => {
  const [row] = await knownRows();
  const endpoint = endpointOf("digits");
  const accepted = await endpoint.run({ input: v2Input(row) });
  assert.equal(typeof accepted.id, "string", `run: ${JSON.stringify(accepted)}`);
  assert.ok(accepted.id.length > 0);
  // docs/jobs.md: `run` answers IN_QUEUE once the job is recorded; a fast worker may have moved
  // it on by the time anyone looks, which is fine for a client.
  assert.ok(["IN_QUEUE", "IN_PROGRESS", "COMPLETED"].includes(accepted.status), `run: ${JSON.stringify(accepted)}`);

  const done = await pollUntil(`job ${accepted.id} to finish (status)`, async () => {
    const s = await endpoint.status(accepted.id);
    assert.equal(s.started, true, `status: ${JSON.stringify(s)}`); // the SDK's flag: HTTP 200
    return s.completed ? s : null;
  });
  assert.equal(done.status, "COMPLETED", `status: ${JSON.stringify(done)}`);
  assert.equal(done.succeeded, true);
  assert.equal(done.id, accepted.id);
  assert.equal(labelOf(done.output), row.label);
  assert.equal(labelOf(done.output), labelOf(row.sync));
  assert.equal(done.output.model_name, "digits");
  assert.equal(typeof done.delayTime, "number");
  assert.equal(typeof done.executionTime, "number");
  assert.ok(done.delayTime >= 0 && done.executionTime >= 0);
  assert.equal(typeof done.workerId, "string");
  completedJobs += 1;
});

serverTest("runSync answers COMPLETED with the output and the SDK's completed/succeeded flags", async () => {
  const endpoint = endpointOf("digits");
  // Several at once: each job must get its own row's answer.
  const known = await knownRows();
  const results = await Promise.all(known.map((row) => endpoint.runSync({ input: v2Input(row) }, 30_000)));
  const ids = new Set();
  results.forEach((result, i) => {
    assert.equal(result.status, "COMPLETED", `runSync: ${JSON.stringify(result)}`);
    assert.equal(result.completed, true);
    assert.equal(result.succeeded, true);
    assert.equal(typeof result.id, "string");
    ids.add(result.id);
    assert.equal(labelOf(result.output), known[i].label);
  });
  assert.equal(ids.size, results.length, "runSync jobs share an id");
  completedJobs += results.length;
});

serverTest("statusSync waits for a finished job, and returns a queued one after its wait", async () => {
  const [, row] = await knownRows();
  const done = await endpointOf("digits").run({ input: v2Input(row) });
  const finished = await endpointOf("digits").statusSync(done.id, 10_000);
  assert.equal(finished.status, "COMPLETED", `statusSync: ${JSON.stringify(finished)}`);
  assert.equal(labelOf(finished.output), row.label);
  completedJobs += 1;

  // The SDK clamps `wait` to at least 1000 ms: a job that cannot start comes back after about
  // that long, still queued, and the SDK reports it as not completed.
  const held = endpointOf("held");
  const queued = await held.run({ input: v2Input(row), policy: { lowPriority: true } });
  const t0 = Date.now();
  const still = await held.statusSync(queued.id, 1000);
  const waited = Date.now() - t0;
  assert.equal(still.status, "IN_QUEUE", `statusSync: ${JSON.stringify(still)}`);
  assert.equal(still.completed, false);
  assert.ok(waited >= 900, `status-sync?wait=1000 answered a queued job after ${waited} ms`);
  const cancelled = await held.cancel(queued.id);
  assert.equal(cancelled.status, "CANCELLED", `cancel: ${JSON.stringify(cancelled)}`);
});

serverTest("stream yields the output of a job, until the job is final", async () => {
  const known = await knownRows();
  const row = known[known.length - 1];
  const endpoint = endpointOf("digits");

  // Straight after run: the SDK keeps calling GET stream/{id} until the status is final.
  const running = await endpoint.run({ input: v2Input(row) });
  const chunks = [];
  for await (const chunk of endpoint.stream(running.id, JOB_TIMEOUT_MS)) chunks.push(chunk);
  assert.equal(chunks.length, 1, `stream chunks: ${JSON.stringify(chunks)}`);
  assert.equal(labelOf(chunks[0].output), row.label);
  completedJobs += 1;

  // A job already COMPLETED: one request, the same output.
  const again = [];
  for await (const chunk of endpoint.stream(running.id, JOB_TIMEOUT_MS)) again.push(chunk);
  assert.deepEqual(again, chunks);
});

serverTest("cancel of a queued job answers CANCELLED, and status says so afterwards", async () => {
  const [row] = await knownRows();
  const held = endpointOf("held");
  const queued = await held.run({ input: v2Input(row), policy: { lowPriority: true } });
  assert.equal(queued.status, "IN_QUEUE", `run: ${JSON.stringify(queued)}`);
  const before = await held.status(queued.id);
  assert.equal(before.status, "IN_QUEUE", `status: ${JSON.stringify(before)}`);
  assert.equal(before.completed, false);

  const cancelled = await held.cancel(queued.id);
  assert.equal(cancelled.id, queued.id, `cancel: ${JSON.stringify(cancelled)}`);
  assert.equal(cancelled.status, "CANCELLED");

  const after = await held.status(queued.id);
  assert.equal(after.status, "CANCELLED", `status: ${JSON.stringify(after)}`);
  assert.equal(after.completed, true);
  assert.equal(after.succeeded, false);

  // Its stream is final and empty: the SDK's generator ends without yielding.
  const chunks = [];
  for await (const chunk of held.stream(queued.id, JOB_TIMEOUT_MS)) chunks.push(chunk);
  assert.deepEqual(chunks, []);
});

serverTest("purgeQueue removes the queued jobs and answers {removed, status}", async () => {
  const [row] = await knownRows();
  const held = endpointOf("held");
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await held.run({ input: v2Input(row), policy: { lowPriority: true } })).id);
  // 3, unless an earlier test left a job queued there.
  const queued = (await held.health()).jobs.inQueue;
  assert.ok(queued >= 3, `held: ${queued} jobs in queue`);

  const purged = await held.purgeQueue();
  assert.deepEqual(purged, { removed: queued, status: "completed" });
  assert.equal((await held.health()).jobs.inQueue, 0);
  // What a purged job's id answers is not part of the contract: gone (404, which the SDK's HTTP
  // client throws) or a final status; never still queued.
  for (const id of ids) {
    try {
      const s = await held.status(id);
      assert.ok(FINAL.includes(s.status), `a purged job: ${JSON.stringify(s)}`);
    } catch (error) {
      assert.equal(error.response?.status, 404, String(error));
    }
  }

  // Nothing queued on digits: nothing removed.
  assert.deepEqual(await endpointOf("digits").purgeQueue(), { removed: 0, status: "completed" });
});

serverTest("health answers job counts and worker counts", async () => {
  const health = await endpointOf("digits").health();
  for (const key of ["completed", "failed", "inProgress", "inQueue", "retried"])
    assert.equal(typeof health.jobs?.[key], "number", `health.jobs.${key}: ${JSON.stringify(health)}`);
  for (const key of ["idle", "initializing", "ready", "running", "throttled"])
    assert.equal(typeof health.workers?.[key], "number", `health.workers.${key}: ${JSON.stringify(health)}`);
  assert.ok(completedJobs > 0);
  assert.ok(
    health.jobs.completed >= completedJobs,
    `${completedJobs} jobs completed; health: ${JSON.stringify(health)}`,
  );
  assert.ok(health.workers.ready >= 1, `health: ${JSON.stringify(health)}`);

  const held = await endpointOf("held").health();
  assert.equal(held.workers.ready, 0, `held health: ${JSON.stringify(held)}`);
  assert.equal(held.jobs.inQueue, 0, `held health: ${JSON.stringify(held)}`);
});

serverTest("errors are HTTP statuses, which the SDK throws, with the {error} body", async () => {
  // The SDK's HTTP client (xior) rejects on any status outside 2xx; the SDK's own check for a
  // status other than 200 only ever sees 2xx ones.
  const rejectsWith = (status, pattern) => (error) => {
    assert.equal(error.response?.status, status, String(error));
    assert.match(String(error.response?.data?.error), pattern);
    return true;
  };
  const [row] = await knownRows();
  await assert.rejects(endpointOf("digits").status("no-such-job"), rejectsWith(404, /no-such-job/));
  await assert.rejects(
    endpointOf("no-such-endpoint").run({ input: v2Input(row) }),
    rejectsWith(404, /no-such-endpoint/),
  );
  const wrongInput = { inputs: [{ name: "x", datatype: "FP32", shape: [1, 1], data: [1] }] };
  await assert.rejects(endpointOf("digits").run({ input: wrongInput }), rejectsWith(400, /input/));
});

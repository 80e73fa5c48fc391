#!/usr/bin/env node
"use strict";
/**
 * Local Cosmos DB (NoSQL API) emulator for the Chorus dev host.
 *
 * Usage: node cosmos-emulator.js [--port N] [--host 127.0.0.1] [--data-file F [--save-interval-ms N]]
 *   --port 0 (the default) lets the OS pick. Prints exactly one line, {"ready":true,"port":N}, to stdout
 *   once listening; everything else goes to stderr. Exits cleanly on SIGTERM/SIGINT.
 *   --data-file: databases, containers and documents (with their LSNs, so change-feed continuations and
 *   leases stay valid, and modification times, so TTL clocks carry on) are loaded from F at start and
 *   written to it on SIGTERM/SIGINT; with --save-interval-ms also every N ms while they change (so a
 *   crash loses at most that much). Written to F.tmp first and renamed, so F is always whole.
 *   POST /_devhost/fault {"status": 503|429|null}: answer every other request with that status until
 *   healed with null (the local stack's fault control).
 *
 * Built on @vercel/cosmosdb-server (HTTPS with its self-signed certificate, auth ignored, in-memory). The
 * server comes from the package's createHttpsServer(); its request listener is replaced by ours
 * (cosmos/server.js), which serves all document routes itself and hands the rest (databases, containers,
 * partition key ranges, UDFs, account) to the stock handlers. Nothing under node_modules is modified.
 * What differs from the stock server, and why:
 *  - HTTP keep-alive with a long idle timeout: the stock CLI closes every connection (~32 req/s).
 *  - Missing item / container / database -> 404 {"code":"NotFound",...} (stock: 500 or an empty body),
 *    so the SDK raises CosmosResourceNotFoundError.
 *  - TTL applied (container defaultTtl: absent = off, -1 = on without default, n > 0 seconds; item ttl
 *    n seconds or -1 = never, ignored when the container's TTL is off): expired items are invisible to
 *    reads, queries and the change feed at once and purged by a 1 s sweep (stock: stored, never applied).
 *  - Queries honour the x-ms-documentdb-partitionkey header as their scope, with or without the key in
 *    WHERE, and EPK-range headers (feed ranges); cross-partition queries still work (stock: 400 or wrong).
 *  - Transactional batch: create/upsert/replace/read/delete/patch on the header's partition key, all or
 *    nothing, failed op's status + 424 for the rest, per-op ETag conditions (stock: create only, no
 *    rollback).
 *  - delete_all_items_by_partition_key (POST .../operations/partitionkeydelete).
 *  - Latest-version change feed (A-IM: Incremental Feed): per-container monotonic LSN, each item once at
 *    its latest change, `_lsn` on items, continuation = quoted LSN in the `etag` header (If-None-Match to
 *    resume, "*" = now, If-Modified-Since = point in time), 304 with a resumable etag when empty, paging by
 *    x-ms-max-item-count (default 100), scoping by partition key or EPK range (stock: everything, then 304).
 *    Deletes and expiries do not appear. A single partition key range ("0") is reported.
 *  - Items are kept per logical partition (no container scans for point operations or single-partition
 *    queries); the stock query engine's quadratic row building and result cleanup are replaced by linear
 *    code (cosmos/query.js: a 30k-item scan drops from ~8 s to ~25 ms).
 */
const { createHttpsServer } = require("@vercel/cosmosdb-server");
const Account = require("@vercel/cosmosdb-server/lib/account").default;
const fs = require("fs");
const { createHandler } = require("./cosmos/server");

const SWEEP_INTERVAL_MS = 1000;
const KEEP_ALIVE_MS = 10 * 60 * 1000;

function parseArgs(argv) {
  const args = { port: 0, host: "127.0.0.1", dataFile: null, saveIntervalMs: 0 };
  for (let i = 0; i < argv.length; i += 1) {
    const key = argv[i];
    if (key === "--port" || key === "-p") args.port = Number(argv[++i]);
    else if (key === "--host") args.host = argv[++i];
    else if (key === "--data-file") args.dataFile = argv[++i];
    else if (key === "--save-interval-ms") args.saveIntervalMs = Number(argv[++i]);
    else {
      console.error(`unknown argument: ${key}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    console.error("--port must be an integer in 0..65535");
    process.exit(2);
  }
  return args;
}

/** Writes the handler's snapshot to the data file when it changed since the last write. */
function createSaver(handler, dataFile) {
  let saved = -1;
  return function save() {
    if (!dataFile) return;
    const changes = handler.changeCount();
    if (changes === saved) return;
    const started = Date.now();
    const tmp = `${dataFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(handler.snapshot(Date.now())));
    fs.renameSync(tmp, dataFile);
    saved = changes;
    const ms = Date.now() - started;
    if (ms > 200) console.error(`cosmos emulator: saved ${dataFile} in ${ms} ms`);
  };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  let account = null;
  const handler = createHandler(() => account);
  const save = createSaver(handler, args.dataFile);

  const server = createHttpsServer({});
  // The stock listener closes every connection and serves items from its own store; ours replaces it.
  server.removeAllListeners("request");
  server.on("request", handler.requestListener);
  // Clients pool connections for minutes; a short idle timeout (Node's default is 5 s) makes them
  // race server-side closes and occasionally fail a request on a connection that was just closed.
  server.keepAliveTimeout = KEEP_ALIVE_MS;

  server.on("error", err => {
    console.error(`cosmos emulator: ${err.message}`);
    process.exit(1);
  });

  const sweeper = setInterval(() => {
    try {
      handler.sweep(Date.now());
    } catch (err) {
      console.error(err);
    }
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();

  server.listen(args.port, args.host, () => {
    const { address, port } = server.address();
    // The account document advertises the endpoint the SDK switches to, so it must be this listener.
    let hostname = address === "0.0.0.0" || address === "::" ? "localhost" : address;
    if (hostname.includes(":")) hostname = `[${hostname}]`;
    account = new Account(hostname, port);
    if (args.dataFile && fs.existsSync(args.dataFile)) {
      // Synchronous, before the first request is handled.
      handler.restore(JSON.parse(fs.readFileSync(args.dataFile, "utf8")));
      console.error(`cosmos emulator: loaded ${args.dataFile}`);
      save(); // marks the loaded state as saved
    }
    if (args.dataFile && args.saveIntervalMs > 0) {
      setInterval(() => {
        try {
          save();
        } catch (err) {
          console.error(`cosmos emulator: cannot save ${args.dataFile}: ${err.message}`);
        }
      }, args.saveIntervalMs).unref();
    }
    process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`);
  });

  let stopping = false;
  const stop = signal => {
    if (stopping) return;
    stopping = true;
    console.error(`cosmos emulator: ${signal}, shutting down`);
    clearInterval(sweeper);
    try {
      if (account) save();
    } catch (err) {
      console.error(`cosmos emulator: cannot save ${args.dataFile}: ${err.message}`);
    }
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main();

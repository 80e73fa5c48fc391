"use strict";
/*
 * Request handling for the emulator. Document routes (items, queries, batch, change feed, delete by
 * partition key) are served here from cosmos/store.js; everything else (databases, containers, partition
 * key ranges, UDFs, account metadata) is delegated to the stock @vercel/cosmosdb-server handlers, wrapped
 * the way its own (unexported) request handler wraps them.
 */
const path = require("path");
const { randomUUID } = require("crypto");
const { DocStore, Txn, etagMatches } = require("./store");
const { applyPatch, PatchError } = require("./patch");
const { compile, QuerySyntaxError } = require("./query");

const serverLib = path.dirname(require.resolve("@vercel/cosmosdb-server"));
const stockRoutes = require(path.join(serverLib, "routes")).default;

const MAX_DOCUMENT_BYTES = 2 * 1024 * 1024;
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const MAX_BATCH_OPERATIONS = 100;
const DEFAULT_CHANGE_FEED_PAGE = 100;
const QUERY_METRICS =
  "totalExecutionTimeInMs=0.00;queryCompileTimeInMs=0.00;queryLogicalPlanBuildTimeInMs=0.00;" +
  "queryPhysicalPlanBuildTimeInMs=0.00;queryOptimizationTimeInMs=0.00;VMExecutionTimeInMs=0.00;" +
  "indexLookupTimeInMs=0.00;documentLoadTimeInMs=0.00;systemFunctionExecuteTimeInMs=0.00;" +
  "userFunctionExecuteTimeInMs=0.00;retrievedDocumentCount=0;retrievedDocumentSize=0;outputDocumentCount=1;" +
  "outputDocumentSize=0;writeOutputTimeInMs=0.00;indexUtilizationRatio=0.00";

const ERROR_CODES = {
  400: "BadRequest",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  412: "PreconditionFailed",
  413: "RequestEntityTooLarge",
  500: "InternalServerError",
};

const MESSAGES = {
  notFound: "Entity with the specified id does not exist in the system.",
  conflict: "Entity with the specified id already exists in the system.",
  unique: "Unique index constraint violation.",
  precondition: "Operation cannot be performed because one of the specified precondition is not met.",
  pkMismatch: "PartitionKey extracted from document doesn't match the one specified in the header.",
};

/** The outcome of one document operation, shared by single requests and batch entries. */
function fail(status, message) {
  return { status, error: { code: ERROR_CODES[status] || "Error", message } };
}

function ok(status, doc) {
  return { status, doc };
}

function isTrue(req, name) {
  const v = req.headers[name];
  return typeof v === "string" && v.toLowerCase() === "true";
}

function headerValue(req, name) {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function validateId(id) {
  if (typeof id !== "string" || id.length === 0) {
    return "The input content is invalid because the required properties - 'id; ' - are missing.";
  }
  if (id.length > 1023 || /[/\\?#]/.test(id)) {
    return `The input name '${id}' is invalid. Ensure to provide a unique non-empty string less than '1024' characters and without '/', '\\', '?' or '#'.`;
  }
  return null;
}

function validateTtl(store, doc) {
  if (!store.ttlEnabled || doc.ttl === undefined || doc.ttl === null) return null;
  const { ttl } = doc;
  if (typeof ttl === "number" && (ttl === -1 || (Number.isInteger(ttl) && ttl > 0))) return null;
  return "The value of the 'ttl' property must be -1 or a positive integer.";
}

/** Checks shared by every operation that writes a client-supplied body. */
function validateBody(txn, body) {
  if (!body || typeof body !== "object" || Array.isArray(body))
    return fail(400, "The document body must be a JSON object.");
  const idError = validateId(body.id);
  if (idError) return fail(400, idError);
  if (DocStore.keyOf(txn.store.componentsOf(body)) !== txn.key) return fail(400, MESSAGES.pkMismatch);
  const ttlError = validateTtl(txn.store, body);
  if (ttlError) return fail(400, ttlError);
  return null;
}

function preconditionFails(current, ifMatch, ifNoneMatch) {
  if (ifMatch && (!current || !etagMatches(current, ifMatch))) return true;
  if (ifNoneMatch && current && etagMatches(current, ifNoneMatch)) return true;
  return false;
}

// --- document operations (stage into a Txn; the caller commits when everything succeeded) ---

function opCreate(txn, body) {
  const invalid = validateBody(txn, body);
  if (invalid) return invalid;
  if (txn.current(body.id)) return fail(409, MESSAGES.conflict);
  const doc = txn.materialize(body, null);
  if (txn.uniqueConflict(doc)) return fail(409, MESSAGES.unique);
  txn.stage(body.id, doc);
  return ok(201, doc);
}

function opUpsert(txn, body, { ifMatch, ifNoneMatch } = {}) {
  const invalid = validateBody(txn, body);
  if (invalid) return invalid;
  const current = txn.current(body.id);
  if (preconditionFails(current, ifMatch, ifNoneMatch)) return fail(412, MESSAGES.precondition);
  const doc = txn.materialize(body, current);
  if (txn.uniqueConflict(doc)) return fail(409, MESSAGES.unique);
  txn.stage(body.id, doc);
  return ok(current ? 200 : 201, doc);
}

function opReplace(txn, id, body, { ifMatch, ifNoneMatch } = {}) {
  const invalid = validateBody(txn, body);
  if (invalid) return invalid;
  if (body.id !== id) return fail(400, "The id in the document body does not match the id in the request.");
  const current = txn.current(id);
  if (!current) return fail(404, MESSAGES.notFound);
  if (preconditionFails(current, ifMatch, ifNoneMatch)) return fail(412, MESSAGES.precondition);
  const doc = txn.materialize(body, current);
  if (txn.uniqueConflict(doc)) return fail(409, MESSAGES.unique);
  txn.stage(id, doc);
  return ok(200, doc);
}

function opRead(txn, id, { ifNoneMatch } = {}) {
  const current = txn.current(id);
  if (!current) return fail(404, MESSAGES.notFound);
  if (ifNoneMatch && etagMatches(current, ifNoneMatch)) return { status: 304, doc: null };
  return ok(200, current);
}

function opDelete(txn, id, { ifMatch } = {}) {
  const current = txn.current(id);
  if (!current) return fail(404, MESSAGES.notFound);
  if (preconditionFails(current, ifMatch, null)) return fail(412, MESSAGES.precondition);
  txn.stage(id, null);
  return { status: 204, doc: null };
}

function conditionHolds(doc, condition) {
  // The SDK sends the predicate as "FROM c WHERE ..."; run it as a query over the one document.
  return compile(`SELECT * ${condition}`).exec([doc], {}).result.length > 0;
}

function opPatch(txn, id, operations, condition, { ifMatch } = {}) {
  const current = txn.current(id);
  if (!current) return fail(404, MESSAGES.notFound);
  if (preconditionFails(current, ifMatch, null)) return fail(412, MESSAGES.precondition);
  if (condition) {
    let holds;
    try {
      holds = conditionHolds(current, condition);
    } catch (err) {
      return fail(400, `Invalid filter predicate: ${err.message}`);
    }
    if (!holds) return fail(412, "Condition specified in the patch request is not satisfied.");
  }
  let patched;
  try {
    patched = applyPatch(current, operations);
  } catch (err) {
    if (err instanceof PatchError) return fail(400, err.message);
    throw err;
  }
  if (patched.id !== id) return fail(400, "Patch operations cannot change the id.");
  if (DocStore.keyOf(txn.store.componentsOf(patched)) !== txn.key) {
    return fail(400, "Patch operations cannot change the partition key.");
  }
  const ttlError = validateTtl(txn.store, patched);
  if (ttlError) return fail(400, ttlError);
  const doc = txn.materialize(patched, current);
  if (txn.uniqueConflict(doc)) return fail(409, MESSAGES.unique);
  txn.stage(id, doc);
  return ok(200, doc);
}

// --- HTTP plumbing ---

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", chunk => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on("end", () => {
      if (size > MAX_REQUEST_BYTES) reject(new HttpError(413, "Request size is too large."));
      else resolve(Buffer.concat(chunks, size));
    });
    req.on("error", reject);
  });
}

async function readJson(req) {
  const buf = await readBody(req);
  if (!buf.length) return { value: undefined, size: 0 };
  try {
    return { value: JSON.parse(buf.toString("utf8")), size: buf.length };
  } catch (err) {
    throw new HttpError(400, `The request body is not valid JSON: ${err.message}`);
  }
}

function send(req, res, status, body, headers) {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("x-ms-activity-id", randomUUID());
  res.setHeader("x-ms-request-charge", "1");
  if (headers) for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (status === 204 || status === 304 || body === undefined || body === null) res.end();
  else res.end(typeof body === "string" ? body : JSON.stringify(body));
}

function sendError(req, res, status, message) {
  send(req, res, status, { code: ERROR_CODES[status] || "Error", message });
}

/** Send one operation result as a whole HTTP response (single-item requests). */
function sendResult(req, res, result) {
  if (result.error) {
    send(req, res, result.status, result.error);
    return;
  }
  const headers = {};
  if (result.doc && result.doc._etag) headers.etag = result.doc._etag;
  const minimal = /return=minimal/i.test(headerValue(req, "prefer") || "");
  send(req, res, result.status, minimal ? undefined : result.doc, headers);
}

const FAULT_PATH = "/_devhost/fault";
// What a throttled (429) answer asks the client to wait, as the service's x-ms-retry-after-ms does.
const FAULT_RETRY_AFTER_MS = 500;

function createHandler(getAccount) {
  const stores = new Map(); // container _rid -> DocStore
  let metadataChanges = 0; // databases and containers created, replaced or deleted
  // An injected fault (the stack's fault control): every request is answered with this status.
  let faultStatus = null;

  function storeFor(collData) {
    let store = stores.get(collData._rid);
    if (!store) {
      store = new DocStore(collData);
      stores.set(collData._rid, store);
    }
    store.sync(collData);
    return store;
  }

  function resolveContainer(dbId, collId) {
    const database = getAccount().database(dbId);
    if (!database.read()) throw new HttpError(404, `Database '${dbId}' does not exist.`);
    const collection = database.collection(collId);
    const data = collection.read();
    if (!data) throw new HttpError(404, `Container '${collId}' does not exist in database '${dbId}'.`);
    return { collection, data, store: storeFor(data) };
  }

  /** Partition key components from the request header; required for point operations. */
  function requiredComponents(req, store) {
    const header = headerValue(req, "x-ms-documentdb-partitionkey");
    if (header === undefined) {
      if (!store.pkPaths.length) return [];
      throw new HttpError(400, "PartitionKey value must be supplied for this operation.");
    }
    const components = DocStore.componentsFromHeader(header);
    if (!components) throw new HttpError(400, `Invalid x-ms-documentdb-partitionkey header: ${header}`);
    if (store.pkPaths.length && components.length !== store.pkPaths.length) {
      throw new HttpError(
        400,
        "The partition key supplied in x-ms-partitionkey header has the wrong number of components.",
      );
    }
    return components;
  }

  /**
   * Which partitions a feed/query request covers: null for the whole container, else a list. Scoped by
   * the partition key header, or by an EPK range (feed ranges and per-partition-key change feeds).
   */
  function scopeOf(req, store) {
    const header = headerValue(req, "x-ms-documentdb-partitionkey");
    if (header !== undefined) {
      const components = DocStore.componentsFromHeader(header);
      if (!components) throw new HttpError(400, `Invalid x-ms-documentdb-partitionkey header: ${header}`);
      const part = store.parts.get(DocStore.keyOf(components));
      return part ? [part] : [];
    }
    const start = headerValue(req, "x-ms-start-epk");
    const end = headerValue(req, "x-ms-end-epk");
    if (start === undefined && end === undefined) return null;
    const min = (start || "").toUpperCase();
    const max = (end === undefined ? "FF" : end).toUpperCase();
    if (min === "" && max === "FF") return null;
    return store.partitionsInRange(min, max);
  }

  function feedHeaders(req, count, continuation) {
    const headers = { "x-ms-item-count": String(count) };
    if (continuation) headers["x-ms-continuation"] = JSON.stringify(continuation);
    if (req.headers["x-ms-documentdb-populatequerymetrics"])
      headers["x-ms-documentdb-query-metrics"] = QUERY_METRICS;
    return headers;
  }

  function parseContinuation(req) {
    const raw = headerValue(req, "x-ms-continuation");
    if (!raw) return null;
    try {
      return JSON.parse(raw);
    } catch (err) {
      throw new HttpError(400, "Invalid continuation token.");
    }
  }

  function maxItemCount(req) {
    const n = parseInt(headerValue(req, "x-ms-max-item-count"), 10);
    return Number.isFinite(n) && n > 0 ? n : null;
  }

  function runQuery(req, res, ctx, sql, parameters) {
    const { data, collection, store } = ctx;
    let result;
    try {
      const query = compile(sql);
      const docs = store.visibleDocs(scopeOf(req, store), Date.now());
      result = query.exec(docs, {
        parameters,
        udf: collection.userDefinedFunctions.functions,
        maxItemCount: maxItemCount(req),
        continuation: parseContinuation(req),
        compositeIndexes: (data.indexingPolicy && data.indexingPolicy.compositeIndexes) || [],
      });
    } catch (err) {
      if (err instanceof HttpError) throw err;
      // Syntax errors, missing composite indexes and engine type errors are all the query's fault.
      throw new HttpError(
        400,
        err instanceof QuerySyntaxError ? `Syntax error: ${err.message}` : err.message,
      );
    }
    const documents = result.result;
    send(
      req,
      res,
      200,
      { _rid: data._rid, Documents: documents, _count: documents.length },
      feedHeaders(req, documents.length, result.continuation),
    );
  }

  function changeFeed(req, res, ctx) {
    const { data, store } = ctx;
    const aim = String(headerValue(req, "a-im")).toLowerCase();
    if (aim !== "incremental feed") {
      throw new HttpError(400, "Only the latest-version change feed (A-IM: Incremental Feed) is supported.");
    }
    const now = Date.now();
    const ifNoneMatch = headerValue(req, "if-none-match");
    let afterLsn = 0;
    if (ifNoneMatch === "*") afterLsn = store.lsn;
    else if (ifNoneMatch) {
      afterLsn = Number(String(ifNoneMatch).replace(/"/g, ""));
      if (!Number.isInteger(afterLsn) || afterLsn < 0)
        throw new HttpError(400, `Invalid change feed continuation '${ifNoneMatch}'.`);
    }
    const since = Date.parse(headerValue(req, "if-modified-since") || "");
    const page = store.changeFeed(
      scopeOf(req, store),
      afterLsn,
      Number.isFinite(since) ? since : 0,
      maxItemCount(req) || DEFAULT_CHANGE_FEED_PAGE,
      now,
    );
    const headers = {
      etag: `"${page.continuationLsn}"`,
      lsn: String(store.lsn),
      "x-ms-item-count": String(page.entries.length),
    };
    if (!page.entries.length) {
      send(req, res, 304, undefined, headers);
      return;
    }
    const documents = page.entries.map(e => ({ ...e.doc, _lsn: e.lsn }));
    send(req, res, 200, { _rid: data._rid, Documents: documents, _count: documents.length }, headers);
  }

  function batch(req, res, ctx, operations) {
    if (!Array.isArray(operations)) throw new HttpError(400, "The batch request body must be a JSON array.");
    if (!operations.length) throw new HttpError(400, "Batch request has no operations.");
    if (operations.length > MAX_BATCH_OPERATIONS) {
      throw new HttpError(400, "Batch request has more operations than what is supported.");
    }
    const txn = new Txn(ctx.store, requiredComponents(req, ctx.store), Date.now());
    const results = [];
    let failedAt = -1;
    for (let i = 0; i < operations.length; i += 1) {
      const op = operations[i] || {};
      const conditions = { ifMatch: op.ifMatch, ifNoneMatch: op.ifNoneMatch };
      const body = op.resourceBody;
      let result;
      switch (op.operationType) {
        case "Create":
          result = opCreate(txn, body);
          break;
        case "Upsert":
          result = opUpsert(txn, body, conditions);
          break;
        case "Replace":
          result = opReplace(txn, op.id, body, conditions);
          break;
        case "Read":
          result = opRead(txn, op.id, conditions);
          break;
        case "Delete":
          result = opDelete(txn, op.id, conditions);
          break;
        case "Patch":
          result = opPatch(txn, op.id, body && body.operations, body && body.condition, conditions);
          break;
        default:
          result = fail(400, `Operation type '${op.operationType}' is not supported in a batch.`);
      }
      results.push(result);
      if (result.error) {
        failedAt = i;
        break;
      }
    }
    if (failedAt >= 0) {
      // Atomic: nothing staged is applied; the failed operation reports its status, all others 424.
      const body = operations.map((op, i) =>
        i === failedAt
          ? { statusCode: results[i].status, requestCharge: 0, message: results[i].error.message }
          : { statusCode: 424, requestCharge: 0 },
      );
      send(req, res, 207, body);
      return;
    }
    txn.commit();
    const body = results.map(r => {
      const item = { statusCode: r.status, requestCharge: 1 };
      if (r.doc) {
        item.eTag = r.doc._etag;
        item.resourceBody = r.doc;
      }
      return item;
    });
    send(req, res, 200, body);
  }

  /** Run one operation in its own transaction and answer with its result. */
  function single(req, res, components, store, fn) {
    const txn = new Txn(store, components, Date.now());
    const result = fn(txn);
    if (!result.error) txn.commit();
    sendResult(req, res, result);
  }

  function conditionsOf(req) {
    return { ifMatch: headerValue(req, "if-match"), ifNoneMatch: headerValue(req, "if-none-match") };
  }

  async function documentsRoute(req, res, dbId, collId) {
    if (req.method === "GET") {
      const ctx = resolveContainer(dbId, collId);
      if (req.headers["a-im"]) changeFeed(req, res, ctx);
      else runQuery(req, res, ctx, "SELECT * FROM c", []);
      return;
    }
    if (req.method !== "POST") throw new HttpError(405, `${req.method} is not supported on documents.`);
    const { value: body, size } = await readJson(req);
    const ctx = resolveContainer(dbId, collId);
    const contentType = String(headerValue(req, "content-type") || "");
    if (isTrue(req, "x-ms-documentdb-isquery") || contentType.startsWith("application/query+json")) {
      if (!body || typeof body.query !== "string")
        throw new HttpError(400, "The query body must contain 'query'.");
      runQuery(req, res, ctx, body.query, body.parameters || []);
      return;
    }
    if (isTrue(req, "x-ms-cosmos-is-batch-request")) {
      batch(req, res, ctx, body);
      return;
    }
    if (size > MAX_DOCUMENT_BYTES) throw new HttpError(413, "Request size is too large.");
    const { store } = ctx;
    if (!body || typeof body !== "object" || Array.isArray(body))
      throw new HttpError(400, "The document body must be a JSON object.");
    // Creates may omit the header on containers without a partition key; otherwise it must match the body.
    const header = headerValue(req, "x-ms-documentdb-partitionkey");
    const components = header === undefined ? store.componentsOf(body) : requiredComponents(req, store);
    if (isTrue(req, "x-ms-documentdb-is-upsert")) {
      single(req, res, components, store, txn => opUpsert(txn, body, conditionsOf(req)));
    } else {
      single(req, res, components, store, txn => opCreate(txn, body));
    }
  }

  async function documentRoute(req, res, dbId, collId, docId) {
    const { method } = req;
    if (method === "GET" || method === "DELETE") {
      const { store } = resolveContainer(dbId, collId);
      const components = requiredComponents(req, store);
      if (method === "GET") single(req, res, components, store, txn => opRead(txn, docId, conditionsOf(req)));
      else single(req, res, components, store, txn => opDelete(txn, docId, conditionsOf(req)));
      return;
    }
    if (method !== "PUT" && method !== "PATCH")
      throw new HttpError(405, `${method} is not supported on a document.`);
    const { value: body, size } = await readJson(req);
    if (size > MAX_DOCUMENT_BYTES) throw new HttpError(413, "Request size is too large.");
    const { store } = resolveContainer(dbId, collId);
    const components = requiredComponents(req, store);
    if (method === "PUT") {
      single(req, res, components, store, txn => opReplace(txn, docId, body, conditionsOf(req)));
      return;
    }
    // The SDK sends {"operations": [...], "condition": "FROM c WHERE ..."}; a bare array is also accepted.
    const operations = Array.isArray(body) ? body : body && body.operations;
    const condition = Array.isArray(body) ? undefined : body && body.condition;
    single(req, res, components, store, txn => opPatch(txn, docId, operations, condition, conditionsOf(req)));
  }

  async function deleteByPartitionKey(req, res, dbId, collId) {
    await readBody(req);
    const { store } = resolveContainer(dbId, collId);
    const components = requiredComponents(req, store);
    store.deletePartition(DocStore.keyOf(components));
    send(req, res, 200, {});
  }

  function dropStores(rids) {
    rids.forEach(rid => stores.delete(rid));
  }

  /** Stock handler invocation, mirroring the package's own request wrapper. */
  async function stock(req, res, route) {
    const [params, handler] = route;
    if (req.method !== "GET") metadataChanges += 1;
    let body;
    try {
      body = await handler(getAccount(), req, res, params);
    } catch (err) {
      console.error(err);
      body = { message: err.message };
      res.statusCode = 500;
    }
    if (res.statusCode >= 400) {
      body = { code: ERROR_CODES[res.statusCode] || "Error", ...(body || {}) };
      if (!body.message) body.message = res.statusCode === 404 ? "Resource Not Found" : "";
    }
    const headers = {};
    if (body && body._etag) headers.etag = body._etag;
    let status = res.statusCode;
    if (req.headers["a-im"] && status === 200) {
      // Partition key range change feed: one static generation, as the stock server reports it.
      if (req.headers["if-none-match"]) status = 304;
      headers.etag = "1";
    }
    send(req, res, status, status === 204 ? undefined : body, headers);
  }

  async function handleFault(req, res) {
    const { value } = await readJson(req);
    const status = value && value.status;
    if (status !== null && status !== 429 && status !== 503) {
      throw new HttpError(400, "The fault status must be 429, 503 or null (heal).");
    }
    faultStatus = status;
    console.error(`cosmos emulator: ${status ? `answering every request with ${status}` : "fault healed"}`);
    send(req, res, 200, { status: faultStatus });
  }

  async function handle(req, res) {
    let pathname = req.url || "/";
    const q = pathname.indexOf("?");
    if (q >= 0) pathname = pathname.slice(0, q);
    if (pathname === FAULT_PATH && req.method === "POST") {
      await handleFault(req, res);
      return;
    }
    if (faultStatus !== null) {
      await readBody(req).catch(() => undefined);
      const throttled = faultStatus === 429;
      send(
        req,
        res,
        faultStatus,
        {
          code: throttled ? "TooManyRequests" : "ServiceUnavailable",
          message: throttled
            ? "Request rate is large (a fault injected by the local stack)."
            : "The service is unavailable (a fault injected by the local stack).",
        },
        throttled ? { "x-ms-retry-after-ms": String(FAULT_RETRY_AFTER_MS), "x-ms-substatus": "3200" } : {},
      );
      return;
    }
    let segments;
    try {
      segments = pathname.split("/").filter(Boolean).map(decodeURIComponent);
    } catch (err) {
      throw new HttpError(400, `Malformed request path ${pathname}.`);
    }
    const [dbs, dbId, colls, collId, kind, docId] = segments;
    const underContainer = dbs === "dbs" && colls === "colls";
    if (underContainer && kind === "docs" && segments.length === 5) {
      await documentsRoute(req, res, dbId, collId);
      return;
    }
    if (underContainer && kind === "docs" && segments.length === 6) {
      await documentRoute(req, res, dbId, collId, docId);
      return;
    }
    if (underContainer && kind === "operations" && docId === "partitionkeydelete" && req.method === "POST") {
      await deleteByPartitionKey(req, res, dbId, collId);
      return;
    }
    const route = stockRoutes(req);
    if (!route) {
      sendError(req, res, 400, `No route for ${req.method} ${pathname}.`);
      return;
    }
    if (req.method === "DELETE" && dbs === "dbs" && segments.length <= 4) {
      // Forget the documents of deleted containers (collected before the stock handler removes them).
      const database = getAccount().database(dbId);
      const rids = [];
      if (segments.length === 2 && database.read()) {
        const all = database.collections.read({}) || { result: [] };
        all.result.forEach(c => rids.push(c._rid));
      } else if (segments.length === 4 && colls === "colls") {
        const data = database.collection(collId).read();
        if (data) rids.push(data._rid);
      }
      await stock(req, res, route);
      if (res.statusCode < 300) dropStores(rids);
      return;
    }
    await stock(req, res, route);
  }

  function requestListener(req, res) {
    handle(req, res).catch(err => {
      if (!(err instanceof HttpError)) console.error(err);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (!req.complete) req.resume(); // drain an unread body so the connection stays usable
      sendError(req, res, err instanceof HttpError ? err.status : 500, err.message);
    });
  }

  function sweep(now) {
    let purged = 0;
    for (const store of stores.values()) purged += store.sweep(now);
    return purged;
  }

  /** How many changes the documents and metadata have seen; a saved copy taken at n is current while n. */
  function changeCount() {
    let n = metadataChanges;
    for (const store of stores.values()) n += store.changes;
    return n;
  }

  /** Databases, containers and every container's documents, as JSON-ready data (see restore). */
  function snapshot(now) {
    const account = getAccount();
    const databases = [];
    for (const dbItem of account.databases._data.values()) {
      const database = dbItem;
      const containers = [];
      for (const collItem of database.collections._data.values()) {
        const data = collItem.read();
        const store = stores.get(data._rid);
        containers.push({ data, documents: store ? store.snapshot(now) : null });
      }
      databases.push({ data: database.read(), ridCount: database.collections._ridCount, containers });
    }
    return { version: 1, ridCount: account.databases._ridCount, databases };
  }

  /** Load a snapshot() into a fresh account (before the first request is served). */
  function restore(saved) {
    if (!saved || saved.version !== 1) throw new Error("unknown data file format");
    const account = getAccount();
    account.databases._ridCount = saved.ridCount;
    for (const db of saved.databases) {
      account.databases._set(db.data);
      const database = account.database(db.data.id);
      database.collections._ridCount = db.ridCount;
      for (const container of db.containers) {
        database.collections._set(container.data);
        const data = database.collection(container.data.id).read();
        const store = new DocStore(data);
        if (container.documents) store.restore(container.documents);
        stores.set(data._rid, store);
      }
    }
  }

  return { requestListener, sweep, stores, snapshot, restore, changeCount };
}

module.exports = { createHandler };

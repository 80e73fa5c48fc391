"use strict";
/*
 * In-memory document store for one container, replacing the stock server's per-collection `Items`:
 *  - items live in logical partitions (Map pkKey -> Partition, each a Map id -> Entry), so point reads,
 *    writes and partition-scoped queries never scan the container;
 *  - every write takes the next value of a per-container monotonic LSN and is appended to a global and a
 *    per-partition change-feed log; an item's older log slots go stale, so a latest-version feed read
 *    returns each item once, at the position of its latest change (logs are compacted when mostly stale);
 *  - TTL: each entry carries its expiry time; expired entries are invisible immediately and purged by a
 *    min-heap sweep; expiries are recomputed when the container's defaultTtl changes;
 *  - `_rid`s sort (as strings) in creation order, which the stock query engine relies on for paging.
 */
const { randomUUID } = require("crypto");
const { effectivePartitionKey, nextEpk, UNDEFINED_COMPONENT } = require("./epk");

const SYSTEM_PROPERTIES = new Set(["_rid", "_self", "_etag", "_attachments", "_ts", "_lsn"]);
const BASE52 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const COMPACT_MIN_STALE = 1024;

function splitPath(p) {
  return String(p)
    .replace(/^\//, "")
    .split("/")
    .map(s => s.replace(/^"(.*)"$/, "$1"));
}

function getPath(doc, segments) {
  let v = doc;
  for (const s of segments) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[s];
  }
  return v;
}

/** Partition key components are scalars; anything else counts as "undefined" (serialized {}). */
function normalizeComponent(v) {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  return UNDEFINED_COMPONENT;
}

function normalizeTtl(v) {
  return typeof v === "number" && (v === -1 || v > 0) ? v : null;
}

function stripQuotes(etag) {
  return typeof etag === "string" ? etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1") : etag;
}

function etagMatches(doc, etag) {
  return etag === "*" || stripQuotes(doc._etag) === stripQuotes(etag);
}

/** First index i in the sorted array with arr[i] > value (strict) or arr[i] >= value. */
function lowerBound(arr, value, strict) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (strict ? arr[mid] <= value : arr[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class Entry {
  constructor(id, part, doc) {
    this.id = id;
    this.part = part;
    this.doc = doc;
    this.rid = doc._rid;
    this.lsn = 0;
    this.mtime = 0;
    this.exp = Infinity;
    this.gone = false;
  }
}

/** Append-only change-feed log; slot i is live while entries[i] still has lsns[i] and is not deleted. */
class FeedLog {
  constructor() {
    this.lsns = [];
    this.times = [];
    this.entries = [];
    this.stale = 0;
  }

  append(entry) {
    this.lsns.push(entry.lsn);
    this.times.push(entry.mtime);
    this.entries.push(entry);
  }

  isLive(i) {
    const e = this.entries[i];
    return !e.gone && e.lsn === this.lsns[i];
  }

  /** Call after an entry's current slot stopped being live (rewritten or deleted). */
  staled() {
    this.stale += 1;
    if (this.stale > COMPACT_MIN_STALE && this.stale * 2 > this.lsns.length) this.compact();
  }

  compact() {
    const lsns = [];
    const times = [];
    const entries = [];
    for (let i = 0; i < this.lsns.length; i += 1) {
      if (this.isLive(i)) {
        lsns.push(this.lsns[i]);
        times.push(this.times[i]);
        entries.push(this.entries[i]);
      }
    }
    this.lsns = lsns;
    this.times = times;
    this.entries = entries;
    this.stale = 0;
  }

  /** First slot that is after `afterLsn` and modified at or after `sinceMs`. */
  startIndex(afterLsn, sinceMs) {
    let i = lowerBound(this.lsns, afterLsn, true);
    if (sinceMs > 0) i = Math.max(i, lowerBound(this.times, sinceMs, false));
    return i;
  }
}

class Partition {
  constructor(key, components, uniqueKeyCount) {
    this.key = key;
    this.components = components;
    this.docs = new Map();
    // This partition's own change-feed log, built on its first partition-scoped feed read (see
    // DocStore.partitionLog): most partitions (a feed item's recipient, a post's id) are never read that
    // way, and an empty log's three arrays cost more than the item they would index.
    this.log = null;
    this.unique = uniqueKeyCount ? Array.from({ length: uniqueKeyCount }, () => new Map()) : null;
    this.epk = null;
  }
}

class DocStore {
  constructor(coll) {
    this.collRid = coll._rid;
    this.selfPrefix = `${String(coll._self || "").replace(/^\/+/, "")}/docs/`;
    this.ridPrefix = DocStore.ridPrefixFor(coll._rid);
    this.pkDefinition = coll.partitionKey || null;
    this.pkPaths = ((coll.partitionKey || {}).paths || []).map(splitPath);
    this.uniqueKeys = ((coll.uniqueKeyPolicy || {}).uniqueKeys || []).map(u =>
      (u.paths || []).map(splitPath),
    );
    this.defaultTtl = normalizeTtl(coll.defaultTtl);
    this.parts = new Map();
    this.all = new Map(); // rid -> Entry, in creation (= rid) order for cross-partition reads
    this.log = new FeedLog();
    this.lsn = 0;
    this.ridSeq = 0;
    this.lastMtime = 0;
    this.heap = [];
    this.epkIndex = null; // EPK -> Partition, built on the first EPK-scoped request
    this.changes = 0; // writes and removals, so the emulator knows when its saved copy is behind
  }

  /** First 11 base64 chars of a 16-byte document rid: the 8 collection bytes (+ 2 zero bits). */
  static ridPrefixFor(collRid) {
    let bytes = Buffer.from(String(collRid || "").replace(/-/g, "/"), "base64");
    if (bytes.length !== 8) bytes = Buffer.concat([bytes, Buffer.alloc(8)]).subarray(0, 8);
    const full = Buffer.concat([bytes, Buffer.alloc(8)]).toString("base64");
    return full.slice(0, 11).replace(/\//g, "-");
  }

  /** Ten base-52 digits drawn from A-Z a-z keep string order equal to numeric order; valid base64. */
  newRid() {
    this.ridSeq += 1;
    let n = this.ridSeq;
    let digits = "";
    for (let i = 0; i < 10; i += 1) {
      digits = BASE52[n % 52] + digits;
      n = Math.floor(n / 52);
    }
    return `${this.ridPrefix}${digits}A==`;
  }

  /** Re-read container settings that can change after creation (defaultTtl via replace_container). */
  sync(coll) {
    const ttl = normalizeTtl(coll.defaultTtl);
    if (ttl === this.defaultTtl) return;
    this.defaultTtl = ttl;
    for (const e of this.all.values()) e.exp = this.expiry(e.doc, e.mtime);
    this.rebuildHeap();
  }

  get ttlEnabled() {
    return this.defaultTtl !== null;
  }

  expiry(doc, mtime) {
    if (this.defaultTtl === null) return Infinity;
    const { ttl } = doc;
    if (typeof ttl === "number") {
      if (ttl === -1) return Infinity;
      if (ttl > 0) return mtime + ttl * 1000;
    }
    return this.defaultTtl > 0 ? mtime + this.defaultTtl * 1000 : Infinity;
  }

  componentsOf(doc) {
    return this.pkPaths.map(segments => normalizeComponent(getPath(doc, segments)));
  }

  /** Partition key components from the x-ms-documentdb-partitionkey header value, or null if unusable. */
  static componentsFromHeader(header) {
    let value;
    try {
      value = JSON.parse(header);
    } catch (err) {
      return null;
    }
    return (Array.isArray(value) ? value : [value]).map(normalizeComponent);
  }

  static keyOf(components) {
    return JSON.stringify(components);
  }

  uniqueValue(doc, i) {
    return JSON.stringify(
      this.uniqueKeys[i].map(segments => {
        const v = getPath(doc, segments);
        return v === undefined ? null : v;
      }),
    );
  }

  /** The live (unexpired) entry for (partition key, id); expired ones are purged on the way. */
  lookup(key, id, now) {
    const part = this.parts.get(key);
    const e = part && part.docs.get(id);
    if (!e) return null;
    if (e.exp <= now) {
      this.removeEntry(e);
      return null;
    }
    return e;
  }

  partition(key, components) {
    let part = this.parts.get(key);
    if (!part) {
      part = new Partition(key, components, this.uniqueKeys.length);
      this.parts.set(key, part);
      if (this.epkIndex) {
        part.epk = effectivePartitionKey(components, this.pkDefinition);
        this.epkIndex.set(part.epk, part);
      }
    }
    return part;
  }

  ensureEpkIndex() {
    if (this.epkIndex) return;
    this.epkIndex = new Map();
    for (const part of this.parts.values()) {
      part.epk = effectivePartitionKey(part.components, this.pkDefinition);
      this.epkIndex.set(part.epk, part);
    }
  }

  /** Partitions whose EPK lies in [min, max) (upper-case hex; "" and "FF" are the container bounds). */
  partitionsInRange(min, max) {
    this.ensureEpkIndex();
    if (min !== "" && max === nextEpk(min)) {
      // A single logical partition's range, as the SDK builds for `partition_key=`.
      const part = this.epkIndex.get(min);
      return part ? [part] : [];
    }
    const out = [];
    for (const part of this.parts.values()) if (part.epk >= min && part.epk < max) out.push(part);
    return out;
  }

  indexUnique(part, doc, id) {
    if (!part.unique) return;
    for (let i = 0; i < part.unique.length; i += 1) part.unique[i].set(this.uniqueValue(doc, i), id);
  }

  unindexUnique(part, doc, id) {
    if (!part.unique) return;
    for (let i = 0; i < part.unique.length; i += 1) {
      const v = this.uniqueValue(doc, i);
      if (part.unique[i].get(v) === id) part.unique[i].delete(v);
    }
  }

  /** Store `doc` as the latest version of (key, id). A doc with `_rid: null` is a new item. */
  write(components, key, id, doc, now) {
    let part = this.parts.get(key);
    let e = part && part.docs.get(id);
    if (e && doc._rid !== e.rid) {
      // Recreated after a delete or expiry inside the same batch / before the sweep: a new item.
      this.removeEntry(e);
      e = null;
    }
    part = this.partition(key, components);
    this.changes += 1;
    const mtime = Math.max(now, this.lastMtime);
    this.lastMtime = mtime;
    this.lsn += 1;
    if (e) {
      this.unindexUnique(part, e.doc, id);
      e.doc = doc;
      e.lsn = this.lsn;
      this.log.staled();
      if (part.log) part.log.staled();
    } else {
      if (doc._rid === null) {
        doc._rid = this.newRid();
        doc._self = `${this.selfPrefix}${doc._rid}/`;
      }
      e = new Entry(id, part, doc);
      e.lsn = this.lsn;
      part.docs.set(id, e);
      this.all.set(e.rid, e);
    }
    this.indexUnique(part, doc, id);
    e.mtime = mtime;
    e.exp = this.expiry(doc, mtime);
    if (e.exp !== Infinity) this.heapPush(e);
    this.log.append(e);
    if (part.log) part.log.append(e);
    return e;
  }

  removeEntry(e) {
    if (e.gone) return;
    e.gone = true;
    this.changes += 1;
    const { part } = e;
    part.docs.delete(e.id);
    this.all.delete(e.rid);
    this.unindexUnique(part, e.doc, e.id);
    this.log.staled();
    if (part.log) part.log.staled();
    if (part.docs.size === 0 && this.parts.get(part.key) === part) {
      this.parts.delete(part.key);
      if (this.epkIndex && part.epk !== null) this.epkIndex.delete(part.epk);
    }
  }

  deletePartition(key) {
    const part = this.parts.get(key);
    if (!part) return 0;
    const entries = [...part.docs.values()];
    entries.forEach(e => this.removeEntry(e));
    return entries.length;
  }

  // --- TTL min-heap of {exp, entry, lsn}; stale items (entry rewritten or gone) are skipped ---

  heapPush(e) {
    const h = this.heap;
    h.push({ exp: e.exp, entry: e, lsn: e.lsn });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].exp <= h[i].exp) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
    if (h.length > 2 * this.all.size + COMPACT_MIN_STALE) this.rebuildHeap();
  }

  heapPop() {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].exp < h[m].exp) m = l;
        if (r < h.length && h[r].exp < h[m].exp) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }

  rebuildHeap() {
    const items = [];
    for (const e of this.all.values())
      if (e.exp !== Infinity) items.push({ exp: e.exp, entry: e, lsn: e.lsn });
    items.sort((a, b) => a.exp - b.exp); // a sorted array is a valid min-heap
    this.heap = items;
  }

  /** Physically delete expired items (they are already invisible to every read path). */
  sweep(now) {
    let purged = 0;
    while (this.heap.length && this.heap[0].exp <= now) {
      const { entry, lsn } = this.heapPop();
      if (!entry.gone && entry.lsn === lsn && entry.exp <= now) {
        this.removeEntry(entry);
        purged += 1;
      }
    }
    return purged;
  }

  // --- persistence (the emulator's --data-file) ---

  /** Everything needed to rebuild this store: live items with their LSN and modification time. */
  snapshot(now) {
    const entries = [];
    for (const e of this.all.values()) if (e.exp > now) entries.push([e.id, e.doc, e.lsn, e.mtime]);
    return { lsn: this.lsn, ridSeq: this.ridSeq, lastMtime: this.lastMtime, entries };
  }

  /**
   * Rebuild from snapshot(): items in creation (rid) order, feed logs in LSN order, expiry times from the
   * saved modification times (TTL clocks carry on), so a change-feed continuation taken before the save
   * resumes exactly where it was.
   */
  restore(state) {
    this.lsn = state.lsn;
    this.ridSeq = state.ridSeq;
    this.lastMtime = state.lastMtime;
    const restored = [];
    for (const [id, doc, lsn, mtime] of state.entries) {
      const components = this.componentsOf(doc);
      const part = this.partition(DocStore.keyOf(components), components);
      const e = new Entry(id, part, doc);
      e.lsn = lsn;
      e.mtime = mtime;
      e.exp = this.expiry(doc, mtime);
      part.docs.set(id, e);
      this.all.set(e.rid, e);
      this.indexUnique(part, doc, id);
      if (e.exp !== Infinity) this.heapPush(e);
      restored.push(e);
    }
    restored.sort((a, b) => a.lsn - b.lsn);
    for (const e of restored) this.log.append(e);
  }

  // --- reads ---

  /** The partition's change-feed log, built from its live entries in LSN order on first use (the same
   * slots a log kept from the start would hold once compacted), then kept up to date by write(). */
  partitionLog(part) {
    if (!part.log) {
      part.log = new FeedLog();
      [...part.docs.values()].sort((a, b) => a.lsn - b.lsn).forEach(e => part.log.append(e));
    }
    return part.log;
  }

  /** Visible documents of the given partitions (or all), in `_rid` order. */
  visibleDocs(parts, now) {
    const out = [];
    if (parts === null) {
      for (const e of this.all.values()) if (e.exp > now) out.push(e.doc);
      return out;
    }
    if (parts.length === 1) {
      for (const e of parts[0].docs.values()) if (e.exp > now) out.push(e.doc);
      return out;
    }
    const wanted = new Set(parts);
    for (const e of this.all.values()) if (e.exp > now && wanted.has(e.part)) out.push(e.doc);
    return out;
  }

  /**
   * One latest-version change feed page: up to `max` visible entries changed after `afterLsn` (and at or
   * after `sinceMs`), from the given partitions (null = all). Returns {entries, continuationLsn}: the LSN
   * to resume after, i.e. the last returned entry's if the page is full, else the container's current LSN
   * (everything up to it has been examined).
   */
  changeFeed(parts, afterLsn, sinceMs, max, now) {
    let log;
    let filter = null;
    if (parts === null) log = this.log;
    else if (parts.length === 1) log = this.partitionLog(parts[0]);
    else if (parts.length === 0) return { entries: [], continuationLsn: Math.max(afterLsn, this.lsn) };
    else {
      log = this.log;
      filter = new Set(parts);
    }
    const entries = [];
    for (let i = log.startIndex(afterLsn, sinceMs); i < log.lsns.length; i += 1) {
      if (!log.isLive(i)) continue;
      const e = log.entries[i];
      if (e.exp <= now || e.mtime < sinceMs || (filter && !filter.has(e.part))) continue;
      entries.push(e);
      if (entries.length >= max) return { entries, continuationLsn: e.lsn };
    }
    return { entries, continuationLsn: Math.max(afterLsn, this.lsn) };
  }
}

/**
 * Staged writes for one logical partition, applied all-or-nothing by commit(). Single-item requests
 * and transactional batches both go through it, so they share one set of rules.
 */
class Txn {
  constructor(store, components, now) {
    this.store = store;
    this.components = components;
    this.key = DocStore.keyOf(components);
    this.now = now;
    this.staged = new Map(); // id -> doc, or null for a delete; in order of last write
    this.newDocs = []; // materialized docs of new items; rids are assigned at commit, in commit order
  }

  current(id) {
    if (this.staged.has(id)) return this.staged.get(id);
    const e = this.store.lookup(this.key, id, this.now);
    return e ? e.doc : null;
  }

  stage(id, doc) {
    this.staged.delete(id);
    this.staged.set(id, doc);
  }

  /** Would `doc` break a unique key policy within this logical partition (given staged changes)? */
  uniqueConflict(doc) {
    const { store } = this;
    if (!store.uniqueKeys.length) return false;
    const part = store.parts.get(this.key);
    for (let i = 0; i < store.uniqueKeys.length; i += 1) {
      const value = store.uniqueValue(doc, i);
      for (const [id, other] of this.staged) {
        if (id !== doc.id && other && store.uniqueValue(other, i) === value) return true;
      }
      const owner = part && part.unique[i].get(value);
      if (owner !== undefined && owner !== doc.id && !this.staged.has(owner)) {
        if (store.lookup(this.key, owner, this.now)) return true;
      }
    }
    return false;
  }

  /** A stored document built from a client body: client-sent system properties are replaced. */
  materialize(body, existing) {
    const doc = {};
    for (const k of Object.keys(body)) if (!SYSTEM_PROPERTIES.has(k)) doc[k] = body[k];
    doc._rid = existing ? existing._rid : null;
    doc._self = existing ? existing._self : null;
    doc._etag = `"${randomUUID()}"`;
    doc._attachments = "attachments/";
    doc._ts = Math.floor(Math.max(this.now, this.store.lastMtime) / 1000);
    if (doc._rid === null) this.newDocs.push(doc);
    return doc;
  }

  commit() {
    const { store } = this;
    for (const [id, doc] of this.staged) {
      if (doc === null) {
        const part = store.parts.get(this.key);
        const e = part && part.docs.get(id);
        if (e) store.removeEntry(e);
      } else {
        store.write(this.components, this.key, id, doc, this.now);
      }
    }
    this.staged.clear();
    // An item written twice in one batch is stored once; earlier versions echoed in the batch response
    // get the stored item's identity too.
    for (const doc of this.newDocs) {
      if (doc._rid !== null) continue;
      const e = store.lookup(this.key, doc.id, this.now);
      if (e) {
        doc._rid = e.doc._rid;
        doc._self = e.doc._self;
      }
    }
    this.newDocs = [];
  }
}

module.exports = { DocStore, Txn, etagMatches, normalizeComponent, getPath, SYSTEM_PROPERTIES };

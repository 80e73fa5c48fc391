"use strict";
/*
 * Cosmos partial document update (patch) operations: add, set, replace, remove, incr, move.
 * Reimplemented rather than reusing the stock handler because a transactional batch must compute the
 * patched document without writing it (the stock code writes as it goes and cannot be rolled back).
 * Semantics follow the Cosmos documentation: parents must exist, `add` inserts into arrays ("-" appends),
 * `set` overwrites array elements, `replace`/`remove` need an existing target, `incr` creates a missing
 * target and refuses non-numbers, `move` needs an existing source. Violations throw PatchError (-> 400).
 */

class PatchError extends Error {}

const MAX_OPERATIONS = 10;

function parsePath(p, what) {
  if (typeof p !== "string" || !p.startsWith("/") || p === "/") {
    throw new PatchError(`Invalid ${what} '${p}' in patch operation.`);
  }
  return p
    .slice(1)
    .split("/")
    .map(s => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc, segments) {
  let node = doc;
  for (let i = 0; i < segments.length - 1; i += 1) {
    const seg = segments[i];
    if (Array.isArray(node)) {
      const idx = Number(seg);
      if (!Number.isInteger(idx) || idx < 0 || idx >= node.length) return undefined;
      node = node[idx];
    } else if (node && typeof node === "object") {
      if (!Object.prototype.hasOwnProperty.call(node, seg)) return undefined;
      node = node[seg];
    } else {
      return undefined;
    }
  }
  return node && typeof node === "object" ? node : undefined;
}

function arrayIndex(arr, seg, allowEnd) {
  const idx = Number(seg);
  const limit = allowEnd ? arr.length : arr.length - 1;
  if (!/^\d+$/.test(seg) || idx > limit) {
    throw new PatchError("Index to operate on is out of array bounds.");
  }
  return idx;
}

function requireParent(doc, segments, opName) {
  const parent = parentOf(doc, segments);
  if (parent === undefined) {
    throw new PatchError(`${opName} Operation can only create a child object of an existing node.`);
  }
  return parent;
}

function add(doc, segments, value, insert) {
  const parent = requireParent(doc, segments, insert ? "Add" : "Set");
  const key = segments[segments.length - 1];
  if (Array.isArray(parent)) {
    if (insert && key === "-") parent.push(value);
    else if (insert) parent.splice(arrayIndex(parent, key, true), 0, value);
    else parent[arrayIndex(parent, key, false)] = value;
  } else {
    parent[key] = value;
  }
}

function replace(doc, segments, value) {
  const parent = parentOf(doc, segments);
  const key = segments[segments.length - 1];
  if (Array.isArray(parent)) {
    parent[arrayIndex(parent, key, false)] = value;
  } else if (parent && Object.prototype.hasOwnProperty.call(parent, key)) {
    parent[key] = value;
  } else {
    throw new PatchError("Replace Operation can only be applied to an existing node.");
  }
}

function remove(doc, segments) {
  const parent = parentOf(doc, segments);
  const key = segments[segments.length - 1];
  if (Array.isArray(parent)) {
    const [removed] = parent.splice(arrayIndex(parent, key, false), 1);
    return removed;
  }
  if (parent && Object.prototype.hasOwnProperty.call(parent, key)) {
    const removed = parent[key];
    delete parent[key];
    return removed;
  }
  throw new PatchError("Remove Operation can only be applied to an existing node.");
}

function incr(doc, segments, value) {
  if (typeof value !== "number") throw new PatchError("Increment value must be a number.");
  const parent = requireParent(doc, segments, "Increment");
  const key = segments[segments.length - 1];
  const idx = Array.isArray(parent) ? arrayIndex(parent, key, false) : key;
  const current = parent[idx];
  if (current === undefined) parent[idx] = value;
  else if (typeof current === "number") parent[idx] = current + value;
  else throw new PatchError("Increment Operation can only be applied to a numeric node.");
}

/**
 * Apply `operations` to a deep copy of `doc` and return the copy. System properties cannot be patched.
 */
function applyPatch(doc, operations) {
  if (!Array.isArray(operations) || operations.length === 0) {
    throw new PatchError("Patch request has no operations.");
  }
  if (operations.length > MAX_OPERATIONS) {
    throw new PatchError(`The number of patch operations can't exceed ${MAX_OPERATIONS}.`);
  }
  const result = JSON.parse(JSON.stringify(doc));
  operations.forEach((op, i) => {
    try {
      if (!op || typeof op !== "object") throw new PatchError("Invalid patch operation.");
      const segments = parsePath(op.path, "path");
      if (segments[0].startsWith("_")) throw new PatchError(`Can't patch system property ${segments[0]}.`);
      switch (op.op) {
        case "add":
          add(result, segments, op.value, true);
          break;
        case "set":
          add(result, segments, op.value, false);
          break;
        case "replace":
          replace(result, segments, op.value);
          break;
        case "remove":
          remove(result, segments);
          break;
        case "incr":
          incr(result, segments, op.value);
          break;
        case "move": {
          const from = parsePath(op.from, "from");
          if (from[0].startsWith("_")) throw new PatchError(`Can't move system property ${from[0]}.`);
          if (op.path.startsWith(`${op.from}/`))
            throw new PatchError("Cannot move a node into its own child.");
          if (op.path === op.from) break;
          add(result, segments, remove(result, from), true);
          break;
        }
        default:
          throw new PatchError(`Unsupported patch operation '${op.op}'.`);
      }
    } catch (err) {
      if (err instanceof PatchError) throw new PatchError(`For Operation(${i}): ${err.message}`);
      throw err;
    }
  });
  return result;
}

module.exports = { applyPatch, PatchError };

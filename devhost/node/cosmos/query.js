"use strict";
/*
 * Compiles Cosmos SQL with the stock server's query engine (@zeit/cosmosdb-query), with two changes:
 *  - the generated code builds its row list with `rows.reduce(($, c) => [...$, {c}], [])`, which copies
 *    the accumulator for every item (O(n^2): seconds for a cross-partition query over ~20k items); the
 *    AST is rewritten to the equivalent linear `rows.flatMap(...)` before code generation;
 *  - compiled queries are cached (bounded) because parsing and code generation cost far more than
 *    running a query over one logical partition.
 */
const path = require("path");

const serverDir = path.dirname(require.resolve("@vercel/cosmosdb-server"));
const queryDir = path.dirname(require.resolve("@zeit/cosmosdb-query", { paths: [serverDir] }));
const cosmosQuery = require(queryDir);
const transformer = require(path.join(queryDir, "transformer"));
const generator = require(require.resolve("@babel/generator", { paths: [queryDir] }));

const helpers = require(path.join(queryDir, "helpers"));

const createQuery = cosmosQuery.default;
const { SyntaxError: QuerySyntaxError } = cosmosQuery;
const transform = transformer.default;
const generate = generator.default;

/**
 * Drop `undefined` values (projections of missing properties) from query results. The stock version
 * rebuilds every result with `reduce` + spread (quadratic in the number of results) and deep-copies
 * every document; this one is linear and returns the input unchanged when there is nothing to drop.
 */
function stripUndefined(value) {
  if (Array.isArray(value)) {
    let out = null;
    for (let i = 0; i < value.length; i += 1) {
      const item = value[i];
      const stripped = item === undefined ? undefined : stripUndefined(item);
      if (out) {
        if (item !== undefined) out.push(stripped);
      } else if (item === undefined || stripped !== item) {
        out = value.slice(0, i);
        if (item !== undefined) out.push(stripped);
      }
    }
    return out || value;
  }
  if (value && typeof value === "object") {
    let out = null;
    const keys = Object.keys(value);
    for (let i = 0; i < keys.length; i += 1) {
      const item = value[keys[i]];
      const stripped = item === undefined ? undefined : stripUndefined(item);
      if (!out && (item === undefined || stripped !== item)) {
        out = {};
        for (let j = 0; j < i; j += 1) out[keys[j]] = value[keys[j]];
      }
      if (out && item !== undefined) out[keys[i]] = stripped;
    }
    return out || value;
  }
  return value;
}
// paginate() calls it as exports.stripUndefined, so replacing the export is enough.
helpers.stripUndefined = stripUndefined;

const CACHE_LIMIT = 1000;
const cache = new Map();

function isAccumulator(node) {
  return (
    node && node.type === "SpreadElement" && node.argument.type === "Identifier" && node.argument.name === "$"
  );
}

/** `[...$, X]` -> the flatMap callback body: X's elements if X is a spread, else [X]. */
function appendedElements(body) {
  if (!body || body.type !== "ArrayExpression" || body.elements.length !== 2) return null;
  if (!isAccumulator(body.elements[0])) return null;
  const added = body.elements[1];
  if (added.type === "SpreadElement") return added.argument;
  return { type: "ArrayExpression", elements: [added] };
}

function flatMapBody(fn) {
  const { body } = fn;
  const direct = appendedElements(body);
  if (direct) return direct;
  // `cond ? [...$, X] : $`
  if (
    body.type === "ConditionalExpression" &&
    body.alternate.type === "Identifier" &&
    body.alternate.name === "$"
  ) {
    const consequent = appendedElements(body.consequent);
    if (consequent) {
      return {
        type: "ConditionalExpression",
        test: body.test,
        consequent,
        alternate: { type: "ArrayExpression", elements: [] },
      };
    }
  }
  return null;
}

function linearize(node) {
  if (!node || typeof node !== "object") return;
  if (Array.isArray(node)) {
    node.forEach(linearize);
    return;
  }
  for (const key of Object.keys(node)) {
    if (key !== "loc") linearize(node[key]);
  }
  if (
    node.type === "CallExpression" &&
    node.callee.type === "MemberExpression" &&
    !node.callee.computed &&
    node.callee.property.name === "reduce" &&
    node.arguments.length === 2 &&
    node.arguments[1].type === "ArrayExpression" &&
    node.arguments[1].elements.length === 0 &&
    node.arguments[0].type === "ArrowFunctionExpression" &&
    node.arguments[0].params.length === 2 &&
    node.arguments[0].params[0].type === "Identifier" &&
    node.arguments[0].params[0].name === "$"
  ) {
    const fn = node.arguments[0];
    const body = flatMapBody(fn);
    if (body) {
      node.callee.property = { type: "Identifier", name: "flatMap" };
      node.arguments = [{ type: "ArrowFunctionExpression", params: [fn.params[1]], body }];
    }
  }
}

/** A compiled query object with `exec(items, options)`; throws QuerySyntaxError on bad SQL. */
function compile(sql) {
  let q = cache.get(sql);
  if (q) return q;
  q = createQuery(sql);
  const jsAst = transform(q.ast);
  linearize(jsAst);
  // Query.code returns _code when set, so exec() runs the rewritten program.
  q._code = generate(jsAst).code;
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value);
  cache.set(sql, q);
  return q;
}

module.exports = { compile, QuerySyntaxError, createQuery };

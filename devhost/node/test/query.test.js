"use strict";
// Cosmos SQL as the emulator runs it: the stock query engine's results, with its quadratic row
// building rewritten to a linear flatMap, undefined projections dropped, and compiled queries cached.
const test = require("node:test");
const assert = require("node:assert/strict");

const { compile, QuerySyntaxError } = require("../cosmos/query");

const ITEMS = [
  { id: "1", _rid: "r1", pk: "a", n: 3, tags: ["x", "y"] },
  { id: "2", _rid: "r2", pk: "a", n: 1 },
  { id: "3", _rid: "r3", pk: "b", n: 2, tags: ["y"] },
];

const run = (sql, options = {}) => compile(sql).exec(ITEMS, options);

test("a filter with a parameter and ORDER BY answers the matching items in order", () => {
  const { result } = run("SELECT c.id, c.n FROM c WHERE c.pk = @pk ORDER BY c.n DESC", {
    parameters: [{ name: "@pk", value: "a" }],
  });
  assert.deepEqual(result, [
    { id: "1", n: 3 },
    { id: "2", n: 1 },
  ]);
});

test("a projected property an item lacks is left out, not null", () => {
  const { result } = run("SELECT c.id, c.tags FROM c ORDER BY c.id");
  assert.deepEqual(result, [{ id: "1", tags: ["x", "y"] }, { id: "2" }, { id: "3", tags: ["y"] }]);
  assert.equal(Object.hasOwn(result[1], "tags"), false);
});

test("VALUE, aggregates and JOIN over arrays", () => {
  assert.deepEqual(run("SELECT VALUE COUNT(1) FROM c WHERE c.n > 1").result, [2]);
  assert.deepEqual(run("SELECT VALUE c.id FROM c WHERE ARRAY_CONTAINS(c.tags, 'y')").result.sort(), [
    "1",
    "3",
  ]);
  assert.deepEqual(run("SELECT c.id, t AS tag FROM c JOIN t IN c.tags WHERE t = 'y'").result, [
    { id: "1", tag: "y" },
    { id: "3", tag: "y" },
  ]);
});

test("pages of maxItemCount items follow each other through the continuation", () => {
  const sql = "SELECT c.id FROM c ORDER BY c.id";
  const first = run(sql, { maxItemCount: 2 });
  assert.deepEqual(first.result, [{ id: "1" }, { id: "2" }]);
  assert.ok(first.continuation);
  const second = run(sql, { maxItemCount: 2, continuation: first.continuation });
  assert.deepEqual(second.result, [{ id: "3" }]);
  assert.equal(second.continuation, null);
});

test("the compiled program builds its rows with flatMap, never the quadratic reduce-and-spread", () => {
  for (const sql of [
    "SELECT * FROM c",
    "SELECT c.id FROM c WHERE c.pk = 'a'",
    "SELECT c.id, t FROM c JOIN t IN c.tags WHERE t = 'x'",
  ]) {
    const { code } = compile(sql);
    assert.match(code, /\.flatMap\(/, sql);
    assert.doesNotMatch(code, /\.reduce\(/, sql);
  }
});

test("a query is compiled once and then taken from the cache", () => {
  assert.equal(compile("SELECT c.n FROM c"), compile("SELECT c.n FROM c"));
});

test("SQL that does not parse throws the query engine's SyntaxError", () => {
  assert.throws(() => compile("SELEC c.id FROM c"), QuerySyntaxError);
});

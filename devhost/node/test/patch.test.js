"use strict";
// Cosmos partial updates as the emulator applies them: on a copy (a batch must compute the new
// document without writing it), with the service's rules and its error messages.
const test = require("node:test");
const assert = require("node:assert/strict");

const { applyPatch, PatchError } = require("../cosmos/patch");

const DOC = Object.freeze({ id: "p1", _etag: "e1", counts: { like: 2 }, tags: ["a", "b"], title: "t" });
const copy = () => JSON.parse(JSON.stringify(DOC));

test("each operation changes a copy and leaves the original alone", () => {
  const original = copy();
  const patched = applyPatch(original, [
    { op: "set", path: "/title", value: "new" },
    { op: "incr", path: "/counts/like", value: -1 },
    { op: "incr", path: "/counts/love", value: 1 },
    { op: "add", path: "/tags/-", value: "c" },
    { op: "add", path: "/tags/0", value: "z" },
    { op: "replace", path: "/tags/1", value: "A" },
    { op: "remove", path: "/tags/2" },
    { op: "move", from: "/title", path: "/heading" },
  ]);
  assert.deepEqual(patched, {
    id: "p1",
    _etag: "e1",
    counts: { like: 1, love: 1 },
    tags: ["z", "A", "c"],
    heading: "new",
  });
  assert.deepEqual(original, copy());
});

test("set overwrites an array element where add inserts before it", () => {
  assert.deepEqual(applyPatch(copy(), [{ op: "set", path: "/tags/1", value: "x" }]).tags, ["a", "x"]);
  assert.deepEqual(applyPatch(copy(), [{ op: "add", path: "/tags/1", value: "x" }]).tags, ["a", "x", "b"]);
});

test("~1 and ~0 in a path stand for / and ~", () => {
  const patched = applyPatch(copy(), [{ op: "add", path: "/a~1b~0c", value: 1 }]);
  assert.equal(patched["a/b~c"], 1);
});

const refusals = [
  [[], "Patch request has no operations."],
  [Array(11).fill({ op: "set", path: "/x", value: 1 }), "The number of patch operations can't exceed 10."],
  [
    [{ op: "replace", path: "/missing", value: 1 }],
    "For Operation(0): Replace Operation can only be applied to an existing node.",
  ],
  [
    [{ op: "remove", path: "/missing" }],
    "For Operation(0): Remove Operation can only be applied to an existing node.",
  ],
  [
    [{ op: "add", path: "/no/such/parent", value: 1 }],
    "For Operation(0): Add Operation can only create a child object of an existing node.",
  ],
  [
    [
      { op: "set", path: "/ok", value: 1 },
      { op: "incr", path: "/title", value: 1 },
    ],
    "For Operation(1): Increment Operation can only be applied to a numeric node.",
  ],
  [[{ op: "incr", path: "/counts/like", value: "1" }], "For Operation(0): Increment value must be a number."],
  [
    [{ op: "set", path: "/tags/5", value: 1 }],
    "For Operation(0): Index to operate on is out of array bounds.",
  ],
  [[{ op: "set", path: "/_etag", value: "forged" }], "For Operation(0): Can't patch system property _etag."],
  [
    [{ op: "move", from: "/counts", path: "/counts/inner" }],
    "For Operation(0): Cannot move a node into its own child.",
  ],
  [[{ op: "set", path: "/", value: 1 }], "For Operation(0): Invalid path '/' in patch operation."],
  [[{ op: "copy", path: "/x", from: "/title" }], "For Operation(0): Unsupported patch operation 'copy'."],
];

test("operations the service refuses throw PatchError with its message", () => {
  for (const [operations, message] of refusals) {
    assert.throws(() => applyPatch(copy(), operations), { name: "Error", message }, message);
    assert.throws(() => applyPatch(copy(), operations), PatchError, message);
  }
});

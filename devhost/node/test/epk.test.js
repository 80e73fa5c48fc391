"use strict";
// Effective partition keys must be exactly what the azure-cosmos SDK computes, or change-feed and
// feed-range reads (which send EPK ranges, not partition key values) see the wrong items. The
// expected values were computed once with the pinned azure-cosmos Python SDK (requirements.txt):
//   PartitionKey(path="/pk", kind="Hash", version=2)._get_effective_partition_key_string([value])
//   PartitionKey(path="/pk", kind="Hash", version=1)._get_effective_partition_key_string([value])
//   PartitionKey(path=["/a", "/b"], kind="MultiHash", version=2)._get_effective_partition_key_string(values)
// with azure.cosmos.partition_key._Undefined() for the absent value. The SDK writes V1 keys in lower
// case; the emulator upper-cases every EPK (and every EPK header it receives) so they order as strings.
const test = require("node:test");
const assert = require("node:assert/strict");

const { effectivePartitionKey, nextEpk, UNDEFINED_COMPONENT } = require("../cosmos/epk");

const HASH_V2 = { paths: ["/pk"], kind: "Hash", version: 2 };
const HASH_V1 = { paths: ["/pk"], kind: "Hash", version: 1 };
const MULTI_HASH = { paths: ["/a", "/b"], kind: "MultiHash", version: 2 };

const SDK_HASH_V2 = [
  ["alice", "35EAEE8D6020FFCABDE75797DFE27C34"],
  ["", "32E9366E637A71B4E710384B2F4970A0"],
  ["3f2504e0-4f89-41d3-9a0c-0305e82c3301", "2E0876E298A978E4F788E5A9130EF330"],
  ["日本語 ✓", "3F248934EB82DF1A315575A28A6DE213"],
  ["x".repeat(150), "165D5EACD9E5ED8FE2683C0B57ED57CC"],
  [42, "08E6D561F6FD951DCC25E7E4EA2884B5"],
  [3.5, "36C2C55EB8A8B912C03DC8B074F298D7"],
  [-1, "19938E7A936C1C5B9E3AE842BBC16839"],
  [0, "155B95BEDAC4B1E9EC1CDC9BB0DDDE58"],
  [true, "0E711127C5B5A8E4726AC6DD306A3E59"],
  [false, "2FE1BE91E90A3439635E0E9E37361EF2"],
  [null, "378867E4430E67857ACE5C908374FE16"],
  [UNDEFINED_COMPONENT, "11622DAA78F835834610ABE56EFF5CB5"],
];

const SDK_HASH_V1 = [
  ["alice", "05c1ede955ef9208626d6a646600"],
  ["", "05c1cf33970ff80800"],
  [
    "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "05c1ed73bb29500834673336313566312e3567393a2e353265342e3a6231642e31343136663933643434313200",
  ],
  ["日本語 ✓", "05c1bfe1a13b2008e798a6e79dade9ab9f21e39d9400"],
  // Only the first 100 characters count in V1.
  ["x".repeat(150), "05c1dd45a3938c08" + "79".repeat(100) + "00"],
  [42, "05c1e75fcb273a05c04580"],
  [3.5, "05c1e321b369d805c00c"],
  [-1, "05c1d7039da9c4054010"],
  [0, "05c1bf6da11560058000"],
  [true, "05c1d7c5a903d803"],
  [false, "05c1db857d857c02"],
  [null, "05c1ed45d74756"],
  [UNDEFINED_COMPONENT, "05c1d529e345dc00"],
];

const SDK_MULTI_HASH = [
  [["tenant", "user-1"], "3B67F777541374F849FC7793DE5DF91517F831A32B85ABC84A1B2E0576A4641C"],
  [["a", 5], "3A5381E1114EB8D3FCC90795045B49B719C08621B135968252FB34B4CF66F811"],
  [["x", null], "11E3F358618BE9AA5BAFF4C7C74F0716378867E4430E67857ACE5C908374FE16"],
];

test("hash V2 keys are the SDK's for strings, numbers, booleans, null and an absent value", () => {
  for (const [value, expected] of SDK_HASH_V2) {
    assert.equal(effectivePartitionKey([value], HASH_V2), expected, `value ${JSON.stringify(value)}`);
  }
});

test("hash V1 keys are the SDK's, upper-cased", () => {
  for (const [value, expected] of SDK_HASH_V1) {
    assert.equal(
      effectivePartitionKey([value], HASH_V1),
      expected.toUpperCase(),
      `value ${JSON.stringify(value)}`,
    );
  }
});

test("a definition without a version hashes as V1, as the SDK assumes", () => {
  const [value, expected] = SDK_HASH_V1[0];
  assert.equal(effectivePartitionKey([value], { paths: ["/pk"], kind: "Hash" }), expected.toUpperCase());
  assert.equal(effectivePartitionKey([value], undefined), expected.toUpperCase());
});

test("hierarchical (MultiHash) keys are each component's V2 hash, concatenated", () => {
  for (const [components, expected] of SDK_MULTI_HASH) {
    assert.equal(effectivePartitionKey(components, MULTI_HASH), expected, JSON.stringify(components));
  }
  // A prefix (fewer components than paths) is the start of every full key under it.
  assert.equal(effectivePartitionKey(["tenant"], MULTI_HASH), SDK_MULTI_HASH[0][1].slice(0, 32));
});

test("an empty list of components is the minimum key", () => {
  assert.equal(effectivePartitionKey([], HASH_V2), "");
  assert.equal(effectivePartitionKey([], HASH_V1), "");
});

test("nextEpk is the next key of the same length, carrying over 0xFF bytes", () => {
  assert.equal(nextEpk("05C1E3"), "05C1E4");
  assert.equal(nextEpk("05C1FF"), "05C200");
  assert.equal(nextEpk("0AFFFF"), "0B0000");
  assert.equal(nextEpk("35eaee8d"), "35EAEE8E");
});

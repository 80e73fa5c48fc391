"use strict";
/*
 * Effective partition key (EPK) hashing, ported from the azure-cosmos Python SDK
 * (partition_key.py, _cosmos_murmurhash3.py). The SDK turns `partition_key=` and `feed_range=` on the
 * change feed (and feed-range queries) into EPK ranges in x-ms-start-epk / x-ms-end-epk headers instead
 * of sending the partition key value, so the server must hash stored partition keys the same way to
 * tell which items fall in a range. Results are upper-case hex so plain string comparison orders them.
 */

const MASK64 = (1n << 64n) - 1n;

/** Marker for an absent ("undefined") partition key component; JSON-encodes as {} like the SDK's [{}]. */
const UNDEFINED_COMPONENT = Object.freeze({});

function rotl64(v, s) {
  return ((v << BigInt(s)) | (v >> BigInt(64 - s))) & MASK64;
}

function fmix64(k) {
  let v = k;
  v ^= v >> 33n;
  v = (v * 0xff51afd7ed558ccdn) & MASK64;
  v ^= v >> 33n;
  v = (v * 0xc4ceb9fe1a85ec53n) & MASK64;
  v ^= v >> 33n;
  return v;
}

/** MurmurHash3 x64 128-bit with seed 0; returns [low, high] as BigInts, like the SDK's _UInt128. */
function murmur128(bytes) {
  const c1 = 0x87c37b91114253d5n;
  const c2 = 0x4cf5ad432745937fn;
  let h1 = 0n;
  let h2 = 0n;
  const len = bytes.length;
  let pos = 0;
  for (; pos + 16 <= len; pos += 16) {
    let k1 = bytes.readBigUInt64LE(pos);
    let k2 = bytes.readBigUInt64LE(pos + 8);
    k1 = (k1 * c1) & MASK64;
    k1 = rotl64(k1, 31);
    k1 = (k1 * c2) & MASK64;
    h1 ^= k1;
    h1 = rotl64(h1, 27);
    h1 = (h1 + h2) & MASK64;
    h1 = (h1 * 5n + 0x52dce729n) & MASK64;
    k2 = (k2 * c2) & MASK64;
    k2 = rotl64(k2, 33);
    k2 = (k2 * c1) & MASK64;
    h2 ^= k2;
    h2 = rotl64(h2, 31);
    h2 = (h2 + h1) & MASK64;
    h2 = (h2 * 5n + 0x38495ab5n) & MASK64;
  }
  const n = len & 15;
  let k1 = 0n;
  let k2 = 0n;
  for (let i = n; i >= 9; i -= 1) k2 ^= BigInt(bytes[pos + i - 1]) << BigInt((i - 9) * 8);
  k2 = (k2 * c2) & MASK64;
  k2 = rotl64(k2, 33);
  k2 = (k2 * c1) & MASK64;
  h2 ^= k2;
  for (let i = Math.min(n, 8); i >= 1; i -= 1) k1 ^= BigInt(bytes[pos + i - 1]) << BigInt((i - 1) * 8);
  k1 = (k1 * c1) & MASK64;
  k1 = rotl64(k1, 31);
  k1 = (k1 * c2) & MASK64;
  h1 ^= k1;
  h1 ^= BigInt(len);
  h2 ^= BigInt(len);
  h1 = (h1 + h2) & MASK64;
  h2 = (h2 + h1) & MASK64;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 = (h1 + h2) & MASK64;
  h2 = (h2 + h1) & MASK64;
  return [h1, h2];
}

/** MurmurHash3 x86 32-bit with seed 0 (hash partitioning V1). */
function murmur32(bytes) {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const len = bytes.length;
  let h1 = 0;
  const roundedEnd = len & ~3;
  for (let i = 0; i < roundedEnd; i += 4) {
    let k1 = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k1 = Math.imul(k1, c1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, c2);
    h1 ^= k1;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
  }
  let k1 = 0;
  const tail = len & 3;
  if (tail === 3) k1 ^= bytes[roundedEnd + 2] << 16;
  if (tail >= 2) k1 ^= bytes[roundedEnd + 1] << 8;
  if (tail >= 1) {
    k1 ^= bytes[roundedEnd];
    k1 = Math.imul(k1, c1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, c2);
    h1 ^= k1;
  }
  h1 ^= len;
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  return h1 >>> 0;
}

function isUndefinedComponent(v) {
  return v === undefined || (v !== null && typeof v === "object");
}

/** Bytes the SDK hashes for one component (_write_for_hashing_core); strings end with `suffix`. */
function writeForHashing(out, value, suffix) {
  if (value === true) out.push(0x03);
  else if (value === false) out.push(0x02);
  else if (value === null) out.push(0x01);
  else if (isUndefinedComponent(value)) out.push(0x00);
  else if (typeof value === "number") {
    out.push(0x05);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    for (const x of b) out.push(x);
  } else if (typeof value === "string") {
    out.push(0x08);
    for (const x of Buffer.from(value, "utf8")) out.push(x);
    out.push(suffix);
  }
}

function hashV2Hex(components) {
  const bytes = [];
  for (const c of components) writeForHashing(bytes, c, 0xff);
  const [low, high] = murmur128(Buffer.from(bytes));
  const buf = Buffer.alloc(16);
  // _UInt128.to_byte_array is low||high little-endian; the SDK then reverses it, i.e. high||low big-endian.
  buf.writeBigUInt64BE(high, 0);
  buf.writeBigUInt64BE(low, 8);
  buf[0] &= 0x3f;
  return buf.toString("hex").toUpperCase();
}

function encodeDoubleAsUInt64(value) {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(value);
  const u = b.readBigUInt64LE(0);
  const mask = 1n << 63n;
  return u < mask ? u ^ mask : (~u + 1n) & MASK64;
}

/** _write_for_binary_encoding_v1: the order-preserving encoding of V1 EPK components. */
function writeBinaryV1(out, value) {
  if (typeof value === "boolean") out.push(value ? 0x03 : 0x02);
  else if (typeof value === "number") {
    out.push(0x05);
    let payload = encodeDoubleAsUInt64(value);
    out.push(Number(payload >> 56n));
    payload = (payload << 8n) & MASK64;
    let byteToWrite = 0;
    let first = true;
    while (payload !== 0n) {
      if (!first) out.push(byteToWrite);
      else first = false;
      byteToWrite = Number((payload >> 56n) | 1n);
      payload = (payload << 7n) & MASK64;
    }
    out.push(byteToWrite & 0xfe);
  } else if (typeof value === "string") {
    out.push(0x08);
    const utf8 = Buffer.from(value, "utf8");
    const short = utf8.length <= 100;
    const n = short ? utf8.length : 101;
    for (let i = 0; i < n; i += 1) out.push(utf8[i] + 1);
    if (short) out.push(0x00);
  } else if (isUndefinedComponent(value)) out.push(0x00);
  // null writes nothing here, exactly as the SDK does.
}

function hashV1Hex(components) {
  const truncated = components.map(c => (typeof c === "string" ? Array.from(c).slice(0, 100).join("") : c));
  const bytes = [];
  for (let c of truncated) {
    // The SDK wraps Python ints to UInt32 before hashing; integral JSON numbers are the closest match.
    if (typeof c === "number" && Number.isInteger(c)) c = Number(BigInt.asUintN(32, BigInt(c)));
    writeForHashing(bytes, c, 0x00);
  }
  const hash = murmur32(Buffer.from(bytes));
  const out = [];
  for (const c of [hash, ...truncated]) writeBinaryV1(out, c);
  return Buffer.from(out).toString("hex").toUpperCase();
}

/**
 * EPK (upper-case hex) of a partition key value given as its list of components, for the container's
 * partitionKey definition {paths, kind, version}. The SDK assumes version 1 when the definition omits it.
 */
function effectivePartitionKey(components, definition) {
  const def = definition || {};
  const kind = def.kind || "Hash";
  const version = def.version || 1;
  if (!components.length) return "";
  if (kind === "MultiHash") return components.map(c => hashV2Hex([c])).join("");
  if (version === 2) return hashV2Hex(components);
  return hashV1Hex(components);
}

/** The smallest EPK greater than `epk` at the same length (Range.add_to_effective_partition_key(+1)). */
function nextEpk(epk) {
  const bytes = Buffer.from(epk, "hex");
  for (let i = bytes.length - 1; i >= 0; i -= 1) {
    if (bytes[i] < 255) {
      bytes[i] += 1;
      break;
    }
    bytes[i] = 0;
  }
  return bytes.toString("hex").toUpperCase();
}

module.exports = { effectivePartitionKey, nextEpk, UNDEFINED_COMPONENT, isUndefinedComponent };

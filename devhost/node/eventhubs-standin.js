#!/usr/bin/env node
// Event Hubs stand-in for the local stack and the integration tests.
//
// It speaks enough AMQP 1.0 (via rhea) for the real azure-eventhub SDK: CBS tokens are always accepted,
// $management answers the hub and partition READ requests, producers send to `<hub>` or
// `<hub>/Partitions/<n>` (single messages and the 0x80013700 batch format), and consumers receive from
// `<hub>/ConsumerGroups/<group>/Partitions/<n>` with the SDK's starting-position filter and link credit.
// Events live in memory per partition. A small HTTP port lets tests and tools see what arrived:
//   GET /events[?hub=<name>]     every stored event, in arrival order, as JSON
//   DELETE /events[?hub=<name>]  drops stored events (numbering carries on, as after retention)
//   GET /health                  200 once listening
//
//   POST /fault {"unavailable": true|false}  drop every AMQP connection and refuse new ones, until false
//                                            (the local stack's fault control; HTTP keeps answering)
//
// Usage: node eventhubs-standin.js --host 127.0.0.1 --port 0 --http-port 0 --hub chorus-events --partitions 4
//        [--hub another-hub | --hub a,b] [--retain <events kept per partition, default 100000>]
//        [--data-file <journal>]
// Port 0 lets the OS pick a free port. With --data-file every stored event (and every retention trim) is
// appended to that journal before the producer is told it was accepted, and the journal is replayed at
// start: events, sequence numbers and offsets survive a restart.
// Prints one line `{"ready":true,"amqpPort":N,"httpPort":M}` on stdout once both ports listen; everything
// else goes to stderr.
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const { TextDecoder } = require("node:util");
const rhea = require("rhea");

const types = rhea.types;

// --- command line -----------------------------------------------------------------------------------

function parseArgs(argv) {
  const options = {
    host: "127.0.0.1",
    port: 0,
    httpPort: 0,
    hubs: [],
    partitions: 4,
    retain: 100000,
    dataFile: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    i++;
    switch (flag) {
      case "--host":
        options.host = value;
        break;
      case "--port":
        options.port = toInt(flag, value);
        break;
      case "--http-port":
        options.httpPort = toInt(flag, value);
        break;
      case "--hub":
        options.hubs.push(
          ...value
            .split(",")
            .map(h => h.trim())
            .filter(Boolean),
        );
        break;
      case "--partitions":
        options.partitions = toInt(flag, value);
        break;
      // Like the service's retention, bounding memory: once a partition holds a tenth more than this
      // many events, its oldest are dropped down to this many.
      case "--retain":
        options.retain = toInt(flag, value);
        break;
      case "--data-file":
        options.dataFile = value;
        break;
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  if (options.hubs.length === 0) options.hubs.push("chorus-events");
  if (options.partitions < 1) throw new Error("--partitions must be at least 1");
  if (options.retain < 1) throw new Error("--retain must be at least 1");
  return options;
}

function toInt(flag, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got ${value}`);
  return n;
}

// --- storage ----------------------------------------------------------------------------------------

const BATCH_FORMAT = 0x80013700;
const MESSAGE_ANNOTATIONS = 0x72;
const SECTION_CODES = {
  "amqp:header:list": 0x70,
  "amqp:delivery-annotations:map": 0x71,
  "amqp:message-annotations:map": 0x72,
  "amqp:properties:list": 0x73,
  "amqp:application-properties:map": 0x74,
  "amqp:data:binary": 0x75,
  "amqp:amqp-sequence:list": 0x76,
  "amqp:value:*": 0x77,
  "amqp:footer:map": 0x78,
};
const PARTITION_KEY = "x-opt-partition-key";
// Annotations the service stamps on every stored event; a producer's own values for them are replaced.
const SERVICE_ANNOTATIONS = new Set(["x-opt-sequence-number", "x-opt-offset", "x-opt-enqueued-time"]);

class Partition {
  constructor(hub, id) {
    this.hub = hub;
    this.id = id;
    this.events = [];
    this.beginSeq = 0; // sequence number of events[0]
    this.nextSeq = 0;
    this.nextOffset = 0; // byte offset, as the service's offsets are positions in the partition log
    this.lastEnqueuedTime = 0;
    this.lastOffset = -1;
    this.consumers = new Set();
  }
}

class Hub {
  constructor(name, partitionCount) {
    this.name = name;
    this.createdAt = Date.now();
    this.partitions = Array.from({ length: partitionCount }, (_, i) => new Partition(name, String(i)));
    this.roundRobin = 0;
  }

  partition(id) {
    return this.partitions.find(partition => partition.id === id);
  }

  route(partitionKey) {
    if (partitionKey === null) {
      const partition = this.partitions[this.roundRobin];
      this.roundRobin = (this.roundRobin + 1) % this.partitions.length;
      return partition;
    }
    return this.partitions[fnv1a(partitionKey) % this.partitions.length];
  }
}

// FNV-1a over the key's UTF-8 bytes: stable across runs, so a key always maps to the same partition.
function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function sectionCode(section) {
  const descriptor = section.descriptor && section.descriptor.value;
  return typeof descriptor === "number" ? descriptor : SECTION_CODES[descriptor];
}

// Locates the message-annotations section of an encoded message without decoding its body, so an event can
// be re-sent with the service annotations spliced in and every other byte as the producer sent it.
function splitMessage(raw) {
  const reader = new types.Reader(raw);
  let annotations = [];
  let annotationsStart = -1;
  let annotationsEnd = -1;
  while (reader.remaining()) {
    const start = reader.position;
    const section = reader.read();
    const code = sectionCode(section);
    if (code === MESSAGE_ANNOTATIONS) {
      annotations = section.value;
      annotationsStart = start;
      annotationsEnd = reader.position;
    } else if (code > MESSAGE_ANNOTATIONS) {
      if (annotationsStart < 0) annotationsStart = annotationsEnd = start;
      break;
    }
  }
  if (annotationsStart < 0) annotationsStart = annotationsEnd = raw.length;
  return { annotations, annotationsStart, annotationsEnd };
}

function annotationValue(items, key) {
  for (let i = 0; i + 1 < items.length; i += 2) {
    if (items[i].value === key) return items[i + 1].value;
  }
  return undefined;
}

function partitionKeyOf(items) {
  const key = annotationValue(items, PARTITION_KEY);
  if (key === undefined || key === null) return null;
  return Buffer.isBuffer(key) ? key.toString("utf8") : String(key);
}

let arrivals = 0;

// --- journal (--data-file): one JSON line per stored event or trim, replayed at start ---------------

const journal = { fd: null, pending: [] };

function record(entry) {
  if (journal.fd !== null) journal.pending.push(JSON.stringify(entry));
}

// Written synchronously, so an event the producer saw accepted is in the file even if we are killed.
function flushJournal() {
  if (journal.fd === null || journal.pending.length === 0) return;
  fs.writeSync(journal.fd, `${journal.pending.join("\n")}\n`);
  journal.pending = [];
}

function replayJournal(path, hubs) {
  let replayed = 0;
  const text = fs.readFileSync(path, "utf8");
  for (const line of text.split("\n")) {
    if (!line) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // a line cut short by a crash: its producer never saw it accepted
    }
    const hub = hubs.get(entry.hub);
    const partition = hub && hub.partition(entry.partition);
    if (!partition) continue;
    if (entry.trim !== undefined) {
      trim(partition, entry.trim, false);
      continue;
    }
    const raw = Buffer.from(entry.raw, "base64");
    partition.events.push({
      partition,
      raw,
      split: splitMessage(raw),
      partitionKey: entry.partitionKey,
      seq: entry.seq,
      offset: entry.offset,
      enqueuedTime: entry.enqueuedTime,
      arrival: entry.arrival,
    });
    partition.nextSeq = entry.seq + 1;
    partition.nextOffset = entry.offset + raw.length;
    partition.lastOffset = entry.offset;
    partition.lastEnqueuedTime = entry.enqueuedTime;
    arrivals = Math.max(arrivals, entry.arrival + 1);
    replayed += 1;
  }
  return replayed;
}

function store(partition, raw, split, partitionKey, retain) {
  const now = Math.max(Date.now(), partition.lastEnqueuedTime);
  const event = {
    partition,
    raw,
    split,
    partitionKey,
    seq: partition.nextSeq++,
    offset: partition.nextOffset,
    enqueuedTime: now,
    arrival: arrivals++,
  };
  partition.nextOffset += raw.length;
  partition.lastOffset = event.offset;
  partition.lastEnqueuedTime = now;
  partition.events.push(event);
  record({
    hub: partition.hub,
    partition: partition.id,
    seq: event.seq,
    offset: event.offset,
    enqueuedTime: now,
    arrival: event.arrival,
    partitionKey,
    raw: raw.toString("base64"),
  });
  // Trimming in chunks keeps the splice cost amortised when a partition sits at its limit.
  if (partition.events.length > retain + Math.ceil(retain / 10)) {
    trim(partition, partition.events.length - retain);
  }
}

function trim(partition, count, journaled = true) {
  partition.events.splice(0, count);
  partition.beginSeq += count;
  if (journaled) record({ hub: partition.hub, partition: partition.id, trim: count });
}

// The stored event as a consumer receives it: the producer's message with the service annotations added.
function encodeForConsumer(event) {
  const { annotations, annotationsStart, annotationsEnd } = event.split;
  const items = [];
  for (let i = 0; i + 1 < annotations.length; i += 2) {
    if (!SERVICE_ANNOTATIONS.has(annotations[i].value)) items.push(annotations[i], annotations[i + 1]);
  }
  items.push(
    types.wrap_symbol("x-opt-sequence-number"),
    types.wrap_long(event.seq),
    types.wrap_symbol("x-opt-offset"),
    types.wrap_string(String(event.offset)),
    types.wrap_symbol("x-opt-enqueued-time"),
    types.wrap_timestamp(event.enqueuedTime),
  );
  if (event.partitionKey !== null && annotationValue(annotations, PARTITION_KEY) === undefined) {
    items.push(types.wrap_symbol(PARTITION_KEY), types.wrap_string(event.partitionKey));
  }
  const writer = new types.Writer();
  writer.write(types.described(types.wrap_ulong(MESSAGE_ANNOTATIONS), types.Map32(items)));
  return Buffer.concat([
    event.raw.subarray(0, annotationsStart),
    writer.toBuffer(),
    event.raw.subarray(annotationsEnd),
  ]);
}

// --- addresses --------------------------------------------------------------------------------------

// The SDK addresses nodes as `amqps://<host>/<path>` (or a bare path for $cbs / $management).
function nodePath(address) {
  if (!address) return "";
  const match = /^[a-z]+:\/\/[^/]*\/(.*)$/i.exec(address);
  return (match ? match[1] : address).replace(/^\/+|\/+$/g, "");
}

function parseProducerTarget(hubs, address) {
  const parts = nodePath(address).split("/");
  const hub = hubs.get(parts[0]);
  if (!hub) return { error: `The messaging entity '${parts[0]}' could not be found.` };
  if (parts.length === 1) return { hub, partition: null };
  if (parts.length === 3 && parts[1].toLowerCase() === "partitions") {
    const partition = hub.partition(parts[2]);
    if (partition) return { hub, partition };
    return { error: `Partition '${parts[2]}' does not exist in '${hub.name}'.` };
  }
  return { error: `Unsupported send target '${address}'.` };
}

function parseConsumerSource(hubs, address) {
  const parts = nodePath(address).split("/");
  const hub = hubs.get(parts[0]);
  if (!hub) return { error: `The messaging entity '${parts[0]}' could not be found.` };
  const [, groups, , partitions] = parts.map(part => part.toLowerCase());
  if (parts.length === 5 && groups === "consumergroups" && partitions === "partitions") {
    const partition = hub.partition(parts[4]);
    if (partition) return { hub, partition };
    return { error: `Partition '${parts[4]}' does not exist in '${hub.name}'.` };
  }
  return { error: `Unsupported receive source '${address}'.` };
}

// --- consumers --------------------------------------------------------------------------------------

const SELECTOR =
  /^amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>)\s*'([^']*)'$/;

// The SDK sends one filter, `apache.org:selector-filter:string`, whose value is the selector expression.
function selectorOf(filter) {
  for (const [name, value] of Object.entries(filter || {})) {
    const text = value && typeof value === "object" && "value" in value ? value.value : value;
    if (typeof text === "string") return { name, text: text.trim() };
  }
  return null;
}

// Turns the SDK's starting-position selector into the first sequence number to look at and a test each
// event must pass (offsets, sequence numbers and enqueued times only grow within a partition).
function startingPosition(partition, selector) {
  if (selector === null) return { firstSeq: partition.beginSeq, accepts: () => true };
  const match = SELECTOR.exec(selector);
  if (!match) return { error: `Unsupported filter '${selector}'.` };
  const [, field, operator, text] = match;
  if (field === "x-opt-offset" && text === "@latest") {
    return { firstSeq: partition.nextSeq, accepts: () => true };
  }
  const bound = Number(text);
  if (!Number.isFinite(bound)) return { error: `Invalid filter value in '${selector}'.` };
  const valueOf = {
    "x-opt-offset": event => event.offset,
    "x-opt-sequence-number": event => event.seq,
    "x-opt-enqueued-time": event => event.enqueuedTime,
  }[field];
  const accepts = operator === ">=" ? event => valueOf(event) >= bound : event => valueOf(event) > bound;
  return { firstSeq: partition.beginSeq, accepts };
}

function pump(consumer) {
  const { sender, partition } = consumer;
  if (!sender.is_open()) return;
  // rhea only counts a delivery against credit once it is written out, so deliveries queued in this tick
  // are subtracted here; the session's delivery buffer is bounded too (it throws when overfilled).
  const queued = Math.max(0, consumer.sent - sender.delivery_count);
  let room = Math.min(sender.credit - queued, sender.session.outgoing.available());
  if (consumer.nextSeq < partition.beginSeq) consumer.nextSeq = partition.beginSeq;
  while (room > 0 && consumer.nextSeq < partition.nextSeq) {
    const event = partition.events[consumer.nextSeq - partition.beginSeq];
    consumer.nextSeq++;
    if (!consumer.accepts(event)) continue;
    sender.send(encodeForConsumer(event), undefined, 0);
    consumer.sent++;
    room--;
  }
}

// --- management -------------------------------------------------------------------------------------

function managementResponse(hubs, request) {
  const props = request.application_properties || {};
  const hub = hubs.get(props.name);
  if (props.operation !== "READ") return [501, `Unsupported operation '${props.operation}'.`];
  if (!hub) return [404, `The messaging entity '${props.name}' could not be found.`];
  if (props.type === "com.microsoft:eventhub") {
    return [
      200,
      "OK",
      {
        name: hub.name,
        type: "com.microsoft:eventhub",
        created_at: types.wrap_timestamp(hub.createdAt),
        partition_count: types.wrap_int(hub.partitions.length),
        partition_ids: types.wrap_array(
          hub.partitions.map(p => p.id),
          0xb1,
        ),
      },
    ];
  }
  if (props.type === "com.microsoft:partition") {
    const partition = hub.partition(String(props.partition));
    if (!partition) return [404, `Partition '${props.partition}' does not exist in '${hub.name}'.`];
    return [
      200,
      "OK",
      {
        name: hub.name,
        type: "com.microsoft:partition",
        partition: partition.id,
        begin_sequence_number: types.wrap_long(partition.beginSeq),
        last_enqueued_sequence_number: types.wrap_long(partition.nextSeq - 1),
        last_enqueued_offset: String(partition.lastOffset),
        last_enqueued_time_utc: types.wrap_timestamp(partition.lastEnqueuedTime),
        is_partition_empty: partition.events.length === 0,
      },
    ];
  }
  return [400, `Unsupported type '${props.type}'.`];
}

// --- AMQP -------------------------------------------------------------------------------------------

// rhea hands format-0 deliveries to handlers only decoded; keeping the exact bytes lets consumers get the
// message as the producer encoded it (types of properties included), the same as for batched events.
const RAW = Symbol("raw");
const decodeMessage = rhea.message.decode;
rhea.message.decode = buffer => {
  const message = decodeMessage(buffer);
  Object.defineProperty(message, RAW, { value: buffer });
  return message;
};

// AMQP lets a peer omit trailing empty fields of a performative and rhea does, but the SDK's pyamqp reads
// fields by position (an open without idle-time-out, a transfer whose payload lands before index 11, an
// empty end list all break it). So every performative goes out with all of its fields, as the service does.
const frames = require("rhea/lib/frames.js");
for (const name of ["open", "begin", "attach", "flow", "transfer", "disposition", "detach", "end", "close"]) {
  const prototype = Object.getPrototypeOf(frames[name]({}));
  const fieldCount = Object.values(Object.getOwnPropertyDescriptors(prototype)).filter(d => d.get).length;
  const described = prototype.described;
  prototype.described = function () {
    if (this.value.length < fieldCount) this.value.length = fieldCount;
    return described.call(this);
  };
}

const LINK_ERROR = "amqp:not-found";

function refuse(link, description) {
  console.error(`refusing link ${link.name}: ${description}`);
  link.close({ condition: LINK_ERROR, description });
}

// The peer refuses an attach without both termini, so every link echoes the addresses it was asked for.
function echoTermini(link, extraSource = {}) {
  const remote = link.remote.attach;
  link.set_source({ address: remote.source ? remote.source.address : undefined, ...extraSource });
  link.set_target({ address: remote.target ? remote.target.address : undefined });
}

function startAmqp(options, hubs) {
  const container = rhea.create_container({ id: "eventhubs-standin" });
  const replyLinks = new WeakMap(); // session -> { '$cbs': sender, '$management': sender }

  // The SDK compares its link count with the session's handle-max, so it must not be left null.
  container.on("session_open", context => {
    context.session.local.begin.handle_max = 0xffffffff;
  });

  container.on("receiver_open", context => {
    const receiver = context.receiver;
    const targetAddress = receiver.remote.attach.target && receiver.remote.attach.target.address;
    const address = nodePath(targetAddress);
    // 1 MB, the service's maximum event/batch size on the standard tier; the SDK sizes batches by it.
    receiver.local.attach.max_message_size = 1024 * 1024;
    echoTermini(receiver);
    if (address === "$cbs" || address === "$management") {
      receiver.standin = { node: address };
      return;
    }
    const target = parseProducerTarget(hubs, targetAddress);
    if (target.error) {
      refuse(receiver, target.error);
      return;
    }
    receiver.standin = { target };
  });

  container.on("sender_open", context => {
    const sender = context.sender;
    const source = sender.remote.attach.source;
    const address = nodePath(source && source.address);
    // Nothing the SDK receives is ever settled by it (replies and events alike), so everything is sent
    // pre-settled, as the service does; an unsettled delivery would also pin rhea's session buffer.
    sender.local.attach.snd_settle_mode = 1;
    if (address === "$cbs" || address === "$management") {
      echoTermini(sender);
      const links = replyLinks.get(sender.session) || {};
      links[address] = sender;
      replyLinks.set(sender.session, links);
      return;
    }
    const parsed = parseConsumerSource(hubs, source && source.address);
    const selector = selectorOf(source && source.filter);
    const position = parsed.error ? parsed : startingPosition(parsed.partition, selector && selector.text);
    if (position.error) {
      echoTermini(sender);
      refuse(sender, position.error);
      return;
    }
    // Echoing the filter tells the peer it is in place (AMQP: a filter the sender leaves out is not
    // applied).
    const filter = selector && {
      [selector.name]: types.described(types.wrap_symbol(selector.name), types.wrap_string(selector.text)),
    };
    echoTermini(sender, filter ? { filter } : {});
    const consumer = {
      sender,
      partition: parsed.partition,
      nextSeq: position.firstSeq,
      accepts: position.accepts,
      sent: 0, // deliveries handed to rhea, to tell how many are still queued (see pump)
    };
    sender.standin = { consumer };
    parsed.partition.consumers.add(consumer);
    sender.on("sendable", () => pump(consumer));
  });

  container.on("message", context => {
    const receiver = context.receiver;
    const role = receiver.standin;
    if (!role) {
      // A transfer the SDK sent before it saw this link refused.
      context.delivery.reject({ condition: LINK_ERROR, description: "The link was refused." });
      return;
    }
    try {
      if (role.node) {
        reply(context, role.node, replyLinks, hubs);
      } else {
        ingest(context, role.target, options.retain);
      }
      context.delivery.accept();
    } catch (err) {
      console.error(`rejecting delivery on ${receiver.name}: ${err.stack || err}`);
      const description = String(err.message || err);
      context.delivery.reject({ condition: "amqp:decode-error", description });
    }
  });

  const forget = sender => {
    const consumer = sender && sender.standin && sender.standin.consumer;
    if (consumer) consumer.partition.consumers.delete(consumer);
  };
  container.on("sender_close", context => forget(context.sender));
  container.on("disconnected", context => {
    for (const hub of hubs.values()) {
      for (const partition of hub.partitions) {
        for (const consumer of partition.consumers) {
          if (consumer.sender.connection === context.connection) {
            partition.consumers.delete(consumer);
          }
        }
      }
    }
  });
  container.on("protocol_error", err => {
    // pyamqp ends a session before detaching its last links when it closes; the connection is going
    // away anyway, so that is not worth a log line.
    if (!/received on invalid channel/.test(err.message)) {
      console.error(`amqp protocol error: ${err.message}`);
    }
  });
  container.on("error", err => console.error(`amqp error: ${err.stack || err}`));
  container.on("connection_error", context => {
    console.error(`connection error: ${context.connection.error}`);
  });

  return container.listen({
    host: options.host,
    port: options.port,
    // Deliveries are accepted or rejected explicitly once handled.
    autoaccept: false,
    // Request/response traffic (CBS, management, small sends) must not wait on Nagle's algorithm.
    tcp_no_delay: true,
    // Sent explicitly: the SDK reads these open fields and fails on a null instead of the default.
    max_frame_size: 65536,
    channel_max: 65535,
    properties: { product: "chorus-eventhubs-standin" },
  });
}

function reply(context, node, replyLinks, hubs) {
  const request = context.message;
  const sender = (replyLinks.get(context.session) || {})[node];
  if (!sender) throw new Error(`no reply link for ${node} on this session`);
  let status = 202;
  let description = "Accepted";
  let body;
  if (node === "$management") [status, description, body] = managementResponse(hubs, request);
  sender.send({
    correlation_id: request.message_id,
    application_properties: {
      "status-code": types.wrap_int(status),
      "status-description": description,
      // pyamqp's management link looks the description up under this name, so errors show it.
      statusDescription: description,
    },
    body,
  });
}

function ingest(context, target, retain) {
  const { hub, partition: explicitPartition } = target;
  const delivery = context.delivery;
  let messages;
  let batchKey = null;
  if (delivery.format === BATCH_FORMAT) {
    const outer = context.message;
    const outerSplit = splitMessage(outer);
    batchKey = partitionKeyOf(outerSplit.annotations);
    const body = decodeMessage(outer.subarray(outerSplit.annotationsEnd)).body;
    const sections = body && body.multiple ? body.content : body ? [body.content] : [];
    messages = sections.map(section => Buffer.from(section));
  } else if (delivery.format === 0) {
    messages = [Buffer.from(context.message[RAW])];
  } else {
    throw new Error(`unsupported message format ${delivery.format}`);
  }
  if (messages.length === 0) return;
  const splits = messages.map(splitMessage);
  const keys = splits.map(split => partitionKeyOf(split.annotations) ?? batchKey);
  // A batch is one unit for the service: all of it goes to one partition, chosen by its partition key.
  const partition = explicitPartition || hub.route(batchKey ?? keys[0]);
  for (let i = 0; i < messages.length; i++) store(partition, messages[i], splits[i], keys[i], retain);
  flushJournal();
  for (const consumer of partition.consumers) pump(consumer);
}

// --- HTTP -------------------------------------------------------------------------------------------

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function jsonValue(value) {
  if (Buffer.isBuffer(value)) return value.toString("base64");
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value && typeof value === "object") {
    if (value.type && "value" in value) return jsonValue(value.value); // a still-typed AMQP value
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]));
  }
  return value;
}

function messageIdText(id) {
  if (id === undefined || id === null) return null;
  // rhea decodes an AMQP uuid (what the SDK uses for ids it generates) to a 16-byte Buffer.
  if (Buffer.isBuffer(id) && id.length === 16) {
    return id.toString("hex").replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");
  }
  return String(jsonValue(id));
}

function bodyView(body) {
  let bytes;
  if (body && body.typecode === 0x75) {
    bytes = body.multiple ? Buffer.concat(body.content) : body.content;
  } else if (body && body.typecode === 0x76) {
    return { body: jsonValue(body.content), bodyEncoding: "amqp-sequence" };
  } else if (Buffer.isBuffer(body)) {
    bytes = body;
  } else {
    return { body: jsonValue(body === undefined ? null : body), bodyEncoding: "amqp-value" };
  }
  try {
    return { body: strictUtf8.decode(bytes), bodyEncoding: "utf8" };
  } catch {
    return { body: bytes.toString("base64"), bodyEncoding: "base64" };
  }
}

function eventView(event) {
  const message = decodeMessage(event.raw);
  return {
    hub: event.partition.hub,
    partition: event.partition.id,
    sequenceNumber: event.seq,
    offset: String(event.offset),
    partitionKey: event.partitionKey,
    ...bodyView(message.body),
    properties: jsonValue(message.application_properties || {}),
    messageId: messageIdText(message.message_id),
    contentType: message.content_type ?? null,
    enqueuedTime: new Date(event.enqueuedTime).toISOString(),
  };
}

function selectedHubs(hubs, url) {
  const name = url.searchParams.get("hub");
  if (name === null) return [...hubs.values()];
  const hub = hubs.get(name);
  return hub ? [hub] : null;
}

function startHttp(options, hubs, fault) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://standin");
    const send = (status, payload) => {
      const text = JSON.stringify(payload);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (url.pathname === "/health" && req.method === "GET") {
      send(200, { ok: true, hubs: [...hubs.keys()], unavailable: fault.unavailable });
      return;
    }
    if (url.pathname === "/fault" && req.method === "POST") {
      const chunks = [];
      req.on("data", chunk => chunks.push(chunk));
      req.on("end", () => {
        let body;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
        } catch {
          send(400, { error: 'the body must be JSON: {"unavailable": true|false}' });
          return;
        }
        fault.set(Boolean(body.unavailable), () => send(200, { unavailable: fault.unavailable }));
      });
      return;
    }
    if (url.pathname !== "/events") {
      send(404, { error: `no route ${req.method} ${url.pathname}` });
      return;
    }
    const selected = selectedHubs(hubs, url);
    if (selected === null) {
      send(404, { error: `unknown hub ${url.searchParams.get("hub")}` });
      return;
    }
    const partitions = selected.flatMap(hub => hub.partitions);
    if (req.method === "GET") {
      const events = partitions.flatMap(p => p.events).sort((a, b) => a.arrival - b.arrival);
      send(200, events.map(eventView));
    } else if (req.method === "DELETE") {
      // Clearing acts like retention expiring everything: sequence numbers and offsets carry on.
      for (const partition of partitions) trim(partition, partition.events.length);
      flushJournal();
      send(200, { cleared: true });
    } else {
      send(405, { error: `method ${req.method} not allowed on /events` });
    }
  });
  server.listen(options.httpPort, options.host);
  return server;
}

// --- main -------------------------------------------------------------------------------------------

function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`eventhubs-standin: ${err.message}`);
    process.exit(2);
  }
  const hubs = new Map(options.hubs.map(name => [name, new Hub(name, options.partitions)]));
  if (options.dataFile) {
    if (fs.existsSync(options.dataFile)) {
      const replayed = replayJournal(options.dataFile, hubs);
      console.error(`eventhubs-standin: ${replayed} event(s) loaded from ${options.dataFile}`);
    }
    journal.fd = fs.openSync(options.dataFile, "a");
  }
  const amqpServer = startAmqp(options, hubs);
  const sockets = new Set();
  amqpServer.on("connection", socket => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // Unavailable: the listener closes (new connections are refused) and open ones are cut, as when the
  // namespace cannot be reached; available again: it listens on the same port.
  const fault = {
    unavailable: false,
    set(unavailable, done) {
      if (unavailable === this.unavailable) {
        done();
        return;
      }
      this.unavailable = unavailable;
      if (unavailable) {
        const { port } = amqpServer.address();
        this.port = port;
        amqpServer.close();
        for (const socket of sockets) socket.destroy();
        console.error("eventhubs-standin: unavailable (fault): AMQP connections dropped and refused");
        done();
      } else {
        amqpServer.listen({ host: options.host, port: this.port }, () => {
          console.error("eventhubs-standin: available again");
          done();
        });
      }
    },
  };
  const httpServer = startHttp(options, hubs, fault);

  let pending = 2;
  const listening = () => {
    if (--pending > 0) return;
    const ready = {
      ready: true,
      amqpPort: amqpServer.address().port,
      httpPort: httpServer.address().port,
    };
    process.stdout.write(`${JSON.stringify(ready)}\n`);
    const hubList = options.hubs.join(", ");
    console.error(`eventhubs-standin: hubs ${hubList}, ${options.partitions} partitions each`);
  };
  for (const server of [amqpServer, httpServer]) {
    server.once("listening", listening);
    server.once("error", err => {
      console.error(`eventhubs-standin: cannot listen: ${err.message}`);
      process.exit(1);
    });
  }

  const shutdown = signal => {
    console.error(`eventhubs-standin: ${signal}, shutting down`);
    amqpServer.close();
    httpServer.close();
    flushJournal();
    // Open client connections would keep the servers' close callbacks waiting; the journal is written.
    process.exit(0);
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main();

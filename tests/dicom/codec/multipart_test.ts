/** @module Tests of multipart/related reading and writing (dicom/multipart.ts). */
import assert from "node:assert/strict";
import {
  MultipartError,
  type MultipartLimits,
  type MultipartPart,
  newBoundary,
  type OutgoingPart,
  parseMediaType,
  readMultipart,
  writeMultipart,
} from "../../../dicom/codec/multipart.ts";

const LIMITS: MultipartLimits = { maxPartBytes: 1 << 24, maxTotalBytes: 1 << 26 };
const utf8 = (s: string) => new TextEncoder().encode(s);

function concat(...arrays: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) out.set(a, offset), offset += a.length;
  return out;
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(length: number, seed: number): Uint8Array {
  const next = random(seed);
  const words = new Uint32Array(Math.ceil(length / 4)).map(() => next() * 2 ** 32);
  return new Uint8Array(words.buffer, 0, length);
}

interface Source {
  stream: ReadableStream<Uint8Array>;
  /** How many chunks have been pulled from the source so far, and whether it was cancelled. */
  stats: { pulls: number; cancelled: boolean };
}

/** `bytes` as a pull-based stream of chunks whose sizes come from `size`. */
function chunked(bytes: Uint8Array, size: (i: number) => number = () => bytes.length): Source {
  const stats = { pulls: 0, cancelled: false };
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      const n = Math.max(1, size(stats.pulls++));
      controller.enqueue(bytes.subarray(offset, offset + n));
      offset += n;
    },
    cancel() {
      stats.cancelled = true;
    },
  });
  return { stream, stats };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return concat(...chunks);
}

interface Seen {
  headers: Record<string, string>;
  body: string;
  index: number;
}

const seen = (p: MultipartPart): Seen => ({
  headers: Object.fromEntries(p.headers),
  body: new TextDecoder("latin1").decode(p.body),
  index: p.index,
});

/** Reads every part; on an error returns the parts read before it with the error. */
async function parse(
  body: Uint8Array | Source,
  boundary: string,
  limits = LIMITS,
): Promise<{ parts: Seen[]; error?: MultipartError }> {
  const parts: Seen[] = [];
  const { stream } = body instanceof Uint8Array ? chunked(body) : body;
  try {
    for await (const part of readMultipart(stream, boundary, limits)) parts.push(seen(part));
  } catch (error) {
    assert.ok(error instanceof MultipartError, String(error));
    return { parts, error };
  }
  return { parts };
}

async function* iterate<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

Deno.test("parseMediaType() unquotes a quoted boundary and reads the type parameter", () => {
  assert.deepEqual(
    parseMediaType('multipart/related; type="application/dicom"; boundary="abc:def"'),
    { type: "multipart/related", params: { type: "application/dicom", boundary: "abc:def" } },
  );
});

Deno.test("parseMediaType() lower-cases type and names, keeps values, tolerates spaces", () => {
  const expected = {
    type: "multipart/related",
    params: { boundary: "xyz", type: "application/dicom" },
  };
  assert.deepEqual(
    parseMediaType("Multipart/Related;boundary=xyz;type=application/dicom"),
    expected,
  );
  assert.deepEqual(
    parseMediaType(' multipart / related ;  BOUNDARY = "xyz" ;type= application/dicom ; ; '),
    expected,
  );
  assert.deepEqual(parseMediaType("Application/DICOM"), { type: "application/dicom", params: {} });
  assert.deepEqual(parseMediaType("a/b; Boundary=AbC"), {
    type: "a/b",
    params: { boundary: "AbC" },
  });
});

Deno.test("parseMediaType() undoes backslash escapes in quoted values", () => {
  assert.deepEqual(parseMediaType('a/b; x="q\\"uo\\\\te;d = 1"; y=2').params, {
    x: 'q"uo\\te;d = 1',
    y: "2",
  });
  assert.deepEqual(parseMediaType('a/b; x=""').params, { x: "" });
});

Deno.test("parseMediaType() throws a MultipartError for a malformed media type", () => {
  for (
    const header of [
      "",
      "multipart",
      "multipart/",
      "/related",
      "multi part/related",
      "a/b/c",
      "a/b; boundary",
      "a/b; boundary=",
      'a/b; boundary="abc',
      'a/b; boundary="abc" x',
      "a/b; x=a b",
      "a/b; =x",
      "a/b; b=1; B=2",
    ]
  ) {
    assert.throws(() => parseMediaType(header), (error: unknown) => {
      assert.ok(error instanceof MultipartError, header);
      assert.equal(error.kind, "bad-media-type");
      assert.match(error.reason, /bad media type/);
      return true;
    }, header);
  }
});

/** Bodies that try to fool a parser: line breaks, a trailing CR, boundary-like prefixes. */
function trickyBodies(boundary: string): Uint8Array[] {
  return [
    utf8("\r\n\r\n\n\r\r\n"),
    utf8(`\r\n--${boundary.slice(0, -1)}\r\n-\r\n--\r`),
    utf8(`--${boundary}`), // at the start of a body, not after a line break: data
    utf8(`x\r\n-${boundary}\r\n`),
    new Uint8Array(0),
    randomBytes(100_000, 1),
    concat(randomBytes(5000, 2), utf8(`\r\n--${boundary.slice(0, 7)}`)),
  ];
}

Deno.test("writeMultipart() → readMultipart() round-trips binary bodies", async () => {
  const boundary = newBoundary();
  const bodies = trickyBodies(boundary);
  const parts: OutgoingPart[] = bodies.map((body, i) => ({
    contentType: i % 2 ? "application/dicom" : "application/octet-stream",
    body: i === 5 ? chunked(body, () => 999).stream : body,
    headers: { "Content-Location": `/instances/${i}`, "content-type": "ignored/duplicate" },
  }));
  const written = await readAll(writeMultipart(iterate(parts), boundary));
  const read: MultipartPart[] = [];
  for await (const part of readMultipart(chunked(written).stream, boundary, LIMITS)) {
    read.push(part);
  }
  assert.equal(read.length, bodies.length);
  read.forEach((part, i) => {
    assert.equal(part.index, i);
    assert.deepEqual(part.body, bodies[i]);
    assert.equal(part.headers.get("content-type"), parts[i].contentType);
    assert.equal(part.headers.get("content-location"), `/instances/${i}`);
  });
});

Deno.test("writeMultipart() writes the RFC 2046 framing", async () => {
  const parts = [{ contentType: "text/plain", body: utf8("a") }, {
    contentType: "application/dicom",
    body: utf8("b"),
    headers: { "Content-Location": "x" },
  }];
  const text = new TextDecoder().decode(await readAll(writeMultipart(iterate(parts), "B")));
  assert.equal(
    text,
    "--B\r\nContent-Type: text/plain\r\n\r\na\r\n" +
      "--B\r\nContent-Type: application/dicom\r\nContent-Location: x\r\n\r\nb\r\n--B--\r\n",
  );
  const empty = await readAll(writeMultipart(iterate([]), "B"));
  assert.equal(new TextDecoder().decode(empty), "--B--\r\n");
});

Deno.test("readMultipart() yields the same parts whatever the chunk sizes", async () => {
  const boundary = "simple-boundary";
  const bodies = trickyBodies(boundary).map((b) => b.subarray(0, 3000));
  const written = await readAll(
    writeMultipart(iterate(bodies.map((body) => ({ contentType: "a/b", body }))), boundary),
  );
  const body = concat(
    utf8(`preamble\r\n--${boundary}X\r\n-${boundary}\r\n`),
    written,
    utf8("--"),
    utf8(`epilogue\r\n--${boundary}\r\n\r\nno part\r\n`),
  );
  const reference = await parse(body, boundary);
  assert.equal(reference.error, undefined);
  assert.deepEqual(
    reference.parts.map((p) => p.body),
    bodies.map((b) => new TextDecoder("latin1").decode(b)),
  );
  const sizes: [string, (i: number) => number][] = [1, 2, 3, 7, 64, 4096].map((
    n,
  ) => [`${n}`, () => n]);
  for (const seed of [1, 2, 3]) {
    const next = random(seed);
    sizes.push([`random ${seed}`, () => 1 + Math.floor(next() ** 3 * 5000)]);
  }
  for (const [name, size] of sizes) {
    const got = await parse(chunked(body, size), boundary);
    assert.deepEqual(got, reference, `chunks of ${name}`);
  }
});

Deno.test("readMultipart() ignores the preamble and the epilogue", async () => {
  const body = "preamble line\r\nx--b not at a line start\r\n--bx no boundary\r\n" +
    "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--  \r\n" +
    "epilogue\r\n--b\r\nX: y\r\n\r\nnot a part\r\n--b--\r\n";
  const source = chunked(utf8(body), () => 16);
  const { parts, error } = await parse(source, "b");
  assert.equal(error, undefined);
  assert.deepEqual(parts, [{ headers: { "content-type": "text/plain" }, body: "hello", index: 0 }]);
  assert.ok(source.stats.cancelled, "the epilogue is not read to its end");
  const bare = await parse(utf8("--b\r\n\r\nhi\r\n--b--"), "b");
  assert.deepEqual(bare, { parts: [{ headers: {}, body: "hi", index: 0 }] });
});

Deno.test("readMultipart() accepts bare LF, transport padding, folded headers, no headers", async () => {
  const body = "--b \t\nContent-Type: a/b\n\nfirst\n--b\n\nsecond\r\n--b \r\n" +
    "A: 1\r\n folded\r\nB:2\r\n\r\n\r\nthird\r\n\n--b--";
  const { parts, error } = await parse(utf8(body), "b");
  assert.equal(error, undefined);
  assert.deepEqual(parts, [
    { headers: { "content-type": "a/b" }, body: "first", index: 0 },
    { headers: {}, body: "second", index: 1 },
    { headers: { a: "1 folded", b: "2" }, body: "\r\nthird\r\n", index: 2 },
  ]);
});

Deno.test("readMultipart() reads a boundary followed by other characters as body data", async () => {
  const body = "--b\r\n\r\nx\r\n--bb\r\n--b-x\n--b\t!\r\n--b--";
  const { parts } = await parse(utf8(body), "b");
  assert.deepEqual(parts.map((p) => p.body), ["x\r\n--bb\r\n--b-x\n--b\t!"]);
});

Deno.test("readMultipart() throws truncated after yielding the complete parts", async () => {
  const full =
    "--b\r\nA: 0\r\n\r\nzero\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\nA: 2\r\n\r\ntwo\r\n--b--";
  const cases: [string, number][] = [
    ["inside the body of part 2", full.indexOf("two") + 2],
    ["inside the headers of part 2", full.indexOf("A: 2") + 2],
    ["right after a delimiter line", full.indexOf("A: 2")],
    ["in the close delimiter", full.length - 1],
    ["after the last boundary", full.length - 2],
    ["before the last boundary", full.indexOf("two") + 5],
  ];
  for (const [where, cut] of cases) {
    for (const size of [1, 1000]) {
      const { parts, error } = await parse(chunked(utf8(full.slice(0, cut)), () => size), "b");
      assert.equal(error?.kind, "truncated", where);
      assert.match(error.reason, /truncated/);
      const complete = cut >= full.indexOf("two\r\n--b") + 8 ? 3 : 2;
      assert.deepEqual(parts.map((p) => p.body), ["zero", "one", "two"].slice(0, complete), where);
    }
  }
  assert.equal((await parse(utf8(full), "b")).parts.length, 3);
});

Deno.test("readMultipart() throws no-boundary when the boundary never starts a line", async () => {
  for (const body of ["", "hello world", "x--b\r\n\r\n", "--c\r\n\r\nhi\r\n--c--"]) {
    const { parts, error } = await parse(utf8(body), "b");
    assert.equal(error?.kind, "no-boundary", body);
    assert.equal(parts.length, 0);
  }
  for (const boundary of ["", "a\r\nb", "x".repeat(201)]) {
    assert.equal((await parse(utf8("--\r\n"), boundary)).error?.kind, "bad-boundary");
  }
});

Deno.test("readMultipart() throws part-too-large for the part over the limit, after the others", async () => {
  const body = utf8("--b\r\n\r\n12345\r\n--b\r\n\r\n" + "x".repeat(50) + "\r\n--b--");
  for (const size of [1, 7, 1000]) {
    const { parts, error } = await parse(chunked(body, () => size), "b", {
      ...LIMITS,
      maxPartBytes: 10,
    });
    assert.deepEqual(parts.map((p) => p.body), ["12345"]);
    assert.equal(error?.kind, "part-too-large");
    assert.equal(error.partIndex, 1);
  }
  const exact = await parse(utf8("--b\r\n\r\n1234567890\r\n--b--"), "b", {
    ...LIMITS,
    maxPartBytes: 10,
  });
  assert.equal(exact.parts[0].body, "1234567890");
});

Deno.test("readMultipart() throws too-large as soon as the body passes maxTotalBytes", async () => {
  const body = utf8("--b\r\n\r\n" + "x".repeat(10_000) + "\r\n--b--");
  const source = chunked(body, () => 100);
  const { error } = await parse(source, "b", { ...LIMITS, maxTotalBytes: 1000 });
  assert.equal(error?.kind, "too-large");
  assert.ok(source.stats.pulls <= 12, `read ${source.stats.pulls} chunks`);
  assert.ok(source.stats.cancelled);
});

Deno.test("readMultipart() throws headers-too-large and malformed for bad header blocks", async () => {
  const long = utf8(`--b\r\nX-Long: ${"y".repeat(1000)}\r\n\r\nbody\r\n--b--`);
  const limits = { ...LIMITS, maxHeaderBytes: 100 };
  assert.equal((await parse(chunked(long, () => 7), "b", limits)).error?.kind, "headers-too-large");
  assert.equal((await parse(long, "b", limits)).error?.kind, "headers-too-large");
  assert.equal((await parse(long, "b")).parts.length, 1);
  for (const line of ["no colon here", ": no name", "Bad Name: x"]) {
    const { error } = await parse(utf8(`--b\r\n${line}\r\n\r\nbody\r\n--b--`), "b");
    assert.equal(error?.kind, "malformed", line);
    assert.equal(error.partIndex, 0);
  }
});

Deno.test("readMultipart() reads no further than the consumer asks", async () => {
  const boundary = newBoundary();
  const parts = Array.from({ length: 10 }, (_, i) => ({
    contentType: "application/dicom",
    body: randomBytes(64 * 1024, i),
  }));
  const body = await readAll(writeMultipart(iterate(parts), boundary));
  const source = chunked(body, () => 16 * 1024);
  const chunksInAll = Math.ceil(body.length / (16 * 1024));
  const reader = readMultipart(source.stream, boundary, LIMITS);
  const first = await reader.next();
  assert.deepEqual(first.value?.body, parts[0].body);
  const afterFirst = source.stats.pulls;
  // Part 0 spans 5 chunks; one more may sit in the stream's queue.
  assert.ok(afterFirst <= 7, `${afterFirst} of ${chunksInAll} chunks read for the first part`);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(source.stats.pulls, afterFirst, "nothing is read while the consumer waits");
  const second = await reader.next();
  assert.deepEqual(second.value?.body, parts[1].body);
  assert.ok(source.stats.pulls <= afterFirst + 5, `${source.stats.pulls} chunks after two parts`);
  await reader.return(undefined);
  assert.ok(source.stats.cancelled, "stopping early cancels the body");
  assert.ok(source.stats.pulls < chunksInAll / 2);
});

Deno.test("writeMultipart() pulls parts and their streams only as the consumer reads", async () => {
  let pulled = 0;
  let returned = false;
  async function* instances(): AsyncGenerator<OutgoingPart> {
    try {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield {
          contentType: "application/dicom",
          body: chunked(randomBytes(4096, i), () => 1024).stream,
        };
      }
    } finally {
      returned = true;
    }
  }
  const reader = writeMultipart(instances(), "b").getReader();
  const head = await reader.read();
  assert.equal(
    new TextDecoder().decode(head.value),
    "--b\r\nContent-Type: application/dicom\r\n\r\n",
  );
  assert.equal(pulled, 1);
  for (let i = 0; i < 4; i++) assert.equal((await reader.read()).value?.length, 1024);
  assert.equal(pulled, 1, "the next instance is pulled only after this one is written");
  await reader.read();
  assert.equal(pulled, 2);
  await reader.cancel();
  assert.ok(returned, "cancelling the response stops the instance iterator");
});

Deno.test("writeMultipart() refuses a bad boundary and headers that would break the framing", async () => {
  for (const boundary of ["", "a".repeat(71), "a\r\nb", "ends with space "]) {
    assert.throws(
      () => writeMultipart(iterate([]), boundary),
      (e: unknown) => e instanceof MultipartError && e.kind === "bad-boundary",
    );
  }
  const bad = [
    { contentType: "text/plain\r\nX-Injected: 1", body: utf8("x") },
    { contentType: "text/plain", body: utf8("x"), headers: { "X-A\r\n": "1" } },
  ];
  for (const part of bad) {
    await assert.rejects(
      () => readAll(writeMultipart(iterate([part]), "b")),
      (e: unknown) => e instanceof MultipartError && e.kind === "malformed",
    );
  }
});

Deno.test("newBoundary() is random, RFC 2046 safe and needs no quoting", () => {
  const a = newBoundary();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, newBoundary());
  assert.equal(parseMediaType(`multipart/related; boundary=${a}`).params.boundary, a);
});

Deno.test("readMultipart() parses 200 parts of 512 KB in 64 KB chunks fast", async () => {
  const boundary = newBoundary();
  const part = randomBytes(512 * 1024, 7);
  part.set(utf8(`\r\n--${boundary.slice(0, 20)}\r\n`), 1000); // a near-miss in every part
  const head = utf8(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const delimiter = utf8(`\r\n--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const pieces: Uint8Array[] = [head];
  for (let i = 0; i < 200; i++) {
    pieces.push(part, i < 199 ? delimiter : utf8(`\r\n--${boundary}--\r\n`));
  }
  const body = concat(...pieces);
  const started = performance.now();
  let count = 0;
  for await (
    const p of readMultipart(chunked(body, () => 64 * 1024).stream, boundary, {
      maxPartBytes: 1 << 20,
      maxTotalBytes: 1 << 28,
    })
  ) {
    assert.equal(p.body.length, part.length);
    assert.equal(p.body[part.length - 1], part[part.length - 1]);
    count++;
  }
  const seconds = (performance.now() - started) / 1000;
  const mbPerSecond = body.length / 1e6 / seconds;
  console.log(
    `readMultipart: ${(body.length / 1e6).toFixed(1)} MB in ${(seconds * 1000).toFixed(0)} ms, ` +
      `${mbPerSecond.toFixed(0)} MB/s`,
  );
  assert.equal(count, 200);
  assert.ok(mbPerSecond > 50, `${mbPerSecond.toFixed(1)} MB/s`);
});

Deno.test("readMultipart() copies a part with Content-Length without searching it, in any chunking", async () => {
  const boundary = "cl-boundary";
  const bodies = trickyBodies(boundary).map((b) => b.subarray(0, 3000));
  const written = await readAll(
    writeMultipart(
      iterate(bodies.map((body) => ({
        contentType: "a/b",
        body,
        headers: { "Content-Length": String(body.length) },
      }))),
      boundary,
    ),
  );
  const expected = bodies.map((b) => new TextDecoder("latin1").decode(b));
  for (const size of [1, 2, 5, 64, 4096, written.length]) {
    const got = await parse(chunked(written, () => size), boundary);
    assert.equal(got.error, undefined, `chunks of ${size}`);
    assert.deepEqual(got.parts.map((p) => p.body), expected, `chunks of ${size}`);
  }
});

Deno.test("readMultipart() refuses a Content-Length that does not end at a delimiter", async () => {
  const part = (cl: string, body: string) => `--b\r\nContent-Length: ${cl}\r\n\r\n${body}\r\n`;
  const ok = part("4", "zero");
  const cases: [string, string, string][] = [
    ["too short", ok + part("2", "one") + "--b--", "malformed"],
    ["too long", ok + part("9", "one") + "--b--", "malformed"],
    ["not a number", ok + part("3x", "one") + "--b--", "malformed"],
    ["over the part limit", ok + part("99", "x".repeat(99)) + "--b--", "part-too-large"],
    ["beyond the body", ok + part("30", "one"), "truncated"],
  ];
  for (const [what, text, kind] of cases) {
    for (const size of [1, 1000]) {
      const { parts, error } = await parse(chunked(utf8(text), () => size), "b", {
        maxPartBytes: 50,
        maxTotalBytes: 1 << 20,
      });
      assert.equal(error?.kind, kind, `${what}, chunks of ${size}`);
      assert.deepEqual(parts.map((p) => p.body), ["zero"], what);
    }
  }
  const good = await parse(utf8(ok + part("3", "one") + "--b--"), "b");
  assert.deepEqual(good.parts.map((p) => p.body), ["zero", "one"]);
});

/**
 * @module Contract tests of the ObjectStore, run against both stores: the folder store (always, in
 * a temporary folder) and the S3 store (against the server in S3_ENDPOINT; otherwise its tests are
 * reported as ignored, by name). scripts/s3/start.sh starts a real one (Ceph RGW) here.
 */
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createFolderStore } from "../../db/folder_store.ts";
import type { ObjectInfo, ObjectStore } from "../../db/object_store.ts";
import { compareKeys, createS3Store, listPlan } from "../../db/s3_store.ts";

type Kind = "folder" | "s3";

const S3_ENDPOINT = Deno.env.get("S3_ENDPOINT") ?? "";
/** A bucket of this run's own (removed by the last test), unless S3_BUCKET names one. */
const OWN_BUCKET = !Deno.env.get("S3_BUCKET");
const S3_BUCKET = Deno.env.get("S3_BUCKET") ||
  `object-store-test-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
/** Small, so that listing 30 keys takes several ListObjectsV2 pages. */
const S3_LIST_PAGE_SIZE = 7;

interface Fixture {
  store: ObjectStore;
  /** A key prefix of this test's own (`t-<uuid>/`), so tests sharing a bucket never collide. */
  p: string;
  /** The folder of the folder store. */
  dir?: string;
}

const s3Options = {
  endpoint: S3_ENDPOINT,
  bucket: S3_BUCKET,
  region: Deno.env.get("S3_REGION") || "us-east-1",
  accessKeyId: Deno.env.get("S3_ACCESS_KEY_ID") ?? "",
  secretAccessKey: Deno.env.get("S3_SECRET_ACCESS_KEY") ?? "",
  forcePathStyle: true,
};

async function open(kind: Kind): Promise<Fixture> {
  const p = `t-${crypto.randomUUID()}/`;
  if (kind === "folder") {
    const dir = await Deno.makeTempDir({ prefix: "object_store_test_" });
    const store = createFolderStore(join(dir, "objects"));
    await store.init();
    return { store, p, dir: join(dir, "objects") };
  }
  const store = createS3Store({ ...s3Options, listPageSize: S3_LIST_PAGE_SIZE });
  await store.init();
  return { store, p };
}

async function dispose(fx: Fixture): Promise<void> {
  try {
    for await (const { key } of fx.store.list(fx.p)) await fx.store.delete(key);
  } finally {
    await fx.store.close();
    if (fx.dir) await Deno.remove(join(fx.dir, ".."), { recursive: true });
  }
}

/** Registers `name [folder]` and `name [s3]` (ignored, by name, without S3_ENDPOINT). */
function storeTest(name: string, fn: (fx: Fixture, kind: Kind) => Promise<void>): void {
  for (const kind of ["folder", "s3"] as const) {
    const missing = kind === "s3" && !S3_ENDPOINT;
    Deno.test({
      name: missing ? `${name} [s3: skipped, S3_ENDPOINT not set]` : `${name} [${kind}]`,
      ignore: missing,
      async fn() {
        const fx = await open(kind);
        try {
          await fn(fx, kind);
        } finally {
          await dispose(fx);
        }
      },
    });
  }
}

/** `n` bytes of a deterministic pseudo-random pattern (xorshift), different for each `seed`. */
function bytesOf(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The listing, sorted, as keys and sizes; each object's modification time must be recent. */
async function collect(items: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out = await Array.fromAsync(items);
  for (const o of out) {
    const age = Date.now() - (o.modified?.getTime() ?? NaN);
    assert.ok(age > -60_000 && age < 3_600_000, `${o.key}: modified ${o.modified}`);
  }
  return out.map(({ key, size }) => ({ key, size }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

storeTest("init() is idempotent and description names the store", async ({ store }, kind) => {
  await store.init();
  await store.init();
  if (kind === "folder") assert.match(store.description, /^folder \/.+\/objects$/);
  else assert.equal(store.description, `s3 ${S3_ENDPOINT.replace(/\/+$/, "")}/${S3_BUCKET}`);
});

storeTest("put() then get() round-trips binary data, small and 5 MB", async ({ store, p }) => {
  const every = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
  const big = bytesOf(5 * 1024 * 1024 + 17, 7);
  const empty = new Uint8Array(0);
  await store.put(`${p}every-byte`, every);
  await store.put(`${p}big.dcm`, big, { contentType: "application/dicom" });
  await store.put(`${p}empty`, empty);
  assert.deepEqual(await store.get(`${p}every-byte`), every);
  const got = await store.get(`${p}big.dcm`);
  assert.ok(got);
  assert.equal(got.length, big.length);
  assert.ok(got.every((b, i) => b === big[i]), "5 MB object comes back byte for byte");
  assert.deepEqual(await store.get(`${p}empty`), empty);
  assert.deepEqual(await store.head(`${p}big.dcm`), { key: `${p}big.dcm`, size: big.length });
  assert.deepEqual(await store.head(`${p}empty`), { key: `${p}empty`, size: 0 });
});

storeTest("put() replaces what was under the key", async ({ store, p }) => {
  const key = `${p}overwritten`;
  await store.put(key, bytesOf(10_000, 1));
  await store.put(key, bytesOf(300, 2));
  assert.deepEqual(await store.get(key), bytesOf(300, 2));
  assert.deepEqual(await store.head(key), { key, size: 300 });
  assert.deepEqual(await store.getRange(key, 0, 9_999), bytesOf(300, 2));
  assert.deepEqual((await collect(store.list(p))).map((o) => o.key), [key]);
});

storeTest(
  "a missing key gives null from get, getStream, head and getRange",
  async ({ store, p }) => {
    await store.put(`${p}present`, bytesOf(10));
    // `p` without its slash is a folder in the folder store, and no object in either.
    for (const key of [`${p}absent`, `${p}present/below`, `${p}pres`, p.slice(0, -1)]) {
      assert.equal(await store.get(key), null, `get ${key}`);
      assert.equal(await store.getStream(key), null, `getStream ${key}`);
      assert.equal(await store.head(key), null, `head ${key}`);
      assert.equal(await store.getRange(key, 0, 3), null, `getRange ${key}`);
    }
  },
);

storeTest("getRange() returns exactly the bytes asked for", async ({ store, p }) => {
  const key = `${p}ranged`;
  const data = bytesOf(300_001, 3);
  const n = data.length;
  await store.put(key, data);
  assert.deepEqual(await store.getRange(key, 0, 0), data.slice(0, 1), "first byte");
  assert.deepEqual(await store.getRange(key, 0, 131), data.slice(0, 132), "preamble-sized head");
  assert.deepEqual(await store.getRange(key, 150_000, 150_999), data.slice(150_000, 151_000));
  assert.deepEqual(await store.getRange(key, n - 1, n - 1), data.slice(n - 1), "last byte");
  assert.deepEqual(await store.getRange(key, 0, n - 1), data, "whole object");
  assert.deepEqual(await store.getRange(key, n - 10, n + 1000), data.slice(n - 10), "clamped end");
  assert.deepEqual(await store.getRange(key, n, n + 5), new Uint8Array(0), "past the end");
  await assert.rejects(() => store.getRange(key, 5, 4), RangeError);
  await assert.rejects(() => store.getRange(key, -1, 4), RangeError);
});

storeTest("getStream() streams the whole object", async ({ store, p }) => {
  const key = `${p}streamed`;
  const data = bytesOf(3 * 1024 * 1024 + 5, 4);
  await store.put(key, data);
  const stream = await store.getStream(key);
  assert.ok(stream instanceof ReadableStream);
  let chunks = 0;
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) {
    assert.ok(chunk instanceof Uint8Array);
    parts.push(chunk);
    chunks++;
  }
  const got = new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer());
  assert.equal(got.length, data.length);
  assert.ok(got.every((b, i) => b === data[i]));
  assert.ok(chunks >= 1);
  await store.put(`${p}tiny`, bytesOf(3, 5));
  assert.deepEqual(await readAll((await store.getStream(`${p}tiny`))!), bytesOf(3, 5));
});

storeTest("delete() removes the object and is idempotent", async ({ store, p }) => {
  const key = `${p}doomed`;
  await store.put(key, bytesOf(100));
  await store.put(`${p}kept`, bytesOf(100));
  await store.delete(key);
  assert.equal(await store.get(key), null);
  assert.equal(await store.head(key), null);
  await store.delete(key);
  await store.delete(`${p}never-existed`);
  assert.deepEqual((await collect(store.list(p))).map((o) => o.key), [`${p}kept`]);
});

storeTest(
  "list() yields every key under a prefix, with sizes, across pages",
  async ({ store, p }) => {
    const wanted: ObjectInfo[] = [];
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) {
      const key = `${p}studies/a/${String(i).padStart(2, "0")}/${i % 2 ? "odd" : "even"}.dcm`;
      wanted.push({ key, size: 10 + i });
      puts.push(store.put(key, bytesOf(10 + i, i)));
    }
    puts.push(store.put(`${p}studies/b/1.dcm`, bytesOf(5)));
    puts.push(store.put(`${p}studies/ab`, bytesOf(6)));
    puts.push(store.put(`${p}studies-other`, bytesOf(7)));
    await Promise.all(puts);

    assert.deepEqual(await collect(store.list(`${p}studies/a/`)), wanted);
    // A prefix is a string prefix of keys, not only a folder.
    assert.deepEqual(
      (await collect(store.list(`${p}studies/a`))).map((o) => o.key),
      [...wanted.map((w) => w.key), `${p}studies/ab`].sort(),
    );
    assert.deepEqual(
      (await collect(store.list(`${p}studies/a/1`))).map((o) => o.key),
      wanted.filter((w) => w.key.startsWith(`${p}studies/a/1`)).map((w) => w.key),
    );
    assert.equal((await collect(store.list(p))).length, 33);
    assert.deepEqual(await collect(store.list(`${p}nothing-here/`)), []);
  },
);

storeTest("keys made of DICOM UIDs and other characters round-trip", async ({ store, p }) => {
  const keys = [
    `${p}1.2.840.10008.5.1.4.1.1.2`,
    `${p}studies/1.2.840.113619.2.55.3.604688119.969.1268071029.320/series/1.3.12.2.1107.5.1.4` +
    `/instances/1.2.840.10008.5.1.4.1.1.2.1`,
    `${p}with space and (parens)`,
    `${p}plus+equals=amp&comma,semi;colon:at@`,
    `${p}ümlaut-é-日本`,
    `${p}trailing.dot.`,
    `${p}a..b`,
  ];
  await Promise.all(keys.map((key, i) => store.put(key, bytesOf(64, i + 1))));
  for (const [i, key] of keys.entries()) {
    assert.deepEqual(await store.get(key), bytesOf(64, i + 1), key);
    assert.deepEqual(await store.head(key), { key, size: 64 });
    assert.deepEqual(await store.getRange(key, 63, 63), bytesOf(64, i + 1).slice(63));
  }
  assert.deepEqual((await collect(store.list(p))).map((o) => o.key), [...keys].sort());
});

storeTest(
  "presignGet() gives a URL plain fetch can GET (null for the folder)",
  async (fx, kind) => {
    const { store, p } = fx;
    const keys = [`${p}1.2.840.10008.5.1.4.1.1.2.dcm`, `${p}with space+plus/ümlaut`];
    for (const [i, key] of keys.entries()) {
      const data = bytesOf(70_000, 10 + i);
      await store.put(key, data, { contentType: "application/dicom" });
      const url = await store.presignGet(key, 60);
      if (kind === "folder") {
        assert.equal(url, null);
        continue;
      }
      assert.ok(
        url && url.startsWith(`${S3_ENDPOINT.replace(/\/+$/, "")}/${S3_BUCKET}/`),
        url ?? "",
      );
      const res = await fetch(url);
      assert.equal(res.status, 200, `${key}: ${res.status}`);
      assert.equal(res.headers.get("content-type"), "application/dicom");
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), data);
      // The signature covers the key: the same query string on another key is refused.
      const other = await fetch(url.replace(encodeURIComponent(key.split("/").pop()!), "x"));
      await other.body?.cancel();
      assert.equal(other.status, 403);
    }
    if (kind === "s3") {
      const missing = await fetch((await store.presignGet(`${p}absent`, 60))!);
      await missing.body?.cancel();
      assert.equal(missing.status, 404);
    }
  },
);

storeTest("16 concurrent puts of different keys all land", async ({ store, p }) => {
  const keys = Array.from({ length: 16 }, (_, i) => `${p}concurrent/${i}`);
  await Promise.all(keys.map((key, i) => store.put(key, bytesOf(50_000 + i, 100 + i))));
  const got = await Promise.all(keys.map((key) => store.get(key)));
  got.forEach((bytes, i) => assert.deepEqual(bytes, bytesOf(50_000 + i, 100 + i), keys[i]));
  assert.equal((await collect(store.list(`${p}concurrent/`))).length, 16);
});

storeTest(
  "existing() tells which keys exist: one series across list pages, keys sharing no folder, duplicates",
  async ({ store, p }) => {
    // A series as STOW stores it, plus objects beside it that were not asked about.
    const series = `${p}dicom/1.2.3/1.2.3.4/`;
    const keys = Array.from({ length: 30 }, (_, i) => `${series}1.2.3.4.${100 + i}.abc-r.dcm`);
    await Promise.all([
      ...keys.map((key, i) => store.put(key, bytesOf(10, i))),
      store.put(`${p}dicom/1.2.3/1.2.3.5/other.dcm`, bytesOf(5)),
      store.put(`${series}1.2.3.4.099.before.dcm`, bytesOf(5)),
    ]);
    assert.deepEqual(await store.existing([]), new Set());
    // Every one there (the listing spans several pages of the S3 test's page size, 7).
    assert.deepEqual(await store.existing(keys), new Set(keys));
    // Some gone: the first, one in the middle, the last; one never stored, after the last.
    const gone = [keys[0], keys[13], keys[29]];
    await Promise.all(gone.map((key) => store.delete(key)));
    const asked = [...keys, `${series}1.2.3.4.999.never.dcm`, keys[5]];
    assert.deepEqual(await store.existing(asked), new Set(keys.filter((k) => !gone.includes(k))));
    // A few keys of a folder holding many more (the listing gives up, then HEADs the rest).
    assert.deepEqual(
      await store.existing([keys[1], keys[13], keys[28], `${series}1.2.3.4.200.never.dcm`]),
      new Set([keys[1], keys[28]]),
    );
    assert.deepEqual(await store.existing([keys[2]]), new Set([keys[2]]));
    assert.deepEqual(await store.existing([keys[0]]), new Set());
    // Keys that share no folder: checked one by one.
    const elsewhere = `u-${crypto.randomUUID()}/x.dcm`;
    await store.put(elsewhere, bytesOf(3));
    try {
      assert.deepEqual(
        await store.existing([keys[3], elsewhere, `v-${crypto.randomUUID()}/missing`]),
        new Set([keys[3], elsewhere]),
      );
    } finally {
      await store.delete(elsewhere);
    }
  },
);

Deno.test("S3 existing() plans one listing per folder and HEADs where keys share none", () => {
  const series = "dicom/1.2.3/1.2.3.4/";
  const keys = [
    `${series}1.2.3.4.7.b.dcm`,
    `${series}1.2.3.4.10.a.dcm`,
    `${series}1.2.3.4.9.c.dcm`,
  ];
  assert.deepEqual(listPlan(keys, 1000), {
    prefix: `${series}1.2.3.4.`,
    startAfter: `${series}1.2.3.4.10.a.dc`,
    last: `${series}1.2.3.4.9.c.dcm`,
    maxPages: 2,
  });
  assert.equal(listPlan(keys, 2)!.maxPages, 3);
  // A study: its series share the study's folder.
  assert.equal(
    listPlan(["dicom/1.2.3/1.2.3.4/a.dcm", "dicom/1.2.3/1.2.3.5/b.dcm"], 1000)!.prefix,
    "dicom/1.2.3/1.2.3.",
  );
  assert.equal(listPlan([`${series}a.dcm`], 1000), null, "one key: one HEAD");
  assert.equal(listPlan(["a/x", "b/y"], 1000), null, "no shared folder");
  assert.equal(listPlan(["dicom-a", "dicom-b"], 1000), null, "a shared prefix, but no folder");
  // S3 orders keys by UTF-8 bytes: U+10000 (a surrogate pair) after U+FFFD.
  assert.ok(compareKeys("a/\u{10000}", "a/\ufffd") > 0);
  assert.ok(compareKeys("a/b", "a/ba") < 0);
  assert.ok(compareKeys("a/B", "a/b") < 0);
  assert.equal(compareKeys("a/b", "a/b"), 0);
  const pair = listPlan(["a/\u{10000}x", "a/\u{10001}y"], 1000)!;
  assert.equal(pair.prefix, "a/", "never cuts a surrogate pair");
  assert.equal(listPlan(["a/x\u{10000}", "a/y"], 1000)!.startAfter, "a/x");
});

Deno.test("folder store refuses keys that could leave its folder or are malformed", async () => {
  const fx = await open("folder");
  try {
    const bad = ["../x", "a/../b", "..", "./x", "/abs", "a//b", "a/", "", "a\\b", "x/\\y", "a\0b"];
    for (const key of bad) {
      await assert.rejects(() => fx.store.put(key, bytesOf(1)), TypeError, `put ${key}`);
      await assert.rejects(() => fx.store.get(key), TypeError, `get ${key}`);
      await assert.rejects(() => fx.store.head(key), TypeError, `head ${key}`);
      await assert.rejects(() => fx.store.getRange(key, 0, 0), TypeError, `getRange ${key}`);
      await assert.rejects(() => fx.store.delete(key), TypeError, `delete ${key}`);
    }
    await assert.rejects(() => collect(fx.store.list("../")), TypeError);
    // Nothing was written outside (or inside) the folder.
    assert.deepEqual(await collect(fx.store.list("")), []);
    const around = await Array.fromAsync(Deno.readDir(join(fx.dir!, "..")));
    assert.deepEqual(around.map((e) => e.name), ["objects"]);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(fx.dir!)), []);
  } finally {
    await dispose(fx);
  }
});

Deno.test("folder store put() is atomic: a crash's temp file is never listed or read", async () => {
  const fx = await open("folder");
  try {
    const key = `${fx.p}1.2.3/instance`;
    await fx.store.put(key, bytesOf(1000, 1));
    // What a crash between write and rename leaves behind: a temp file next to the key.
    const folder = join(fx.dir!, fx.p, "1.2.3");
    await Deno.writeFile(join(folder, ".tmp-crashed"), bytesOf(10, 2));
    assert.deepEqual(await collect(fx.store.list("")), [{ key, size: 1000 }]);
    await assert.rejects(() => fx.store.get(`${fx.p}1.2.3/.tmp-crashed`), TypeError);
    // Racing puts of one key: every read sees one whole version, and no temp file is left.
    const versions = Array.from({ length: 8 }, (_, i) => bytesOf(200_000, 10 + i));
    await Promise.all(versions.map((v) => fx.store.put(key, v)));
    const got = await fx.store.get(key);
    assert.ok(versions.some((v) => got !== null && v.every((b, i) => b === got[i])));
    const names = (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name).sort();
    assert.deepEqual(names, [".tmp-crashed", "instance"]);
  } finally {
    await dispose(fx);
  }
});

Deno.test("folder store fresh put(): written in place, and its folder made again when removed", async () => {
  const fx = await open("folder");
  try {
    const key = `${fx.p}1.2.3/4.5.6/instance.dcm`;
    await fx.store.put(key, bytesOf(5000, 3), { fresh: true });
    const folder = join(fx.dir!, fx.p, "1.2.3", "4.5.6");
    // No temporary file: the key's own name, and the bytes whole.
    const names = (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name);
    assert.deepEqual(names, ["instance.dcm"]);
    assert.deepEqual(await fx.store.get(key), bytesOf(5000, 3));
    // A fresh key is new: an existing one is refused, not overwritten.
    await assert.rejects(() => fx.store.put(key, bytesOf(10, 4), { fresh: true }));
    assert.deepEqual(await fx.store.get(key), bytesOf(5000, 3));
    // The folder removed behind the store's back (it remembers the folders it made): made again.
    await Deno.remove(join(fx.dir!, fx.p, "1.2.3"), { recursive: true });
    await fx.store.put(key, bytesOf(7, 5), { fresh: true });
    await fx.store.put(`${fx.p}1.2.3/4.5.6/other.dcm`, bytesOf(8, 6));
    assert.deepEqual(await fx.store.get(key), bytesOf(7, 5));
    assert.deepEqual(await fx.store.get(`${fx.p}1.2.3/4.5.6/other.dcm`), bytesOf(8, 6));
  } finally {
    await dispose(fx);
  }
});

// Registered last, so it runs after every S3 test of this file.
Deno.test({
  name: S3_ENDPOINT
    ? "the suite leaves its S3 bucket empty, and removes it [s3]"
    : "the suite leaves its S3 bucket empty, and removes it [s3: skipped, S3_ENDPOINT not set]",
  ignore: !S3_ENDPOINT,
  async fn() {
    const store = createS3Store(s3Options);
    try {
      await store.init();
      // Every test deleted its keys through the store: nothing of theirs may be left.
      const left = await collect(store.list("t-"));
      assert.deepEqual(left, [], "keys left behind by deletes that did not delete");
    } finally {
      await store.close();
    }
    if (!OWN_BUCKET) return;
    const client = new S3Client({
      endpoint: S3_ENDPOINT,
      region: s3Options.region,
      forcePathStyle: true,
      credentials: {
        accessKeyId: s3Options.accessKeyId,
        secretAccessKey: s3Options.secretAccessKey,
      },
    });
    try {
      await client.send(new DeleteBucketCommand({ Bucket: S3_BUCKET }));
    } finally {
      client.destroy();
    }
  },
});

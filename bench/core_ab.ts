/**
 * @module The FHIR core of two source trees, side by side in one process on one database: each
 * scenario runs as rounds of 20 interactions, the trees alternating (A B, B A, …), and prints each
 * tree's median per interaction and the median of the per-round ratios, so machine drift cancels
 * out. For a before/after of a change to the core (search parsing, the type list) without HTTP.
 *
 *   deno run -A bench/core_ab.ts --a /path/to/before --b /path/to/after \
 *     [--database-url postgres://…/fhir_bench] [--rounds 30]
 *
 * The database is one `bench/fhir.ts` loaded (`fhir_bench`); values are read from it.
 */
import { flagsOf, positive } from "./_args.ts";

let a = "", b = "", url = "postgres://postgres@127.0.0.1:5432/fhir_bench", rounds = 30;
for (const [flag, value] of flagsOf(Deno.args)) {
  if (flag === "--a") a = value();
  else if (flag === "--b") b = value();
  else if (flag === "--database-url") url = value();
  else if (flag === "--rounds") rounds = positive(flag, value());
  else throw new Error(`unknown flag ${flag}`);
}
if (!a || !b) throw new Error("--a and --b name the two trees");

interface Side {
  // deno-lint-ignore no-explicit-any
  fhir: { interact(req: any): Promise<{ status: number; body?: any }> };
  db: { close(): Promise<void> };
}
const sides: Side[] = [];
for (const tree of [a, b]) {
  const root = new URL(`file://${tree.replace(/\/?$/, "/")}`);
  const { openDb } = await import(new URL("db/db.ts", root).href);
  const { createFhirService } = await import(new URL("fhir/service.ts", root).href);
  const { loadDefinitions } = await import(new URL("fhir/definitions.ts", root).href);
  loadDefinitions();
  const db = await openDb({ url, poolSize: 4, prepare: true });
  sides.push({
    db,
    fhir: createFhirService({ db, baseUrl: "http://x/fhir", defaultCount: 20, maxCount: 1000 }),
  });
}
const get = (path: string[], query: [string, string][] = []) => ({ method: "GET", path, query });
const sample = await sides[0].fhir.interact(get(["Observation"], [["_count", "1"]]));
const obs = sample.body?.entry?.[0]?.resource;
if (!obs) throw new Error(`${url} holds no Observation: load it with bench/fhir.ts first`);
const subject: string = obs.subject.reference;
const code = `${obs.code.coding[0].system}|${obs.code.coding[0].code}`;
const patient = (await sides[0].fhir.interact(get(["Patient", subject.slice(8)]))).body;
const family: string = patient.name[0].family;

const scenarios: [string, ReturnType<typeof get>][] = [
  ["read Patient/{id}", get(["Patient", subject.slice(8)])],
  ["search Patient?family", get(["Patient"], [["family", family]])],
  ["search Observation?subject&code", get(["Observation"], [["subject", subject], ["code", code]])],
  [
    "search ImagingStudy?patient&started",
    get(["ImagingStudy"], [["patient", subject], ["started", "ge2018-01-01"]]),
  ],
];
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
console.log("| Scenario | A ms | B ms | B/A (median of rounds) |");
console.log("| --- | --: | --: | --: |");
for (const [name, req] of scenarios) {
  const times: number[][] = [[], []];
  for (let round = 0; round < rounds; round++) {
    for (const s of round % 2 ? [1, 0] : [0, 1]) {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) {
        const res = await sides[s].fhir.interact(req);
        if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
      }
      times[s].push((performance.now() - t0) / 20);
    }
  }
  const ratio = median(times[1].map((v, i) => v / times[0][i]));
  console.log(
    `| ${name} | ${median(times[0]).toFixed(3)} | ${median(times[1]).toFixed(3)} | ${
      ratio.toFixed(3)
    } |`,
  );
}
for (const s of sides) await s.db.close();

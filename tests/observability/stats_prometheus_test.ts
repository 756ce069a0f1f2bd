/**
 * @module Request statistics as Prometheus text (exposition format 0.0.4, read by a strict parser
 * here): the text parses, counts match, histogram buckets are cumulative, totals outlive the
 * windows, and label values are escaped.
 */
import assert from "node:assert/strict";
import {
  createRequestStats,
  DURATION_BUCKETS,
  escapeLabel,
  routeClass,
} from "../../observability/stats.ts";
import { clock, HOUR, T0 } from "./_stats.ts";

interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict little parser of the text exposition format 0.0.4: HELP and TYPE comments, samples
 * with escaped label values; throws on anything else.
 */
function parseProm(text: string): { types: Map<string, string>; samples: PromSample[] } {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: PromSample[] = [];
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      assert.ok(m, `bad comment: ${line}`);
      if (m[1] === "TYPE") {
        assert.ok(!types.has(m[2]), `second TYPE for ${m[2]}`);
        assert.ok(["counter", "gauge", "histogram", "summary", "untyped"].includes(m[3]));
        types.set(m[2], m[3]);
      } else {
        assert.ok(!helps.has(m[2]), `second HELP for ${m[2]}`);
        helps.add(m[2]);
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    assert.ok(name, `bad sample: ${line}`);
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === "{") {
      i++;
      while (line[i] !== "}") {
        const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))?.[0];
        assert.ok(ln && line.slice(i + ln.length, i + ln.length + 2) === '="', `label: ${line}`);
        i += ln.length + 2;
        let value = "";
        for (;;) {
          const ch = line[i++];
          assert.ok(ch !== undefined, `unterminated label value: ${line}`);
          if (ch === '"') break;
          if (ch === "\\") {
            const e = line[i++];
            assert.ok(e === "\\" || e === '"' || e === "n", `bad escape: ${line}`);
            value += e === "n" ? "\n" : e;
          } else value += ch;
        }
        assert.ok(!(ln in labels), `repeated label ${ln}`);
        labels[ln] = value;
        if (line[i] === ",") i++;
        else assert.equal(line[i], "}", `label list: ${line}`);
      }
      i++;
    }
    const rest = line.slice(i);
    const m = /^ (\S+)$/.exec(rest);
    assert.ok(m, `bad value: ${line}`);
    const value = m[1] === "+Inf" ? Infinity : m[1] === "-Inf" ? -Infinity : Number(m[1]);
    assert.ok(!Number.isNaN(value) || m[1] === "NaN", `bad number: ${line}`);
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(name) || types.get(family) === "histogram", `no TYPE before ${name}`);
    samples.push({ name, labels, value });
  }
  return { types, samples };
}

Deno.test("prometheus: the text parses, counts match, totals are cumulative", () => {
  const c = clock();
  const stats = createRequestStats({ now: c.now });
  const recorded = [
    { path: "/fhir/Patient/1", method: "GET", status: 200, ms: 3 },
    { path: "/fhir/Patient/2", method: "GET", status: 200, ms: 30 },
    { path: "/fhir/Patient/3", method: "GET", status: 404, ms: 2 },
    { path: "/fhir/Patient", method: "POST", status: 201, ms: 120 },
    { path: "/fhir/Patient", method: "POST", status: 500, ms: 7000 },
    { path: "/fhir/Patient", method: "POST", status: 422, ms: 11_000 },
    { path: "/metrics", method: "GET", status: 200, ms: 0.4 },
  ];
  for (const s of recorded) {
    stats.record({ routeClass: routeClass(s.method, s.path), ...s });
  }
  // A route class with characters that must be escaped (classes not made by routeClass()).
  const odd = 'GET /odd"quote\\back\nline';
  stats.record({ routeClass: odd, method: "GET", status: 200, ms: 1 });
  // Two days later: the windows have forgotten, the counters have not.
  c.t = T0 + 48 * HOUR + 5000;
  stats.record({
    routeClass: routeClass("GET", "/fhir/Patient/9"),
    method: "GET",
    status: 200,
    ms: 4,
  });
  assert.equal(stats.snapshot().windows.day.overall.count, 1);

  const text = stats.prometheus();
  const { types, samples } = parseProm(text);
  assert.equal(types.get("http_requests_total"), "counter");
  assert.equal(types.get("http_request_duration_seconds"), "histogram");
  assert.equal(types.get("process_uptime_seconds"), "gauge");
  const find = (name: string, labels: Record<string, string>) =>
    samples.filter((s) =>
      s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
    );
  const value = (name: string, labels: Record<string, string>) => {
    const found = find(name, labels);
    assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}`);
    return found[0].value;
  };
  const req = "http_requests_total";
  const id = { route: "/fhir/Patient/{id}", method: "GET" };
  assert.equal(value(req, { ...id, status_class: "2xx" }), 3);
  assert.equal(value(req, { ...id, status_class: "4xx" }), 1);
  const type = { route: "/fhir/Patient", method: "POST" };
  assert.equal(value(req, { ...type, status_class: "2xx" }), 1);
  assert.equal(value(req, { ...type, status_class: "4xx" }), 1);
  assert.equal(value(req, { ...type, status_class: "5xx" }), 1);
  assert.equal(value(req, { route: "/metrics", method: "GET", status_class: "2xx" }), 1);
  assert.equal(value(req, { route: '/odd"quote\\back\nline', method: "GET" }), 1);
  const total = find(req, {}).reduce((n, s) => n + s.value, 0);
  assert.equal(total, recorded.length + 2);

  // Histogram: cumulative buckets in order, +Inf equals _count, _sum is the seconds recorded.
  const h = "http_request_duration_seconds";
  const buckets = find(`${h}_bucket`, type);
  assert.deepEqual(buckets.map((b) => b.labels.le), [...DURATION_BUCKETS.map(String), "+Inf"]);
  assert.deepEqual(
    buckets.map((b) => b.value),
    DURATION_BUCKETS.map((le) => [0.12, 7, 11].filter((s) => s <= le).length).concat(3),
  );
  assert.equal(value(`${h}_count`, type), 3);
  assert.ok(Math.abs(value(`${h}_sum`, type) - (0.12 + 7 + 11)) < 1e-9);
  assert.equal(value(`${h}_count`, id), 4);
  assert.ok(Math.abs(value(`${h}_sum`, id) - 0.039) < 1e-9);
  assert.equal(value(`${h}_bucket`, { ...id, le: "0.005" }), 3); // 3, 2 and 4 ms
  for (const s of find(`${h}_count`, {})) {
    const inf = value(`${h}_bucket`, {
      route: s.labels.route,
      method: s.labels.method,
      le: "+Inf",
    });
    assert.equal(inf, s.value);
  }
  assert.equal(value("process_uptime_seconds", {}), 48 * 3600 + 5);
  // HELP and TYPE come before each family's samples.
  assert.ok(
    text.indexOf("# TYPE http_requests_total counter") < text.indexOf("http_requests_total{"),
  );
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');

  // Nothing recorded: the families are still declared, and the uptime is there.
  const empty = parseProm(createRequestStats({ now: () => T0 }).prometheus());
  assert.deepEqual(empty.samples.map((s) => s.name), ["process_uptime_seconds"]);
});

import assert from "node:assert/strict";
import { dateRange, toTimestamp } from "../../fhir/search/dates.ts";

const utc = (...a: [number, number?, number?, number?, number?, number?, number?]) =>
  Date.UTC(a[0], a[1] ?? 0, a[2] ?? 1, a[3] ?? 0, a[4] ?? 0, a[5] ?? 0, a[6] ?? 0);

Deno.test("dateRange: a year is the whole calendar year, half-open", () => {
  assert.deepEqual(dateRange("1974"), { lo: utc(1974), hi: utc(1975) });
});

Deno.test("dateRange: a month is the whole month; December rolls into the next year", () => {
  assert.deepEqual(dateRange("1974-05"), { lo: utc(1974, 4), hi: utc(1974, 5) });
  assert.deepEqual(dateRange("1999-12"), { lo: utc(1999, 11), hi: utc(2000) });
  assert.deepEqual(dateRange("2016-02"), { lo: utc(2016, 1), hi: utc(2016, 2) });
});

Deno.test("dateRange: a date is the whole UTC day; month and year ends roll over", () => {
  assert.deepEqual(dateRange("2015-02-19"), { lo: utc(2015, 1, 19), hi: utc(2015, 1, 20) });
  assert.deepEqual(dateRange("2015-02-28"), { lo: utc(2015, 1, 28), hi: utc(2015, 2, 1) });
  assert.deepEqual(dateRange("2015-12-31"), { lo: utc(2015, 11, 31), hi: utc(2016, 0, 1) });
});

Deno.test("dateRange: a dateTime to the second spans one second", () => {
  const lo = utc(2015, 1, 19, 9, 30, 0);
  assert.deepEqual(dateRange("2015-02-19T09:30:00Z"), { lo, hi: lo + 1000 });
});

Deno.test("dateRange: a dateTime to the minute spans one minute", () => {
  const lo = utc(2015, 1, 19, 9, 30);
  assert.deepEqual(dateRange("2015-02-19T09:30Z"), { lo, hi: lo + 60_000 });
  assert.deepEqual(dateRange("2015-02-19T09:30"), { lo, hi: lo + 60_000 });
});

Deno.test("dateRange: fractional seconds narrow the range by their precision", () => {
  const s = utc(2015, 1, 19, 9, 30, 0);
  assert.deepEqual(dateRange("2015-02-19T09:30:00.5Z"), { lo: s + 500, hi: s + 600 });
  assert.deepEqual(dateRange("2015-02-19T09:30:00.25Z"), { lo: s + 250, hi: s + 260 });
  assert.deepEqual(dateRange("2015-02-19T09:30:00.123Z"), { lo: s + 123, hi: s + 124 });
  const r = dateRange("2015-02-19T09:30:00.123456Z");
  assert.ok(r);
  assert.equal(r.lo, s + 123);
  assert.ok(r.hi > r.lo && r.hi <= s + 124);
});

Deno.test("dateRange: a zone offset shifts the instant to UTC", () => {
  const lo = utc(2015, 1, 19, 7, 30, 0);
  assert.deepEqual(dateRange("2015-02-19T09:30:00+02:00"), { lo, hi: lo + 1000 });
  const lo2 = utc(2015, 1, 19, 14, 0, 0);
  assert.deepEqual(dateRange("2015-02-19T09:30:00-04:30"), { lo: lo2, hi: lo2 + 1000 });
  assert.deepEqual(dateRange("2015-02-19T09:30:00+00:00"), dateRange("2015-02-19T09:30:00Z"));
});

Deno.test("dateRange: a zone offset may move the instant into another day", () => {
  const lo = utc(2015, 1, 18, 23, 0, 0);
  assert.deepEqual(dateRange("2015-02-19T01:00:00+02:00"), { lo, hi: lo + 1000 });
});

Deno.test("dateRange: a time without zone is read as UTC", () => {
  assert.deepEqual(dateRange("2015-02-19T09:30:00"), dateRange("2015-02-19T09:30:00Z"));
});

Deno.test("dateRange: ranges nest: a second lies within its day, month and year", () => {
  const s = dateRange("2015-02-19T09:30:00Z")!;
  for (const outer of ["2015-02-19", "2015-02", "2015"]) {
    const r = dateRange(outer)!;
    assert.ok(r.lo <= s.lo && s.hi <= r.hi, outer);
  }
  assert.ok(dateRange("2015-02-20")!.lo >= s.hi);
});

Deno.test("dateRange: leap days are valid only in leap years", () => {
  assert.deepEqual(dateRange("2016-02-29"), { lo: utc(2016, 1, 29), hi: utc(2016, 2, 1) });
  assert.deepEqual(dateRange("2000-02-29"), { lo: utc(2000, 1, 29), hi: utc(2000, 2, 1) });
  assert.equal(dateRange("2015-02-29"), undefined);
  assert.equal(dateRange("1900-02-29"), undefined);
});

Deno.test("dateRange: surrounding whitespace is ignored", () => {
  assert.deepEqual(dateRange(" 1974 "), dateRange("1974"));
});

Deno.test("dateRange: malformed values give undefined", () => {
  for (
    const bad of [
      "",
      "abc",
      "74",
      "19745",
      "1974-5",
      "1974-05-6",
      "1974-13",
      "1974-00",
      "1974-04-31",
      "1974-05-00",
      "1974-05-06T25:00:00Z",
      "1974-05-06T10:60:00Z",
      "1974-05-06T10:00:61Z",
      "1974-05-06T10:00:00+0200",
      "1974-05-06 10:00:00",
      "1974-05-06T",
      "gt1974",
    ]
  ) {
    assert.equal(dateRange(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("toTimestamp: ISO instants and infinities", () => {
  assert.equal(toTimestamp(utc(2015, 1, 19, 9, 30)), "2015-02-19T09:30:00.000Z");
  assert.equal(toTimestamp(Infinity), "infinity");
  assert.equal(toTimestamp(-Infinity), "-infinity");
});

Deno.test("toTimestamp: years past 9999 and before 1 AD as Postgres reads them, beyond it infinity", () => {
  // The upper bound of a year-9999 value: JavaScript writes +010000-…, which Postgres refuses.
  assert.equal(toTimestamp(dateRange("9999")!.hi), "10000-01-01T00:00:00.000Z");
  assert.equal(toTimestamp(utc(10800, 5, 1, 12)), "10800-06-01T12:00:00.000Z");
  // An `ap` margin below year 1 (astronomical year -93 is 94 BC; year 0 is 1 BC).
  const ms = (iso: string) => new Date(iso).getTime();
  assert.equal(toTimestamp(ms("-000093-01-01T00:00:00.000Z")), "0094-01-01T00:00:00.000Z BC");
  assert.equal(toTimestamp(ms("0000-12-31T23:59:59.999Z")), "0001-12-31T23:59:59.999Z BC");
  assert.equal(toTimestamp(ms("-004712-11-24T00:00:00.000Z")), "4713-11-24T00:00:00.000Z BC");
  assert.equal(toTimestamp(ms("0001-01-01T00:00:00.000Z")), "0001-01-01T00:00:00.000Z");
  // Before what timestamptz holds (4713 BC), or past what a Date holds: the infinities.
  assert.equal(toTimestamp(ms("-004713-01-01T00:00:00.000Z")), "-infinity");
  assert.equal(toTimestamp(8.64e15 + 1), "infinity");
  assert.equal(toTimestamp(ms("+275760-09-13T00:00:00.000Z")), "275760-09-13T00:00:00.000Z");
  assert.throws(() => toTimestamp(NaN), RangeError);
});

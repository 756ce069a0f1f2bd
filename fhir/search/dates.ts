/**
 * @module FHIR dates as half-open ranges [lo, hi) in epoch milliseconds, by their precision:
 * `1974` is all of 1974, `2015-02-19` all of that day, `2015-02-19T09:30` that minute.
 * A time with no zone is read as UTC.
 */

export interface DateRange {
  lo: number;
  hi: number;
}

const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** Parses a FHIR date, dateTime or instant (or a search value's date) into its range; undefined if malformed. */
export function dateRange(text: string): DateRange | undefined {
  const m = DATE_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = mo ? Number(mo) - 1 : 0;
  const day = d ? Number(d) : 1;
  if (mo && (month < 0 || month > 11)) return undefined;
  if (d && (day < 1 || day > daysIn(year, month))) return undefined;
  if (h && (Number(h) > 24 || Number(mi) > 59 || (s && Number(s) > 60))) return undefined;
  const offset = zoneOffsetMs(zone);
  const lo = Date.UTC(year, month, day, Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0)) - offset +
    (frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0);
  let hi: number;
  if (!mo) hi = Date.UTC(year + 1, 0, 1);
  else if (!d) hi = Date.UTC(year, month + 1, 1);
  else if (!h) hi = Date.UTC(year, month, day + 1);
  else if (!s) return { lo, hi: lo + 60_000 };
  else if (!frac) return { lo, hi: lo + 1000 };
  else return { lo, hi: lo + Math.max(1, 10 ** (3 - Math.min(frac.length, 3))) };
  // Whole days, months and years carry no zone: they are the calendar period in UTC.
  return { lo: lo + offset, hi };
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

function zoneOffsetMs(zone: string | undefined): number {
  if (!zone || zone === "Z") return 0;
  const sign = zone[0] === "-" ? -1 : 1;
  const [hh, mm] = zone.slice(1).split(":").map(Number);
  return sign * (hh * 60 + mm) * 60_000;
}

/** Postgres `timestamptz` starts at 4713 BC (it ends at 294276 AD, past JavaScript's dates). */
const PG_MIN_MS = Date.UTC(-4712, 10, 24);
/** The last instant a JavaScript Date holds (year 275760). */
const JS_MAX_MS = 8.64e15;

/**
 * A range bound as Postgres `timestamptz` text: an ISO instant or ±infinity. Years past 9999 (the
 * upper bound of a year-9999 value, `ap` margins) and before 1 AD are written the way Postgres
 * reads them (`10000-01-01T…Z`, `0094-01-01T…Z BC`), never as JavaScript's expanded `+010000-…`,
 * which Postgres rejects; bounds beyond what Postgres can hold are ±infinity.
 */
export function toTimestamp(ms: number): string {
  if (Number.isNaN(ms)) throw new RangeError("toTimestamp: NaN");
  if (ms > JS_MAX_MS) return "infinity";
  if (ms < PG_MIN_MS) return "-infinity";
  const iso = new Date(ms).toISOString();
  const year = new Date(ms).getUTCFullYear();
  if (year >= 1 && year <= 9999) return iso;
  const rest = iso.slice(iso.indexOf("-", 1)); // "-MM-DDTHH:MM:SS.sssZ"
  return year > 9999 ? `${year}${rest}` : `${String(1 - year).padStart(4, "0")}${rest} BC`;
}

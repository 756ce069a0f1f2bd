/**
 * @module The keyset `_cursor` of search links: encoded by the server, checked value by value when
 * it comes back (it is the client's input by then) before it reaches SQL.
 */
import { badRequest } from "../../platform/outcome.ts";
import type { Cursor, SearchRequest } from "./model.ts";
import { invalidCharacter } from "./values.ts";

/**
 * A `_cursor` is made by this server, but it comes back from the client: before its values reach
 * the keyset comparison (where each is cast to its key's SQL type) each must be what the server
 * itself writes for that key, `null`, and the last one a row id. Anything else is a 400.
 */
export function checkCursor(request: SearchRequest, cursor: Cursor): void {
  const bad = (why: string) => badRequest(`Invalid _cursor: ${why}`, "_cursor");
  const { values } = cursor;
  if (values.length !== request.sort.length + 1) {
    throw bad(`it holds ${values.length} values for ${request.sort.length} sort keys`);
  }
  const rid = values[values.length - 1];
  if (typeof rid !== "number" || !Number.isSafeInteger(rid) || rid < 0) {
    throw bad("it does not end with a row id");
  }
  request.sort.forEach((key, i) => {
    const v = values[i];
    if (v === null) return;
    const kind = key.code === "_lastUpdated" || key.def?.type === "date"
      ? "timestamp"
      : key.def?.type === "number" || key.def?.type === "quantity"
      ? "number"
      : "text";
    const ok = typeof v === "string" && (
      kind === "timestamp"
        ? isTimestampText(v)
        : kind === "number"
        ? CURSOR_NUMBER.test(v)
        : invalidCharacter(v) === undefined
    );
    if (!ok) throw bad(`the value for ${key.code} is not a ${kind}`);
  });
}

/** Postgres numeric as text (the sort values of numbers and quantities). */
const CURSOR_NUMBER = /^-?\d{1,1000}(\.\d{1,1000})?$/;
/** Postgres timestamptz as text (DateStyle ISO): `2020-05-06 07:08:09.123+00`, or ±infinity. */
const CURSOR_TIMESTAMP =
  /^(\d{4,5})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?[+-](\d{2})(?::(\d{2}))?(?::(\d{2}))?$/;

/** Whether `text` is a timestamptz as Postgres writes the bounds of the index (1 AD to 10000 AD). */
function isTimestampText(text: string): boolean {
  if (text === "infinity" || text === "-infinity") return true;
  const m = CURSOR_TIMESTAMP.exec(text);
  if (!m) return false;
  const [year, month, day, h, mi, sec, zh, zm, zs] = m.slice(1).map((x) => Number(x ?? 0));
  if (year < 1 || year > 10000 || month < 1 || month > 12) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  return day >= 1 && day <= days && h <= 23 && mi <= 59 && sec <= 59 && zh <= 15 && zm <= 59 &&
    zs <= 59;
}

/** A `_cursor` value: JSON, base64url (also `$everything`'s, which wraps a search's in its own). */
export function packCursor(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** What `packCursor` packed; a 400 for anything else (a cursor is the client's input by now). */
export function unpackCursor<T>(value: string, check: (v: unknown) => v is T): T {
  try {
    const v = JSON.parse(atob(value.replaceAll("-", "+").replaceAll("_", "/")));
    if (check(v)) return v;
  } catch {
    // below
  }
  throw badRequest(`Invalid _cursor "${value}"`, "_cursor");
}

export function encodeCursor(cursor: Cursor): string {
  return packCursor([cursor.direction === "prev" ? 1 : 0, cursor.values]);
}

export function decodeCursor(value: string): Cursor {
  const [d, values] = unpackCursor(
    value,
    (v): v is [number, Cursor["values"]] => Array.isArray(v) && Array.isArray(v[1]),
  );
  return { direction: d === 1 ? "prev" : "next", values };
}

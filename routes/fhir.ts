/**
 * @module HTTP for the FHIR API at /fhir: parses media types, Prefer, If-Match, If-None-Exist,
 * If-None-Match, `_format` and `_pretty`, calls the FHIR service once, and shapes the response.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { parseETag } from "../fhir/context.ts";
import type { FhirRequest, FhirResult } from "../fhir/request.ts";
import { readBoundedText } from "../platform/body.ts";
import { badRequest, fhirError, informational } from "../platform/outcome.ts";
import type { AppEnv } from "./env.ts";
import type { Services } from "./env.ts";
import { binaryOf, nativeBinary, nativeResponse } from "./fhir_binary.ts";

export const FHIR_JSON = "application/fhir+json; charset=utf-8";
const JSON_TYPES = ["application/fhir+json", "application/json", "application/json+fhir"];
const FORMATS = new Set([
  "json",
  "application/json",
  "application/fhir+json",
  "application/json+fhir",
]);

export function fhirRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.all("/*", async (c) => {
    const url = new URL(c.req.url);
    const segments = url.pathname.replace(/^.*?\/fhir\/?/, "").split("/").filter(Boolean).map(
      decodeURIComponent,
    );
    const method = c.req.method.toUpperCase();
    const native = nativeBinary(c, segments, method, url);
    if (native !== "read") checkAcceptable(c, url);
    const query = [...url.searchParams].filter(([k]) => k !== "_format" && k !== "_pretty");
    const prefer = parsePrefer(c.req.header("prefer"));
    const request: FhirRequest = {
      method: method === "HEAD" ? "GET" : method,
      path: segments,
      query,
      ifMatch: parseETag(c.req.header("if-match")),
      ifNoneExist: c.req.header("if-none-exist") ?? undefined,
      lenient: prefer.handling === "lenient",
    };
    if (segments[1] === "_search" && method === "POST") {
      request.query = [...query, ...await formParams(c, services.config.fhirMaxBodyBytes)];
    } else if (native === "write") {
      request.body = await binaryOf(c, segments, services.config.fhirMaxBodyBytes);
    } else if (["POST", "PUT", "PATCH"].includes(method)) {
      request.body = await jsonBody(c, method, services.config.fhirMaxBodyBytes);
    }
    const result = await services.fhir.interact(request, c.get("caller"));
    const ifNoneMatch = parseETag(c.req.header("if-none-match"));
    if (method === "GET" && ifNoneMatch && result.etag && parseETag(result.etag) === ifNoneMatch) {
      return c.body(null, 304, headersOf(result));
    }
    if (native === "read") return nativeResponse(c, result, request, headersOf(result));
    return respond(c, result, method, prefer.return, url.searchParams.get("_pretty") === "true");
  });
  return app;
}

function checkAcceptable(c: Context, url: URL): void {
  const format = url.searchParams.get("_format");
  if (format && !FORMATS.has(format.split(";")[0].trim())) {
    throw fhirError(
      406,
      "not-supported",
      `_format=${format} is not supported; this server speaks JSON`,
    );
  }
  const accept = c.req.header("accept");
  if (format || !accept) return;
  const ranges = accept.split(",").map(mediaRange);
  const json = ranges.filter((r) => /^(\*\/\*|application\/\*|.*json)$/i.test(r.type));
  if (!json.length) {
    throw fhirError(
      406,
      "not-supported",
      `Accept: ${accept} cannot be served; this server speaks application/fhir+json`,
    );
  }
  // http.html#version-parameter: a client may ask for a FHIR version; this server has R4 only.
  if (!json.some((r) => r.fhirVersion === undefined || R4_VERSIONS.has(r.fhirVersion))) {
    throw fhirError(
      406,
      "not-supported",
      `Accept: ${accept} asks for FHIR version ${json[0].fhirVersion}; this server speaks ` +
        "FHIR R4 (fhirVersion=4.0)",
    );
  }
}

/** The `fhirVersion` values that name R4 (http.html#version-parameter). */
const R4_VERSIONS = new Set(["4.0", "4.0.0", "4.0.1"]);

/** One media range of an Accept or Content-Type header: its type and `fhirVersion`. */
function mediaRange(text: string): { type: string; fhirVersion?: string } {
  const [type, ...params] = text.split(";").map((p) => p.trim());
  const version = params.map((p) => p.split("=").map((x) => x.trim()))
    .find(([k]) => k.toLowerCase() === "fhirversion")?.[1]?.replace(/^"|"$/g, "");
  return { type: type.toLowerCase(), fhirVersion: version };
}

async function jsonBody(c: Context, method: string, max: number): Promise<unknown> {
  const contentType = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  const version = mediaRange(c.req.header("content-type") ?? "").fhirVersion;
  if (version !== undefined && !R4_VERSIONS.has(version)) {
    throw fhirError(
      415,
      "not-supported",
      `Content-Type names FHIR version ${version}; this server accepts FHIR R4 (fhirVersion=4.0)`,
    );
  }
  const text = await readBoundedText(c.req.raw, max);
  if (method === "PATCH") {
    if (contentType !== "application/json-patch+json") {
      throw fhirError(
        415,
        "not-supported",
        `PATCH needs Content-Type application/json-patch+json, got "${contentType}"`,
      );
    }
  } else if (!JSON_TYPES.includes(contentType)) {
    if (!text && method === "POST") return undefined;
    throw fhirError(
      415,
      "not-supported",
      `Content-Type must be application/fhir+json, got "${contentType || "none"}"`,
    );
  }
  if (!text.trim()) throw badRequest("The request body is empty");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`The body is not valid JSON: ${(e as Error).message}`);
  }
}

async function formParams(c: Context, max: number): Promise<[string, string][]> {
  const contentType = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  const text = await readBoundedText(c.req.raw, max);
  if (!text) return [];
  if (contentType !== "application/x-www-form-urlencoded") {
    throw fhirError(
      415,
      "not-supported",
      `_search needs application/x-www-form-urlencoded, got "${contentType}"`,
    );
  }
  return [...new URLSearchParams(text)];
}

interface Prefer {
  return?: string;
  handling?: string;
}

function parsePrefer(header: string | undefined): Prefer {
  const out: Prefer = {};
  for (const part of (header ?? "").split(/[,;]/)) {
    const [k, v] = part.split("=").map((s) => s?.trim().replace(/^"|"$/g, ""));
    if (k === "return") out.return = v;
    if (k === "handling") out.handling = v;
  }
  return out;
}

function headersOf(result: FhirResult): Record<string, string> {
  const h: Record<string, string> = {};
  if (result.etag) h["ETag"] = result.etag;
  if (result.lastModified) h["Last-Modified"] = new Date(result.lastModified).toUTCString();
  if (result.location) h["Location"] = result.location;
  if (result.contentLocation) h["Content-Location"] = result.contentLocation;
  return h;
}

function respond(
  c: Context,
  result: FhirResult,
  method: string,
  preferReturn: string | undefined,
  pretty: boolean,
) {
  const headers = { ...headersOf(result), "Content-Type": FHIR_JSON };
  const isWrite = ["POST", "PUT", "PATCH"].includes(method) &&
    result.body?.resourceType !== "Bundle";
  let body = result.body;
  if (isWrite && preferReturn === "minimal") {
    return c.body(null, result.status as 200, headersOf(result));
  }
  if (isWrite && preferReturn === "OperationOutcome") {
    body = informational(
      `${
        result.status === 201 ? "Created" : "Updated"
      } ${result.body?.resourceType}/${result.body?.id}`,
    );
  }
  const text = body === undefined ? "" : JSON.stringify(body, null, pretty ? 2 : undefined);
  if (method === "HEAD") return c.body(null, result.status as 200, headers);
  // Its length known, so that compression (app.ts) leaves small answers as they are.
  const bytes = encoder.encode(text);
  return c.body(bytes, result.status as 200, {
    ...headers,
    "Content-Length": String(bytes.byteLength),
  });
}

const encoder = new TextEncoder();

/**
 * @module OpenTelemetry, through Deno's built-in exporter: with `OTEL_DENO=true` and
 * `OTEL_EXPORTER_OTLP_ENDPOINT` in the environment Deno traces every request `Deno.serve` answers
 * and every `fetch`, and exports them (and logs, metrics) over OTLP. This module adds the
 * service's own facts to those spans through the standard `@opentelemetry/api` (a no-op when
 * tracing is off) and carries a trace from the request that queued a job to the sidecar that runs
 * it (W3C `traceparent` in the job).
 */
import {
  type Attributes,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

const tracer = trace.getTracer("imaging-ai");

/** Adds attributes to the span of the request being answered (none when tracing is off). */
export function annotateRequest(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** The current trace as a W3C `traceparent` (undefined when there is none). */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/**
 * Runs `fn` in a span named `name`, a child of the trace `traceparent` names (a job's origin), or
 * a new trace; the span ends with `fn`, marked as an error when it throws.
 */
export async function inSpan<T>(
  name: string,
  traceparent: string | undefined,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
  return await tracer.startActiveSpan(name, { attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: String((e as Error).message ?? e) });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** @module The benchmark host: CPU idle readings, waiting for a quiet machine, a description. */

/** Host CPU idle % over `ms` (from /proc/stat; NaN where it cannot be read). */
export async function cpuIdle(ms: number): Promise<number> {
  const sample = async () => {
    const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    return { idle: v[3] + (v[4] ?? 0), total: v.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = await sample();
    await new Promise((r) => setTimeout(r, ms));
    const b = await sample();
    return (100 * (b.idle - a.idle)) / Math.max(1, b.total - a.total);
  } catch {
    return NaN;
  }
}

/**
 * Waits (up to 3 minutes) until the host is at least 85% idle, so that other work on a shared
 * machine does not land in the figures; returns the last idle reading.
 */
export async function waitForQuiet(): Promise<number> {
  const deadline = Date.now() + 180_000;
  let idle = await cpuIdle(1000);
  while (!(idle >= 85) && !Number.isNaN(idle) && Date.now() < deadline) {
    console.log(`  (host only ${idle.toFixed(0)}% idle; waiting for other work to finish)`);
    await new Promise((r) => setTimeout(r, 4000));
    idle = await cpuIdle(1000);
  }
  return idle;
}

export async function machine(): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? Deno.build.arch;
  const mem = Deno.systemMemoryInfo();
  return `${navigator.hardwareConcurrency} CPUs (${model}), ${
    (mem.total / 2 ** 30).toFixed(1)
  } GiB memory, ${Deno.build.os}, Deno ${Deno.version.deno}`;
}

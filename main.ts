/** @module Composition root: loadConfig() → createServices() → createApp() → Deno.serve. */
import { createApp } from "./app.ts";
import { loadConfigOrExit } from "./platform/config.ts";
import { createServices } from "./services.ts";

if (import.meta.main) {
  const config = loadConfigOrExit(Deno.env.toObject());
  // A database that does not answer or a migration that fails stops start-up with one clear line
  // (no replica serves on a schema it does not know); the orchestrator restarts it.
  const services = await createServices(config).catch((e) => {
    console.error(JSON.stringify({
      level: "error",
      time: new Date().toISOString(),
      msg: "start-up failed",
      error: e instanceof Error ? e.message : String(e),
    }));
    Deno.exit(1);
  });
  const app = createApp(services);
  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) =>
      console.log(JSON.stringify({
        level: "info",
        msg: "listening",
        url: `http://${hostname}:${port}`,
        fhir: `${config.publicUrl}/fhir`,
        database: services.db.kind,
      })),
  }, app.fetch);
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    // Stop accepting; let in-flight requests finish (event streams never do) for the grace period.
    const graceMs = config.shutdownGraceSeconds * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      server.shutdown().then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), graceMs)),
    ]);
    clearTimeout(timer);
    console.log(JSON.stringify({
      level: "info",
      msg: drained ? "stopped: requests drained" : "stopped: grace period over",
      graceSeconds: config.shutdownGraceSeconds,
    }));
    await services.close();
    Deno.exit(0);
  };
  // Before anything else is awaited: the server answers from here on, so a SIGTERM may come now.
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
  await services.startWorker((request) => app.fetch(request));
}

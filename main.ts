/** @module Composition root: loadConfig() → createServices() → createApp() → Deno.serve. */
import { createApp } from "./app.ts";
import { loadConfigOrExit } from "./config.ts";
import { createServices } from "./services.ts";

if (import.meta.main) {
  const config = loadConfigOrExit(Deno.env.toObject());
  const services = await createServices(config);
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
  await services.startWorker((request) => app.fetch(request));
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
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
}

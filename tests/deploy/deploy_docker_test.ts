/**
 * deploy/docker/*.Dockerfile: pinned bases, Deno as CI has it, `deno task`s that exist, COPY
 * sources that exist and are not dockerignored, and that cover the entry point's module graph and
 * the data it reads at run time.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../platform/config.ts";
import {
  denoTasks,
  denoTasksOfProject,
  dockerIgnored,
  dockerignorePatterns,
  dockerInstructions,
  exists,
  filesUnder,
  localModuleGraph,
  readText,
  taskEntry,
  words,
} from "./_deploy_files.ts";

Deno.test("Dockerfiles: deno tasks exist, COPY sources exist and are not dockerignored, and cover the entry point's module graph", async () => {
  const tasks = denoTasksOfProject();
  const ignore = dockerignorePatterns();
  const ciDeno = /^DENO_VERSION=(.+)$/m.exec(readText(".ci/versions"))?.[1];
  const files = filesUnder("deploy/docker", /Dockerfile$/);
  assert.deepEqual(files.map((f) => f.split("/").at(-1)), ["api.Dockerfile", "sidecar.Dockerfile"]);
  for (const file of files) {
    const steps = dockerInstructions(readText(file));
    const stages = new Set<string>();
    const copied: string[] = [];
    for (const { op, args } of steps) {
      if (op === "FROM") {
        const [image, as, stage] = args.split(/\s+/);
        if (!stages.has(image)) {
          assert.match(image, /(@sha256:|:(?!latest$)[^/]*\d[^/]*$)/, `${file}: pin ${image}`);
        }
        if (as?.toUpperCase() === "AS") stages.add(stage);
      }
      if (op === "ARG" && args.startsWith("DENO_VERSION=")) {
        assert.equal(args.split("=")[1], ciDeno, `${file}: Deno ${ciDeno}, as .ci/versions`);
      }
      if (["RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK"].includes(op)) {
        for (
          const task of denoTasks(op === "RUN" ? [args] : words(args.replace(/^.*?CMD\s+/, "")))
        ) {
          assert.ok(task in tasks, `${file}: deno task ${task} is not in deno.json`);
        }
      }
      if (op === "COPY" || op === "ADD") {
        const parts = words(args);
        if (parts.some((p) => p.startsWith("--from="))) continue;
        for (const source of parts.filter((p) => !p.startsWith("--")).slice(0, -1)) {
          assert.ok(exists(source), `${file}: COPY ${source}: no such file`);
          assert.ok(!dockerIgnored(ignore, source), `${file}: COPY ${source} is dockerignored`);
          copied.push(source.replace(/\/$/, ""));
        }
      }
    }
    assert.ok(
      steps.some((s) => s.op === "USER" && !/^(0|root)\b/.test(s.args)),
      `${file}: run as non-root`,
    );
    assert.ok(
      steps.some((s) => /deno install --frozen/.test(s.args)),
      `${file}: deno install --frozen`,
    );
    const task = denoTasks(words(steps.findLast((s) => s.op === "CMD")!.args))[0];
    if (task === "sidecar") {
      // The CUDA provider is fetched at build time: never skipped, and the install script allowed.
      assert.ok(!steps.some((s) => /ONNXRUNTIME_NODE_INSTALL=skip/.test(s.args)), `${file}: skip`);
      assert.ok(
        steps.some((s) => /--allow-scripts=npm:onnxruntime-node/.test(s.args)),
        `${file}: deno install --allow-scripts=npm:onnxruntime-node`,
      );
    }
    const graph = await localModuleGraph(taskEntry(task));
    // What is read at run time besides the modules: the config, the lock, the workspace members'
    // deno.json, the models; for the API the migrations (db/migrate.ts) and the UI (routes/ui.ts).
    const project = JSON.parse(readText("deno.json"));
    const runtimeData = [
      "deno.json",
      "deno.lock",
      ...(project.workspace ?? []).map((m: string) => `${m.replace(/^\.\//, "")}/deno.json`),
      loadConfig({}).inference.modelsDir,
      ...(task === "start" ? ["db/migrations", "static"] : []),
    ];
    for (const path of [...graph, ...runtimeData]) {
      assert.ok(
        copied.some((c) => path === c || path.startsWith(`${c}/`)),
        `${file}: ${path} (needed by deno task ${task}) is not copied`,
      );
      assert.ok(!dockerIgnored(ignore, path), `${file}: ${path} is dockerignored`);
    }
  }
});

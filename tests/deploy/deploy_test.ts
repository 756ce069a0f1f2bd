/**
 * The deploy files (deploy/compose.yaml, deploy/k8s/, deploy/docker/, deploy/haproxy/) cannot run
 * here: there is no container engine and no cluster. These checks keep them from rotting: they
 * parse, name only variables platform/config.ts reads, are structurally sound, ask for a GPU where the
 * sidecar runs, and hold no secret. deploy_agreement_test.ts, deploy_docker_test.ts and
 * deploy_probes_test.ts check the rest.
 */
import assert from "node:assert/strict";
import { WORKER_SCOPE } from "../../queue/jobs.ts";
import {
  configVariables,
  denoTasks,
  denoTasksOfProject,
  type Doc,
  environmentOf,
  exists,
  filesUnder,
  loadYaml,
  readText,
  refsOf,
  ROOT,
  words,
} from "./_deploy_files.ts";
import {
  APP_TASKS,
  compose,
  composeApps,
  k8s,
  k8sApps,
  KINDS,
  ofKind,
  SECRET_NAME,
} from "./_deploy_model.ts";

Deno.test("deploy/: every YAML file parses; each Kubernetes document is a known kind with its apiVersion and a name, in no namespace", () => {
  const files = filesUnder("deploy", /\.ya?ml$/);
  assert.ok(files.includes("deploy/compose.yaml"), "deploy/compose.yaml is missing");
  for (const file of files) loadYaml(file);
  const docs = k8s();
  assert.ok(docs.length > 0, "no manifests in deploy/k8s");
  for (const { file, doc } of docs) {
    assert.ok(doc.kind in KINDS, `${file}: unknown kind ${doc.kind}`);
    assert.equal(doc.apiVersion, KINDS[doc.kind], `${file}: ${doc.kind} is ${KINDS[doc.kind]}`);
    if (doc.kind === "Kustomization") {
      assert.equal(doc.namespace, undefined, `${file}: keep the manifests namespace-agnostic`);
      for (const resource of doc.resources) {
        assert.ok(exists(`deploy/k8s/${resource}`), `${file}: ${resource} does not exist`);
        assert.ok(!/template/.test(resource), `${file}: never apply the Secret template`);
      }
      continue;
    }
    assert.ok(doc.metadata?.name, `${file}: a ${doc.kind} without metadata.name`);
    assert.equal(
      doc.metadata.namespace,
      undefined,
      `${file}: ${doc.metadata.name} has a namespace`,
    );
  }
  for (const kind of Object.keys(KINDS)) {
    assert.ok(ofKind(kind).length > 0, `deploy/k8s has no ${kind}`);
  }
});

Deno.test("deploy/: every `deno task` compose and Kubernetes run is in deno.json; each runs the API and the sidecar", () => {
  const tasks = denoTasksOfProject();
  const commands = [
    ...Object.entries(compose().services as Record<string, Doc>).map(([name, s]) => ({
      where: `compose ${name}`,
      command: Array.isArray(s.command) ? s.command : words(s.command ?? ""),
    })),
    ...ofKind("Deployment").flatMap(({ doc }) =>
      doc.spec.template.spec.containers.map((c: Doc) => ({
        where: `k8s ${doc.metadata.name}`,
        command: [...c.command ?? [], ...c.args ?? []],
      }))
    ),
  ];
  for (const { where, command } of commands) {
    for (const task of denoTasks(command)) {
      assert.ok(task in tasks, `${where}: deno task ${task} is not in deno.json`);
    }
  }
  for (const task of APP_TASKS) {
    assert.ok(composeApps().some(([, , t]) => t === task), `compose runs no deno task ${task}`);
    assert.ok(k8sApps().some((a) => a.task === task), `k8s runs no deno task ${task}`);
  }
});

Deno.test("deploy/: every environment variable given to the API or the sidecar is one platform/config.ts reads", () => {
  const known = configVariables();
  assert.ok(known.has("DATABASE_URL") && known.has("PORT"), "platform/config.ts could not be read");
  const check = (where: string, names: Iterable<string>) => {
    for (const name of names) {
      assert.ok(known.has(name), `${where}: ${name} is not read by config.ts`);
    }
  };
  for (const [name, service] of composeApps()) {
    check(`compose.yaml ${name}`, Object.keys(environmentOf(service)));
  }
  for (const { doc } of ofKind("ConfigMap")) {
    check(`ConfigMap ${doc.metadata.name}`, Object.keys(doc.data));
  }
  const mounted = new Set(
    ofKind("Deployment").flatMap(({ doc }) =>
      (doc.spec.template.spec.volumes ?? []).flatMap((v: Doc) =>
        (v.secret?.items ?? []).map((i: Doc) => `${v.secret.secretName}/${i.key}`)
      )
    ),
  );
  for (const { doc } of ofKind("Secret")) {
    for (const key of Object.keys({ ...doc.data, ...doc.stringData })) {
      if (/^[A-Z][A-Z0-9_]*$/.test(key)) check(`Secret ${doc.metadata.name}`, [key]);
      else {
        assert.ok(
          mounted.has(`${doc.metadata.name}/${key}`),
          `Secret ${doc.metadata.name}: ${key} is neither a variable nor mounted as a file`,
        );
      }
    }
  }
  for (const { deployment, container } of k8sApps()) {
    check(`Deployment ${deployment.metadata.name}`, (container.env ?? []).map((e: Doc) => e.name));
  }
  for (const { doc, doc11 } of k8s()) {
    for (
      const [key, value] of Object.entries(doc11.data ?? {}).concat(
        Object.entries(doc11.stringData ?? {}),
      )
    ) {
      assert.equal(
        typeof value,
        "string",
        `${doc.kind} ${doc.metadata.name}: quote ${key} (YAML 1.1)`,
      );
    }
  }
});

Deno.test("compose.yaml: healthchecks everywhere, depends_on waits for them, named volumes, pinned images, files that exist", () => {
  const c = compose();
  const services = c.services as Record<string, Doc>;
  const oneShots = new Set(
    Object.values(services).flatMap((s) =>
      Object.entries(s.depends_on ?? {}).filter(([, d]: [string, Doc]) =>
        d.condition === "service_completed_successfully"
      ).map(([n]) => n)
    ),
  );
  for (const [name, s] of Object.entries(services)) {
    if (!oneShots.has(name)) assert.ok(s.healthcheck?.test, `compose ${name} has no healthcheck`);
    assert.ok(!Array.isArray(s.depends_on), `compose ${name}: depends_on needs conditions`);
    for (const [dep, d] of Object.entries(s.depends_on ?? {}) as [string, Doc][]) {
      assert.ok(dep in services, `compose ${name} depends on an unknown ${dep}`);
      assert.ok(
        ["service_healthy", "service_completed_successfully"].includes(d.condition),
        `compose ${name} → ${dep}: wait for service_healthy`,
      );
      if (d.condition === "service_healthy") {
        assert.ok(services[dep].healthcheck, `${dep} has no healthcheck`);
      }
    }
    for (const v of s.volumes ?? []) {
      const source = String(typeof v === "string" ? v.split(":")[0] : v.source);
      if (source.startsWith(".") || source.startsWith("/")) {
        assert.ok(
          exists(new URL(source, new URL("deploy/", ROOT)).pathname.slice(ROOT.pathname.length)),
          `compose ${name}: ${source} does not exist`,
        );
      } else {assert.ok(
          source in (c.volumes ?? {}),
          `compose ${name}: volume ${source} is not declared`,
        );}
    }
    if (s.build) {
      const dockerfile = `${
        new URL(`${s.build.context}/`, new URL("deploy/", ROOT)).href
      }${s.build.dockerfile}`;
      assert.ok(
        exists(dockerfile.slice(ROOT.href.length)),
        `compose ${name}: ${s.build.dockerfile} not found`,
      );
    } else {
      assert.match(
        String(s.image),
        /:(?!latest$)[^/]*\d[^/]*$/,
        `compose ${name}: pin the image by tag`,
      );
    }
    for (const secret of s.secrets ?? []) {
      const def = c.secrets?.[typeof secret === "string" ? secret : secret.source];
      assert.ok(def?.file || def?.environment, `compose ${name}: secret ${secret} is not defined`);
    }
  }
});

Deno.test("the sidecar asks for a GPU in compose and in Kubernetes; the API does not", () => {
  for (const [name, s, task] of composeApps()) {
    const devices = s.deploy?.resources?.reservations?.devices ?? [];
    const gpu = devices.some((d: Doc) => d.driver === "nvidia" && d.capabilities?.includes("gpu"));
    assert.equal(
      gpu,
      task === "sidecar",
      `compose ${name}: ${task === "sidecar" ? "reserve" : "no"} GPU`,
    );
  }
  for (const { deployment, container, task } of k8sApps()) {
    const gpus = Number(container.resources?.limits?.["nvidia.com/gpu"] ?? 0);
    assert.equal(
      gpus >= 1,
      task === "sidecar",
      `${deployment.metadata.name}: nvidia.com/gpu limits`,
    );
    if (task === "sidecar") {
      const tolerations = deployment.spec.template.spec.tolerations ?? [];
      assert.ok(
        tolerations.some((t: Doc) => t.key === "nvidia.com/gpu"),
        "tolerate the GPU nodes' taint",
      );
    }
  }
});

Deno.test("no secret in deploy/: the Secret template holds placeholders, compose takes each credential from a required variable", () => {
  for (const { file, doc } of ofKind("Secret")) {
    assert.ok(/template/.test(file), `${file}: Secrets live only in a template`);
    assert.equal(doc.data, undefined, `${file}: stringData placeholders only, no data`);
    for (const [key, value] of Object.entries(doc.stringData ?? {})) {
      assert.match(
        String(value),
        /^REPLACE_ME$/,
        `${file}: ${key} must be the placeholder REPLACE_ME`,
      );
    }
  }
  for (const [name, s] of Object.entries(compose().services as Record<string, Doc>)) {
    for (const [key, raw] of Object.entries(environmentOf(s))) {
      const { refs, literal } = refsOf(raw);
      for (const ref of refs.filter((r) => SECRET_NAME.test(r.name))) {
        assert.ok(
          ref.op.endsWith("?") || (ref.op.endsWith("-") && ref.arg === ""),
          `compose ${name} ${key}: \${${ref.name}} has a default`,
        );
      }
      if (SECRET_NAME.test(key) && !raw.startsWith("@/run/secrets/")) {
        assert.equal(literal, "", `compose ${name} ${key}: a credential written in the file`);
      }
      const userinfo = /:\/\/[^/@\s]*:([^@\s]*)@/.exec(raw);
      if (userinfo) {
        assert.match(
          userinfo[1],
          /^\$\{[A-Z0-9_]+:?\?[^}]*\}$/,
          `compose ${name} ${key}: the URL's password must be a required variable`,
        );
      }
    }
  }
  for (const file of filesUnder("deploy", /./).concat(".dockerignore")) {
    const text = readText(file);
    assert.doesNotMatch(text, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, `${file}: a private key`);
    assert.doesNotMatch(text, /\bAKIA[0-9A-Z]{16}\b/, `${file}: an AWS access key`);
    assert.doesNotMatch(text, /"d"\s*:\s*"[A-Za-z0-9_-]{20,}"/, `${file}: a private JWK`);
  }
});

Deno.test("deploy/README.md registers the sidecar's client with exactly the worker's scope", () => {
  const readme = readText("deploy/README.md");
  const m = /auth\/clients\/imaging-ai-sidecar[\s\S]*?\\"scope\\": \\"([^\\]+)\\"/.exec(readme);
  assert.ok(m, "the sidecar's registration in deploy/README.md");
  assert.deepEqual(m[1].split(" ").sort(), WORKER_SCOPE.split(" ").sort());
});

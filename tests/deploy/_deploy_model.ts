/**
 * @module What the deploy files say, read as the app's terms: the compose services and the
 * Kubernetes containers that run `deno task start` (the API) or `deno task sidecar`, the
 * environment each gets, and every probe and healthcheck aimed at them.
 */
import assert from "node:assert/strict";
import { type Config, loadConfig } from "../../platform/config.ts";
import {
  denoTasks,
  type Doc,
  dockerInstructions,
  environmentOf,
  filesUnder,
  haproxySections,
  interpolate,
  loadYaml,
  readText,
  refsOf,
  words,
} from "./_deploy_files.ts";

export const KINDS: Record<string, string> = {
  Deployment: "apps/v1",
  HorizontalPodAutoscaler: "autoscaling/v2",
  PodDisruptionBudget: "policy/v1",
  Service: "v1",
  ConfigMap: "v1",
  Secret: "v1",
  Ingress: "networking.k8s.io/v1",
  Kustomization: "kustomize.config.k8s.io/v1beta1",
};
/** Environment names that carry a credential. */
export const SECRET_NAME = /PASSWORD|SECRET|TOKEN|PRIVATE_KEY|_AUTH$/;
export const SAMPLE = "Sample0123456789abcdef";
export const APP_TASKS = ["start", "sidecar"] as const;
export type AppTask = typeof APP_TASKS[number];

export const compose = (): Doc => loadYaml("deploy/compose.yaml").docs[0];
let manifests: { file: string; doc: Doc; doc11: Doc }[] | undefined;
/** Every document under deploy/k8s (read once). */
export const k8s = (): { file: string; doc: Doc; doc11: Doc }[] =>
  manifests ??= filesUnder("deploy/k8s", /\.ya?ml$/).flatMap((file) => {
    const { docs, docs11 } = loadYaml(file);
    return docs.map((doc, i) => ({ file, doc, doc11: docs11[i] }));
  });
export const ofKind = (kind: string) => k8s().filter((d) => d.doc.kind === kind);
export const subset = (a: Record<string, string> = {}, b: Record<string, string> = {}) =>
  Object.keys(a).length > 0 && Object.entries(a).every(([k, v]) => b[k] === v);

/** The compose services that run the app, with the `deno task` each runs. */
export function composeApps(): [string, Doc, AppTask][] {
  return Object.entries(compose().services as Record<string, Doc>).flatMap(([name, s]) => {
    const task = denoTasks(Array.isArray(s.command) ? s.command : words(s.command ?? ""))[0];
    return APP_TASKS.includes(task as AppTask) ? [[name, s, task as AppTask]] : [];
  });
}

/** A compose service's environment as the container gets it: required variables get a sample. */
export function composeEnv(service: Doc): Record<string, string> {
  const raw = environmentOf(service);
  const vars: Record<string, string> = {};
  for (const value of Object.values(raw)) {
    for (const ref of refsOf(value).refs) if (ref.op.endsWith("?")) vars[ref.name] = SAMPLE;
  }
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(v, vars).text]));
}

/** The app's Deployments' containers, with the `deno task` each runs. */
export function k8sApps(): { deployment: Doc; container: Doc; task: AppTask }[] {
  return ofKind("Deployment").flatMap(({ doc }) =>
    (doc.spec.template.spec.containers as Doc[]).flatMap((container) => {
      const task = denoTasks([...container.command ?? [], ...container.args ?? []])[0];
      return APP_TASKS.includes(task as AppTask)
        ? [{ deployment: doc, container, task: task as AppTask }]
        : [];
    })
  );
}

/** A Secret template's placeholder replaced by a value of the right shape. */
export function secretSample(key: string): string {
  if (key === "DATABASE_URL") return "postgres://imaging:sample@postgres:5432/imaging";
  if (key === "REDIS_URL") return "redis://default:sample@redis:6379";
  return SAMPLE;
}

/** A container's environment from its ConfigMaps, Secrets and `env`. */
export function k8sEnv(container: Doc): Record<string, string> {
  const find = (kind: string, name: string) => {
    const found = ofKind(kind).find((d) => d.doc.metadata.name === name);
    assert.ok(
      found,
      `${kind} ${name}, referenced by container ${container.name}, is not in deploy/k8s`,
    );
    return found.doc;
  };
  const data = (kind: string, name: string): Record<string, string> => {
    const doc = find(kind, name);
    if (kind === "ConfigMap") return doc.data ?? {};
    return Object.fromEntries(Object.keys(doc.stringData ?? {}).map((k) => [k, secretSample(k)]));
  };
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, data("ConfigMap", from.configMapRef.name));
    if (from.secretRef) Object.assign(env, data("Secret", from.secretRef.name));
  }
  for (const e of container.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
    if (!ref) {
      env[e.name] = String(e.value ?? "");
      continue;
    }
    const kind = e.valueFrom.secretKeyRef ? "Secret" : "ConfigMap";
    const values = data(kind, ref.name);
    assert.ok(ref.key in values, `${kind} ${ref.name} has no key ${ref.key} (env ${e.name})`);
    env[e.name] = values[ref.key];
  }
  return env;
}

export function portOf(container: Doc, port: string | number): number {
  const found = (container.ports ?? []).find((p: Doc) =>
    p.name === port || p.containerPort === port
  );
  assert.ok(found, `container ${container.name} has no port ${port}`);
  return found.containerPort;
}

/** The port a config listens on for a task. */
export const listenPort = (config: Config, task: AppTask) =>
  task === "start" ? config.port : config.inference.sidecarPort;

/** `http://127.0.0.1:PORT/path` in a healthcheck command, or a quoted path after a PORT variable. */
export function healthTarget(command: string): { path: string; port?: number; portVar?: string } {
  const url = /https?:\/\/(?:127\.0\.0\.1|localhost)(?::(\d+))?(\/[^\s'"`)]*)/.exec(command);
  if (url) return { path: url[2], port: url[1] ? Number(url[1]) : 80 };
  const path = /['"`](\/[^'"`\s]*)['"`]/.exec(command);
  const portVar = /Deno\.env\.get\(\s*['"]([A-Z_]+)['"]\s*\)/.exec(command);
  assert.ok(path && portVar, `no URL in the healthcheck ${command}`);
  return { path: path[1], portVar: portVar[1] };
}

export interface Probe {
  where: string;
  task: AppTask;
  path: string;
}

/** Every HTTP probe and healthcheck of the app in deploy/. */
export function probes(): Probe[] {
  const found: Probe[] = [];
  for (const [name, service, task] of composeApps()) {
    const target = healthTarget(service.healthcheck.test.join(" "));
    assert.equal(
      target.port,
      listenPort(loadConfig(composeEnv(service)), task),
      `compose ${name}: the healthcheck's port is not the one it listens on`,
    );
    found.push({ where: `compose.yaml ${name} healthcheck`, task, path: target.path });
  }
  for (const { deployment, container, task } of k8sApps()) {
    const port = listenPort(loadConfig(k8sEnv(container)), task);
    for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const probe = container[kind];
      if (!probe) continue;
      const where = `k8s ${deployment.metadata.name} ${kind}`;
      const action = probe.httpGet ?? probe.tcpSocket;
      assert.ok(action, `${where}: httpGet or tcpSocket expected`);
      assert.equal(portOf(container, action.port), port, `${where}: not the port it listens on`);
      if (probe.httpGet) found.push({ where, task, path: probe.httpGet.path });
    }
  }
  for (const file of filesUnder("deploy/docker", /Dockerfile$/)) {
    const steps = dockerInstructions(readText(file));
    const task = denoTasks(words(steps.findLast((s) => s.op === "CMD")!.args))[0] as AppTask;
    const check = steps.find((s) => s.op === "HEALTHCHECK");
    if (!check) continue;
    const target = healthTarget(check.args);
    const expected = task === "start" ? "PORT" : "SIDECAR_PORT";
    assert.equal(target.portVar, expected, `${file}: the HEALTHCHECK should read ${expected}`);
    found.push({ where: `${file} HEALTHCHECK`, task, path: target.path });
  }
  for (const section of haproxySections(readText("deploy/haproxy/haproxy.cfg"))) {
    for (const line of section.lines) {
      const m = /^http-check\s+send\b.*\buri\s+(\S+)/.exec(line);
      if (m) {
        found.push({ where: `haproxy.cfg ${section.name} http-check`, task: "start", path: m[1] });
      }
    }
  }
  return found;
}

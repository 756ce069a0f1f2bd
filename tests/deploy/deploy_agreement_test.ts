/**
 * The deploy files agree with each other and with the code: each app container's environment
 * loads as a Config; the API, the sidecars and the load balancer share ports, origin and queue;
 * Kubernetes objects select the Deployments' pods and ports; shutdown grace periods fit.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../platform/config.ts";
import { type Doc, haproxySections, interpolate, readText } from "./_deploy_files.ts";
import {
  type AppTask,
  compose,
  composeApps,
  composeEnv,
  healthTarget,
  k8sApps,
  k8sEnv,
  ofKind,
  subset,
} from "./_deploy_model.ts";

type App = { task: AppTask; env: Record<string, string> };

/** The API's and the sidecar's Configs, checked to work together. */
function agree(where: string, apps: App[]) {
  const configs = apps.map((a) => ({ ...a, config: loadConfig(a.env) }));
  const api = configs.find((a) => a.task === "start")?.config;
  const sidecar = configs.find((a) => a.task === "sidecar")?.config;
  assert.ok(api && sidecar, `${where}: an API and a sidecar are expected`);
  assert.ok(api.databaseUrl && api.objectStore.s3Endpoint, `${where}: the API needs Postgres, S3`);
  assert.ok(api.inference.redisUrl, `${where}: the API needs REDIS_URL to reach the sidecars`);
  assert.notEqual(api.inference.inProcessWorker, "on", `${where}: no worker inside the API`);
  const host = (url: string) => url.replace(/\/\/[^@]*@/, "//");
  assert.equal(
    host(sidecar.inference.redisUrl),
    host(api.inference.redisUrl),
    `${where}: one Redis`,
  );
  assert.equal(sidecar.inference.redisKeyPrefix, api.inference.redisKeyPrefix, `${where}: prefix`);
  // The sidecar addresses its client assertion to <its API's origin>/auth/token; the API accepts
  // only its own token URL, made from PUBLIC_URL.
  assert.equal(
    new URL(sidecar.inference.apiUrl).origin,
    new URL(api.publicUrl).origin,
    `${where}: SIDECAR_API_URL must share PUBLIC_URL's origin`,
  );
  assert.ok(sidecar.inference.clientId && sidecar.inference.privateKey, `${where}: client key`);
  return { api, sidecar };
}

const seconds = (duration: string) =>
  [...duration.matchAll(/(\d+)(h|m|s)/g)]
    .reduce((n, [, v, unit]) => n + Number(v) * { h: 3600, m: 60, s: 1 }[unit as "s"], 0);

Deno.test("compose.yaml: the API's and the sidecar's environments load as Configs that agree with each other and with HAProxy", () => {
  const apps = composeApps();
  const { api, sidecar } = agree(
    "compose.yaml",
    apps.map(([, s, task]) => ({ task, env: composeEnv(s) })),
  );
  const service = (task: AppTask) => apps.find(([, , t]) => t === task)!;
  // HAProxy sends to the API's port, and listens at PUBLIC_URL's port and host (an alias).
  const lines = haproxySections(readText("deploy/haproxy/haproxy.cfg")).flatMap((s) => s.lines);
  const servers = lines.filter((l) => /^server(-template)?\s/.test(l));
  assert.ok(servers.length > 0, "haproxy.cfg has no server");
  const target = `${service("start")[0]}:${api.port}`;
  for (const line of servers) {
    assert.ok(line.includes(` ${target}`), `haproxy.cfg: ${line} is not ${target}`);
  }
  const publicUrl = new URL(api.publicUrl);
  const binds = lines.flatMap((l) => /^bind\s+\S*:(\d+)/.exec(l)?.[1] ?? []);
  const publicPort = publicUrl.port || (publicUrl.protocol === "https:" ? "443" : "80");
  assert.ok(binds.includes(publicPort), `haproxy.cfg binds no port ${publicPort} (${publicUrl})`);
  const lb = Object.entries(compose().services as Record<string, Doc>)
    .find(([, s]) => s.volumes?.some((v: string) => v.includes("haproxy.cfg")));
  assert.ok(lb, "no compose service runs haproxy.cfg");
  const aliases = (lb[1].networks?.default?.aliases ?? []).map((a: string) => interpolate(a).text);
  assert.ok(aliases.includes(publicUrl.hostname), `compose ${lb[0]}: alias ${publicUrl.hostname}`);
  const monitor = lines.find((l) => l.startsWith("monitor-uri"))?.split(/\s+/)[1];
  assert.equal(healthTarget(lb[1].healthcheck.test.join(" ")).path, monitor, "lb healthcheck");
  // The sidecar's private key is a compose secret; the API drains within stop_grace_period.
  const secret = /^@\/run\/secrets\/(.+)$/.exec(sidecar.inference.privateKey)?.[1];
  assert.ok(secret && service("sidecar")[1].secrets?.includes(secret), "the sidecar's key secret");
  assert.ok(
    seconds(service("start")[1].stop_grace_period ?? "10s") > api.shutdownGraceSeconds,
    "compose: the API's stop_grace_period must exceed SHUTDOWN_GRACE_SECONDS",
  );
});

Deno.test("k8s: the API's and the sidecar's environments load as Configs that agree; the key file is mounted; grace covers preStop and drain", () => {
  const pods = k8sApps();
  const { api, sidecar } = agree(
    "k8s",
    pods.map(({ container, task }) => ({ task, env: k8sEnv(container) })),
  );
  const pod = (task: AppTask) => pods.find((p) => p.task === task)!;
  const apiPod = pod("start").deployment.spec.template.spec;
  const preStop = pod("start").container.lifecycle?.preStop?.sleep?.seconds ?? 0;
  assert.ok(
    apiPod.terminationGracePeriodSeconds > preStop + api.shutdownGraceSeconds,
    "k8s: terminationGracePeriodSeconds must exceed preStop + SHUTDOWN_GRACE_SECONDS",
  );
  const keyFile = sidecar.inference.privateKey.replace(/^@/, "");
  const { container, deployment } = pod("sidecar");
  const mounted = (container.volumeMounts ?? []).some((m: Doc) => {
    const volume = deployment.spec.template.spec.volumes.find((v: Doc) => v.name === m.name);
    return (volume?.secret?.items ?? []).some((i: Doc) => `${m.mountPath}/${i.path}` === keyFile);
  });
  assert.ok(mounted, `k8s: SIDECAR_PRIVATE_KEY names ${keyFile}, which no Secret volume mounts`);
});

Deno.test("k8s: Services, the HPA, PDBs and the Ingress select the Deployments' pods and ports", () => {
  const deployments = ofKind("Deployment").map((d) => d.doc);
  const podsOf = (selector: Record<string, string>) =>
    deployments.filter((d) => subset(selector, d.spec.template.metadata.labels));
  for (const d of deployments) {
    assert.ok(
      subset(d.spec.selector.matchLabels, d.spec.template.metadata.labels),
      `Deployment ${d.metadata.name}: its selector misses its pods`,
    );
    assert.ok(d.spec.replicas >= 2, `Deployment ${d.metadata.name}: at least 2 replicas`);
    const pod = d.spec.template.spec;
    assert.equal(
      pod.securityContext?.runAsNonRoot,
      true,
      `Deployment ${d.metadata.name}: runAsNonRoot`,
    );
    for (const c of pod.containers) {
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: read-only root`);
      assert.equal(
        c.securityContext?.allowPrivilegeEscalation,
        false,
        `${c.name}: no privilege escalation`,
      );
      assert.ok(c.resources?.requests && c.resources?.limits, `${c.name}: resources`);
      assert.ok(
        c.livenessProbe && c.readinessProbe && c.startupProbe,
        `${c.name}: startup, liveness and readiness probes`,
      );
      for (const m of c.volumeMounts ?? []) {
        assert.ok(
          pod.volumes.some((v: Doc) => v.name === m.name),
          `${c.name}: volume ${m.name} is not defined`,
        );
      }
    }
  }
  for (const { doc: s } of ofKind("Service")) {
    const pods = podsOf(s.spec.selector);
    assert.ok(pods.length > 0, `Service ${s.metadata.name} selects no Deployment's pods`);
    for (const port of s.spec.ports) {
      for (const d of pods) {
        assert.ok(
          d.spec.template.spec.containers.some((c: Doc) =>
            (c.ports ?? []).some((p: Doc) =>
              p.name === port.targetPort || p.containerPort === port.targetPort
            )
          ),
          `Service ${s.metadata.name}: targetPort ${port.targetPort} is no port of ${d.metadata.name}`,
        );
      }
    }
  }
  for (const { doc: h } of ofKind("HorizontalPodAutoscaler")) {
    const target = deployments.find((d) => d.metadata.name === h.spec.scaleTargetRef.name);
    assert.ok(
      target && h.spec.scaleTargetRef.kind === "Deployment" &&
        h.spec.scaleTargetRef.apiVersion === "apps/v1",
      `HPA ${h.metadata.name}: no such Deployment`,
    );
    assert.ok(
      h.spec.minReplicas >= 2 && h.spec.maxReplicas >= h.spec.minReplicas,
      `HPA ${h.metadata.name}: replicas`,
    );
    assert.ok(
      h.spec.metrics.some((m: Doc) => m.resource?.name === "cpu"),
      `HPA ${h.metadata.name}: scale on CPU`,
    );
    assert.ok(
      target.spec.template.spec.containers.every((c: Doc) => c.resources?.requests?.cpu),
      "the HPA needs CPU requests",
    );
  }
  for (const { doc: p } of ofKind("PodDisruptionBudget")) {
    assert.ok(
      podsOf(p.spec.selector.matchLabels).length > 0,
      `PDB ${p.metadata.name} selects no pods`,
    );
  }
  for (const { doc: i } of ofKind("Ingress")) {
    for (const path of i.spec.rules.flatMap((r: Doc) => r.http.paths)) {
      const service = ofKind("Service").find((s) =>
        s.doc.metadata.name === path.backend.service.name
      )?.doc;
      assert.ok(service, `Ingress ${i.metadata.name}: no Service ${path.backend.service.name}`);
      const port = path.backend.service.port;
      assert.ok(
        service.spec.ports.some((p: Doc) => p.name === port.name || p.port === port.number),
        `Ingress ${i.metadata.name}: no such Service port`,
      );
    }
  }
  const kustomization = ofKind("Kustomization")[0].doc;
  const images = new Set((kustomization.images ?? []).map((i: Doc) => i.name));
  for (const { container } of k8sApps()) {
    assert.ok(
      images.has(container.image.split(":")[0]),
      `kustomization.yaml sets no image for ${container.image}`,
    );
  }
});

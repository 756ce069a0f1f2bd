# syntax=docker/dockerfile:1.7
# The API image (stateless; run as many replicas as you like). Build from the repository root:
#   docker build -f deploy/docker/api.Dockerfile -t imaging-ai/api:local .
# Stage 1 installs Deno from the npm registry (the project's CI does the same; .ci/versions pins
# it) and the dependencies pinned by deno.lock; stage 2 is a slim Debian holding only the Deno
# binary, the sources the API runs, node_modules and a read-only Deno cache. Base images are pinned
# by tag; pin them by digest as well (image@sha256:…) in your registry mirror.

ARG DENO_VERSION=2.9.6

FROM node:24.11.0-bookworm-slim AS build
ARG DENO_VERSION
ARG TARGETARCH
# The API never runs a model once REDIS_URL is set (the sidecars do), so it needs no CUDA
# provider: ONNXRUNTIME_NODE_INSTALL=skip keeps onnxruntime-node's install script from fetching
# it (Deno also runs no install script that --allow-scripts does not name). The CPU binaries ship
# inside the npm package.
ENV DENO_DIR=/opt/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    ONNXRUNTIME_NODE_INSTALL=skip
RUN npm install -g --no-audit --no-fund "deno@${DENO_VERSION}" \
 && install -D -m 0755 "$(npm root -g)/deno/deno" /opt/deno/bin/deno \
 && /opt/deno/bin/deno --version
ENV PATH=/opt/deno/bin:$PATH
WORKDIR /app
# Dependencies first (their layer is reused until deno.json or deno.lock change). The workspace
# member's deno.json must be there for the root deno.json to load.
COPY deno.json deno.lock ./
COPY static/deno.json static/deno.json
# postgres.js comes from this folder (the patched 3.4.10; deno.json maps "postgres" to it).
COPY vendor vendor
RUN deno install --frozen
# The API's sources: tests/deploy/deploy_test.ts checks they cover main.ts's module graph.
COPY main.ts app.ts services.ts ./
COPY routes routes
COPY analysis analysis
COPY fhir fhir
COPY dicom dicom
COPY db db
COPY queue queue
COPY sidecar sidecar
COPY auth auth
COPY audit audit
COPY ratelimit ratelimit
COPY observability observability
COPY platform platform
COPY static static
# The UI is bundled in memory on its first request (Deno.bundle, esbuild); bundling it once here
# fetches esbuild into the Deno cache, so the running container needs neither the network nor a
# writable cache, and a UI that does not build fails the image build instead of the first visit.
RUN deno bundle --node-modules-dir=manual --platform browser --output /tmp/ui-check.js \
      static/main.tsx \
 && rm /tmp/ui-check.js
# Smaller image: onnxruntime-node ships binaries for every platform (keep this one's), and the
# Deno cache needs only the registry metadata once node_modules holds the packages.
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in arm64) keep=arm64 ;; *) keep=x64 ;; esac; \
    for bin in node_modules/.deno/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v6; do \
      find "$bin" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +; \
      find "$bin/linux" -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} +; \
    done; \
    find "$DENO_DIR/npm" -mindepth 3 -maxdepth 4 -type d -exec test -f '{}/package.json' ';' \
      -prune -exec rm -rf '{}' +

FROM debian:12.11-slim
# ca-certificates: lets DENO_TLS_CA_STORE=system trust a hospital's own CA (Deno otherwise uses
# its bundled Mozilla roots).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
COPY --from=build /opt/deno/bin/deno /usr/local/bin/deno
COPY --from=build /opt/deno-dir /opt/deno-dir
COPY --from=build /app /app
# Everything above belongs to root and is read-only for the app: the container runs with a
# read-only root filesystem (only /tmp needs to be writable). With DATABASE_URL and S3_ENDPOINT
# set nothing else is written; the embedded defaults (PGLITE_DIR, OBJECT_DIR) need a volume.
ENV DENO_DIR=/opt/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Liveness of the process (PORT, default 8080). Compose and Kubernetes use their own checks:
# readiness at /health (the database answers), liveness at /health/live.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const p = Deno.env.get('PORT') || '8080'; const r = await fetch('http://127.0.0.1:' + p + '/health/live').catch(() => null); Deno.exit(r?.ok ? 0 : 1)"]
# `deno task start` (deno.json) keeps one definition of the permissions; deno task forwards
# SIGTERM to the server, which drains and closes its pools.
CMD ["deno", "task", "start"]

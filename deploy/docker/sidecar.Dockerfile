# syntax=docker/dockerfile:1.7
# The inference sidecar image (`deno task sidecar`): ONNX Runtime with its CUDA execution provider
# on NVIDIA's CUDA + cuDNN runtime. Build from the repository root, for linux/amd64 (the only
# platform onnxruntime-node publishes a CUDA provider for):
#   docker build --platform linux/amd64 -f deploy/docker/sidecar.Dockerfile \
#     -t imaging-ai/sidecar:local .
# Run it with a GPU (`--gpus all`, the compose file's device reservation, or `nvidia.com/gpu` in
# Kubernetes). Without one it falls back to the CPU provider (INFERENCE_PROVIDERS=cuda,cpu).

ARG DENO_VERSION=2.9.6

FROM node:24.11.0-bookworm-slim AS build
ARG DENO_VERSION
# NOT ONNXRUNTIME_NODE_INSTALL=skip here. The development machines and CI set `skip` because they
# reach only the npm registry; onnxruntime-node's install script fetches the CUDA 12 provider
# libraries (libonnxruntime_providers_cuda.so and friends, too large for npm) from NuGet, so this
# build must run on a machine with internet access. `cuda12` asks for them explicitly, so a
# failed download fails the build instead of producing an image that silently runs on the CPU.
ENV DENO_DIR=/opt/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    ONNXRUNTIME_NODE_INSTALL=cuda12
RUN npm install -g --no-audit --no-fund "deno@${DENO_VERSION}" \
 && install -D -m 0755 "$(npm root -g)/deno/deno" /opt/deno/bin/deno \
 && /opt/deno/bin/deno --version
ENV PATH=/opt/deno/bin:$PATH
WORKDIR /app
COPY deno.json deno.lock ./
COPY static/deno.json static/deno.json
# postgres.js comes from this folder (the patched 3.4.10; deno.json maps "postgres" to it).
COPY vendor vendor
# --allow-scripts runs onnxruntime-node's install script (Deno runs none by default), and only it.
RUN deno install --frozen --allow-scripts=npm:onnxruntime-node \
 && ls node_modules/.deno/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
# The sidecar's sources: tests/deploy/deploy_test.ts checks they cover sidecar/main.ts's module
# graph. The models ship in sidecar/models/<name>/ (MODELS_DIR).
COPY sidecar sidecar
COPY queue queue
COPY dicom/codec dicom/codec
COPY observability observability
COPY platform platform
RUN set -eu; \
    for bin in node_modules/.deno/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v6; do \
      find "$bin" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +; \
      find "$bin/linux" -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +; \
    done; \
    find "$DENO_DIR/npm" -mindepth 3 -maxdepth 4 -type d -exec test -f '{}/package.json' ';' \
      -prune -exec rm -rf '{}' +

# CUDA 12 + cuDNN 9: what the onnxruntime-node 1.30 CUDA provider links against.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
COPY --from=build /opt/deno/bin/deno /usr/local/bin/deno
COPY --from=build /opt/deno-dir /opt/deno-dir
COPY --from=build /app /app
# Read-only for the app (root-owned); only /tmp needs to be writable.
ENV DENO_DIR=/opt/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1
WORKDIR /app
USER 10001:10001
EXPOSE 8090
# GET /health on SIDECAR_PORT: 200 when the queue answers and a model is loaded, else 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const p = Deno.env.get('SIDECAR_PORT') || '8090'; const r = await fetch('http://127.0.0.1:' + p + '/health').catch(() => null); Deno.exit(r?.ok ? 0 : 1)"]
# NVIDIA's entrypoint only prints a banner; without it the logs stay JSON lines. deno task
# forwards SIGTERM: the current job finishes (or is handed back to the group), then it exits.
ENTRYPOINT []
CMD ["deno", "task", "sidecar"]

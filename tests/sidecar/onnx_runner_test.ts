/**
 * @module Tests of `sidecar/onnx_runner.ts` with the fixture model on the CPU, provider
 * fallback, and the model run over a whole synthetic volume (`predictVolume` → `segment`).
 */
import assert from "node:assert/strict";
import { predictVolume } from "../../sidecar/analysis.ts";
import type { Logger } from "../../platform/log.ts";
import { loadModel, resolveSettings } from "../../sidecar/manifest.ts";
import { createRunner, NoProviderError } from "../../sidecar/onnx_runner.ts";
import { segment } from "../../sidecar/postprocess.ts";
import { createVolumeBuilder } from "../../sidecar/volume.ts";
import { sphereStudy } from "./_study.ts";

const MODEL = new URL("./fixtures/models/threshold-demo", import.meta.url).pathname;

function recorder(): { log: Logger; lines: { level: string; msg: string; data?: unknown }[] } {
  const lines: { level: string; msg: string; data?: unknown }[] = [];
  return { lines, log: (level, msg, data) => lines.push({ level, msg, data }) };
}

Deno.test("createRunner() runs the fixture model on the CPU", async () => {
  const runner = await createRunner(`${MODEL}/model.onnx`, ["cpu"]);
  try {
    assert.equal(runner.provider, "cpu");
    assert.deepEqual(runner.inputNames, ["image"]);
    assert.deepEqual(runner.outputNames, ["probability"]);
    // Two samples of 3×2×2: the middle channel decides (0.9 → ~1, 0.1 → ~0).
    const input = new Float32Array(2 * 3 * 4);
    input.fill(0.9, 4, 8); // sample 0, channel 1
    input.fill(0.1, 16, 20); // sample 1, channel 1
    const out = await runner.run(input, [2, 3, 2, 2]);
    assert.deepEqual(out.dims, [2, 1, 2, 2]);
    assert.ok(out.data.slice(0, 4).every((v) => v > 0.999));
    assert.ok(out.data.slice(4).every((v) => v < 1e-6));
  } finally {
    await runner.close();
  }
});

Deno.test("createRunner(): one info line names the provider chosen and why the others were not", async () => {
  const { log, lines } = recorder();
  const runner = await createRunner(`${MODEL}/model.onnx`, ["cuda", "webgpu", "cpu"], {
    log,
    model: "threshold-demo",
  });
  try {
    if (runner.provider !== "cpu") return; // a machine with a GPU provider installed
    const chosen = lines.filter((l) => l.level === "info");
    assert.equal(chosen.length, 1, JSON.stringify(lines));
    assert.equal(chosen[0].msg, "inference on cpu");
    assert.match(String((chosen[0].data as { skipped: string }).skipped), /^cuda: .*; webgpu: /);
    // Nothing louder than info: a machine without a GPU is normal.
    assert.deepEqual(lines.filter((l) => l.level === "warn" || l.level === "error"), []);
    const cuda = lines.find((l) => l.msg.includes("cuda"));
    assert.equal(cuda?.level, "debug");
    assert.deepEqual((cuda?.data as { next: string }).next, "webgpu");
    // A second model's session with the same outcome: said once per process, then at debug.
    const again = recorder();
    const second = await createRunner(`${MODEL}/model.onnx`, ["cuda", "webgpu", "cpu"], {
      log: again.log,
      model: "another",
    });
    await second.close();
    assert.deepEqual(again.lines.filter((l) => l.level !== "debug"), []);
  } finally {
    await runner.close();
  }
  await assert.rejects(
    () => createRunner(`${MODEL}/model.onnx`, ["quantum"]),
    (e: unknown) => e instanceof NoProviderError && /quantum: unknown/.test(e.message),
  );
});

Deno.test("createRunner(): a provider that fails to start is passed over at debug level", async () => {
  const { log, lines } = recorder();
  // Claim the CUDA library is there, so ONNX Runtime really tries (and fails) to load it.
  const runner = await createRunner(`${MODEL}/model.onnx`, ["cuda", "cpu"], {
    log,
    model: "threshold-demo",
    missing: () => undefined,
  });
  try {
    if (runner.provider === "cuda") return;
    assert.equal(runner.provider, "cpu");
    const failed = lines.find((l) => l.msg === "execution provider cuda not used");
    assert.ok(failed, JSON.stringify(lines));
    assert.equal(failed.level, "debug");
    assert.ok((failed.data as { error: string }).error.length > 0);
  } finally {
    await runner.close();
  }
});

Deno.test("predictVolume() + segment() find the spheres of a synthetic series", async () => {
  const { manifest } = await loadModel(MODEL);
  const runner = await createRunner(`${MODEL}/model.onnx`, ["cpu"]);
  try {
    // 40×40 images: resized to the model's 32×32 and back.
    const study = sphereStudy({
      seed: 5,
      rows: 40,
      cols: 40,
      slices: 10,
      pixelSpacing: 1,
      sliceSpacing: 2.5,
      spheres: [{ i: 10, j: 12, k: 3, radiusMm: 4 }, { i: 28, j: 26, k: 6, radiusMm: 6 }],
    });
    const builder = createVolumeBuilder();
    study.instances.forEach((b) => builder.add(b));
    const volume = builder.finish();
    const model = { manifest, runner };
    for (const profile of ["standard", "research", "fast"] as const) {
      const settings = { ...resolveSettings(manifest, profile, 0.5), minComponentVoxels: 3 };
      const probability = await predictVolume(volume, model, settings);
      const seg = segment(probability, volume, settings);
      assert.equal(seg.findings.length, 2, profile);
      const byCentre = [...seg.findings].sort((a, b) => a.centreVoxel[0] - b.centreVoxel[0]);
      const [small, large] = byCentre;
      assert.ok(
        Math.abs(small.centreVoxel[0] - 10) < 0.6 && Math.abs(small.centreVoxel[2] - 3) < 0.6,
      );
      assert.ok(
        Math.abs(large.centreVoxel[1] - 26) < 0.6 && Math.abs(large.centreVoxel[2] - 6) < 0.6,
      );
      // Volumes near the voxelised spheres' (2.5 mm³ voxels), despite the 40→32→40 resampling.
      const [vSmall, vLarge] = study.voxels.map((n) => n * 2.5);
      assert.ok(
        Math.abs(small.volumeMm3 - vSmall) / vSmall < 0.35,
        `${profile} ${small.volumeMm3} ${vSmall}`,
      );
      assert.ok(
        Math.abs(large.volumeMm3 - vLarge) / vLarge < 0.25,
        `${profile} ${large.volumeMm3} ${vLarge}`,
      );
      assert.ok(
        large.longestDiameterMm > 10 && large.longestDiameterMm < 15,
        String(large.longestDiameterMm),
      );
      assert.ok(large.maxProbability > 0.99);
    }
  } finally {
    await runner.close();
  }
});

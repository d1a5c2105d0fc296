/**
 * A 52-layer job (the protocol's and the model's maximum) through the bridge with the real tiny
 * pipeline: every layer arrives, index 51 included, as a PNG of its box with the pixels the
 * pipeline computes for the same job in this process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LAYERS } from '../../domain/layout.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { TestClient, collectJob, decodePng, startTestBridge } from '../support/bridge.ts';
import { fiftyTwoLayers } from '../pipeline/reference-generation.ts';

test('52 layers through the real bridge: layers 0..51 delivered, each its box, the same pixels as the pipeline', async () => {
  const tb = await startTestBridge({ real: true });
  // The tiny model generates at 512 (info.resolutions): a 512x32 canvas keeps it small.
  const layout = fiftyTwoLayers(512, 32);
  const params = { resolution: 512, steps: 1, guidance: 3, trueCfg: 4, seed: 52 };
  const prompt = 'fifty small stickers on a board';
  try {
    const client = await TestClient.paired(tb.url);
    client.send({ type: 'generate', requestId: 'fifty-two', prompt, layout, params });
    const queued = (await client.next((m) => m.type === 'queued' || m.type === 'error', 60_000)) as { jobId: string };
    assert.ok(queued.jobId, JSON.stringify(queued));
    const { done, messages } = await collectJob(client, queued.jobId, 120_000);
    assert.ok(done.type === 'done' && done.layerCount === MAX_LAYERS, JSON.stringify(done));
    const frames = messages.flatMap((m) => (m.type === 'binary' && m.frame.kind === 'layer' ? [m.frame] : []));
    assert.deepEqual(frames.map((f) => f.layerIndex), Array.from({ length: MAX_LAYERS }, (_, i) => i));

    // The same job in this process (the bridge's tiny model is the default folder, made the same way).
    const pipeline = await createPipeline({ provider: 'cpu' });
    try {
      const direct = await pipeline.generate({ prompt, layout, steps: params.steps, guidance: params.guidance, trueCfg: params.trueCfg, seed: params.seed });
      for (const f of frames) {
        const png = decodePng(f.png);
        const l = direct.layers[f.layerIndex];
        assert.deepEqual([png.width, png.height], [l.width, l.height], `layer ${f.layerIndex}`);
        assert.ok(Buffer.from(l.rgba).equals(png.data), `layer ${f.layerIndex}: the bridge's pixels differ from the pipeline's`);
      }
    } finally {
      await pipeline.dispose();
    }
    client.close();
  } finally {
    await tb.close();
  }
});

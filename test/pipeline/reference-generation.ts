/**
 * A generation composed in the test, independently of `createPipeline`, `Denoiser`,
 * `TextEncoder`, `transformerPredictor`, `denoise` and `decode.ts`: raw onnxruntime sessions on a
 * model folder's graphs, driven with the official semantics written out here
 * (`CustomFluxPipelineCfg.__call__` as `test/fixtures/golden/README.md` documents it):
 *
 * - text: the prompt and the EMPTY negative prompt, each through both tokenizers and encoders
 *   (CLIP's pooled vector, T5's last hidden state);
 * - noise: `tokenNoise(seed)` (its values are pinned in noise.test.ts);
 * - schedule: `fluxSchedule` with the manifest's scheduler (checked against the official
 *   schedules by the golden scheduler case);
 * - each step: one transformer run of batch 2 `[positive; negative]`, the guidance embedding
 *   as given, `t / 1000`; `neg + s * (pos - neg)`; Euler `x + (sigma' - sigma) * v`;
 * - decode: the grey latent `(mean(E(0)) - shift) * scale` outside each box, everything
 *   unscaled `x / scale + shift` with the manifest's VAE factors, the transparent decoder for
 *   every layer's RGBA, the VAE for merged and background (`clamp(x/2 + 1/2)`, rounded).
 *
 * Shared with the product are only pieces with their own golden or unit checks: token grids,
 * packing, RoPE tables, the schedule, the noise, the tokenizers, and patch -> RGBA.
 */
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { BACKGROUND_LAYER, type BoxTuple, type Layout, MAX_LAYERS, MERGED_LAYER } from '../../domain/layout.ts';
import { LATENT_CHANNELS, PACKED_CHANNELS } from '../../gpu-server/constants.ts';
import { loadManifest, type Manifest } from '../../gpu-server/model-folder/manifest.ts';
import { patchesToLayerImages } from '../../gpu-server/models/transparent-decoder.ts';
import { latentTokens, transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { tokenNoise } from '../../gpu-server/pipeline/noise.ts';
import { gatherCells, scatterTokens } from '../../gpu-server/pipeline/packing.ts';
import { ropeTables } from '../../gpu-server/pipeline/rope.ts';
import { fluxSchedule } from '../../gpu-server/pipeline/scheduler.ts';
import type { GenerateParams, LayerImage } from '../../gpu-server/pipeline/types.ts';
import { loadClipTokenizer } from '../../gpu-server/text/clip-tokenizer.ts';
import { loadT5Tokenizer } from '../../gpu-server/text/t5-tokenizer.ts';

export interface ReferenceResult {
  layers: LayerImage[];
  /** Interleaved 8-bit RGB of the canvas. */
  merged: Uint8Array;
  background: Uint8Array;
  /** Denoised in-box tokens `[N, 64]`, before decoding. */
  tokens: Float32Array;
}

/** What a variant of the reference may change, to show a test can see each difference. */
export interface ReferenceOverrides {
  negativePrompt?: string;
  vae?: { scalingFactor: number; shiftFactor: number };
}

const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);

export class ReferenceGenerator {
  private constructor(
    readonly manifest: Manifest,
    private readonly dir: string,
    private readonly s: Record<'transformer' | 'vae_encoder' | 'vae_decoder' | 'transparent_decoder' | 'clip_text' | 't5_encoder', ort.InferenceSession>,
  ) {}

  static async open(dir: string): Promise<ReferenceGenerator> {
    const manifest = loadManifest(dir);
    if (manifest.precision !== 'fp32') throw new Error('the reference feeds float32 tensors: use an fp32 folder');
    const open = (name: keyof Manifest['graphs']) => ort.InferenceSession.create(join(dir, manifest.graphs[name].file), { executionProviders: ['cpu'] });
    const s = {
      transformer: await open('transformer'),
      vae_encoder: await open('vae_encoder'),
      vae_decoder: await open('vae_decoder'),
      transparent_decoder: await open('transparent_decoder'),
      clip_text: await open('clip_text'),
      t5_encoder: await open('t5_encoder'),
    };
    return new ReferenceGenerator(manifest, dir, s);
  }

  async release(): Promise<void> {
    for (const s of Object.values(this.s)) await s.release();
  }

  private async encode(prompt: string): Promise<{ hidden: Float32Array; dims: number[]; pooled: Float32Array }> {
    const m = this.manifest;
    const clipIds = loadClipTokenizer(join(this.dir, m.tokenizers.clip), m.text.clipTokens).encode(prompt).ids;
    const t5Ids = loadT5Tokenizer(join(this.dir, m.tokenizers.t5), m.text.t5Tokens).encode(prompt).ids;
    const clip = await this.s.clip_text.run({ input_ids: new ort.Tensor('int64', clipIds, [1, clipIds.length]) });
    const t5 = await this.s.t5_encoder.run({ input_ids: new ort.Tensor('int64', t5Ids, [1, t5Ids.length]) });
    return { hidden: t5.last_hidden_state.data as Float32Array, dims: [...t5.last_hidden_state.dims], pooled: clip.pooled.data as Float32Array };
  }

  async generate(p: GenerateParams, over: ReferenceOverrides = {}): Promise<ReferenceResult> {
    const m = this.manifest;
    const { layout } = p;
    const grid = transformerTokens(layout);
    const n = grid.count;
    const pos = await this.encode(p.prompt);
    const neg = await this.encode(over.negativePrompt ?? '');
    const [, T, D] = pos.dims;
    const cat = (a: Float32Array, b: Float32Array) => {
      const o = new Float32Array(a.length + b.length);
      o.set(a);
      o.set(b, a.length);
      return o;
    };
    const rope = ropeTables(grid.ids, m.transformer.axesDimsRope, T, m.transformer.ropeTheta);
    const fixed: Record<string, ort.Tensor> = {
      encoder_hidden_states: f32(cat(pos.hidden, neg.hidden), [2, T, D]),
      pooled_projections: f32(cat(pos.pooled, neg.pooled), [2, pos.pooled.length]),
      token_layer: new ort.Tensor('int64', BigInt64Array.from(grid.layerOf, (v) => BigInt(v)), [n]),
      rope_cos: f32(rope.cos, [rope.rows, rope.dim]),
      rope_sin: f32(rope.sin, [rope.rows, rope.dim]),
      guidance: f32(new Float32Array([p.guidance, p.guidance]), [2]),
    };
    const schedule = fluxSchedule(p.steps, n, m.scheduler);
    const s = Math.fround(p.trueCfg);
    let x = tokenNoise(p.seed, grid);
    for (let i = 0; i < p.steps; i++) {
      const t = Math.fround(schedule.timesteps[i] / 1000);
      const out = await this.s.transformer.run({
        ...fixed,
        hidden_states: f32(cat(x, x), [2, n, PACKED_CHANNELS]),
        timestep: f32(new Float32Array([t, t]), [2]),
      });
      const v = out.noise_pred.data as Float32Array;
      const size = n * PACKED_CHANNELS;
      const dt = Math.fround(schedule.sigmas[i + 1] - schedule.sigmas[i]);
      const next = new Float32Array(size);
      for (let k = 0; k < size; k++) {
        const c = v[k], u = v[size + k];
        const guided = Math.fround(u + Math.fround(s * Math.fround(c - u)));
        next[k] = x[k] + Math.fround(dt * guided);
      }
      x = next;
    }

    // Decode.
    const vae = over.vae ?? m.vae;
    const scale = Math.fround(vae.scalingFactor), shift = Math.fround(vae.shiftFactor);
    const { width, height } = layout;
    const h = height / 8, w = width / 8, per = LATENT_CHANNELS * h * w;
    const mean = (await this.s.vae_encoder.run({ image: f32(new Float32Array(3 * width * height), [1, 3, height, width]) })).mean.data as Float32Array;
    const full = new Float32Array(layout.boxes.length * per);
    for (let l = 0; l < layout.boxes.length; l++) for (let k = 0; k < per; k++) full[l * per + k] = Math.fround(mean[k] - shift) * scale;
    scatterTokens(x, grid, full);
    for (let k = 0; k < full.length; k++) full[k] = Math.fround(full[k] / scale) + shift;

    const cells = latentTokens(layout);
    const td = m.transparentDecoder;
    const tdRope = ropeTables(cells.ids, td.axesDimsRope, 0, td.ropeTheta);
    const patches = (
      await this.s.transparent_decoder.run({
        tokens: f32(gatherCells(full, cells), [1, cells.count, LATENT_CHANNELS]),
        rope_cos: f32(tdRope.cos, [tdRope.rows, tdRope.dim]),
        rope_sin: f32(tdRope.sin, [tdRope.rows, tdRope.dim]),
      })
    ).patches.data as Float32Array;

    const pick = new Float32Array(2 * per);
    pick.set(full.subarray(MERGED_LAYER * per, (MERGED_LAYER + 1) * per), 0);
    pick.set(full.subarray(BACKGROUND_LAYER * per, (BACKGROUND_LAYER + 1) * per), per);
    const images = (await this.s.vae_decoder.run({ latents: f32(pick, [2, LATENT_CHANNELS, h, w]) })).image.data as Float32Array;
    const px = width * height;
    const rgb = (i: number) => {
      const o = new Uint8Array(px * 3);
      for (let q = 0; q < px; q++) {
        for (let c = 0; c < 3; c++) {
          const unit = Math.min(1, Math.max(0, Math.fround(Math.fround(images[i * 3 * px + c * px + q] * 0.5) + 0.5)));
          o[q * 3 + c] = Math.round(unit * 255);
        }
      }
      return o;
    };
    return { layers: patchesToLayerImages(patches, layout), merged: rgb(0), background: rgb(1), tokens: x };
  }
}

/**
 * The largest job: merged, background, then 50 children of one 16-pixel cell each, row by row
 * (128x128 by default; 512x32 is the tiny model's 512 resolution with as few pixels).
 */
export function fiftyTwoLayers(width = 128, height = 128): Layout {
  const cols = width / 16;
  const children = Array.from({ length: MAX_LAYERS - 2 }, (_, i): BoxTuple => {
    const x = (i % cols) * 16, y = Math.floor(i / cols) * 16;
    return [x, y, x + 16, y + 16];
  });
  return { width, height, boxes: [[0, 0, width, height], [0, 0, width, height], ...children] };
}

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
import { loadManifest, type AnyGraphName, type Manifest } from '../../gpu-server/model-folder/manifest.ts';
import { patchesToLayerImages } from '../../gpu-server/models/transparent-decoder.ts';
import { latentTokens, transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { tokenNoise } from '../../gpu-server/pipeline/noise.ts';
import { gatherCells, scatterTokens } from '../../gpu-server/pipeline/packing.ts';
import { ropeTables } from '../../gpu-server/pipeline/rope.ts';
import { fluxSchedule } from '../../gpu-server/pipeline/scheduler.ts';
import type { DecomposeParams, GenerateParams, LayerImage, SourceImage } from '../../gpu-server/pipeline/types.ts';
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
    /** CLD's adapter, when the folder decomposes (its transformer is the folder's one transformer). */
    private readonly cld?: { adapter: ort.InferenceSession },
  ) {}

  static async open(dir: string): Promise<ReferenceGenerator> {
    const manifest = loadManifest(dir);
    if (manifest.precision !== 'fp32') throw new Error('the reference feeds float32 tensors: use an fp32 folder');
    const open = (name: AnyGraphName) => {
      const entry = manifest.graphs[name];
      if (!entry) throw new Error(`${dir} has no ${name} graph`);
      return ort.InferenceSession.create(join(dir, entry.file), { executionProviders: ['cpu'] });
    };
    const s = {
      transformer: await open('transformer'),
      vae_encoder: await open('vae_encoder'),
      vae_decoder: await open('vae_decoder'),
      transparent_decoder: await open('transparent_decoder'),
      clip_text: await open('clip_text'),
      t5_encoder: await open('t5_encoder'),
    };
    const cld = manifest.graphs.adapter ? { adapter: await open('adapter') } : undefined;
    return new ReferenceGenerator(manifest, dir, s, cld);
  }

  async release(): Promise<void> {
    for (const s of [...Object.values(this.s), ...Object.values(this.cld ?? {})]) await s.release();
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
    return this.run(p, over);
  }

  /**
   * A decomposition (CLD's `CustomFluxPipelineCfgLayer.__call__`, README "cld_pipeline"): the image
   * over white, `2 v/255 - 1`, the VAE mean scaled `(z - shift) * scale` plus a channel of ones,
   * packed 2x2 (`c*4 + dy*2 + dx` over 17 channels), each token given its cell's row; per step the
   * adapter once (batch 1, the positive prompt) and the decomposition transformer (batch 2) with
   * every adapter output; the VAE decodes the background only, and the merged image is the
   * background with layers 2.. drawn over it ("over", rounded once).
   */
  async decompose(p: DecomposeParams, over: ReferenceOverrides = {}): Promise<ReferenceResult> {
    if (!this.cld) throw new Error('this folder has no adapter');
    const m = this.manifest;
    const { width, height } = p.layout;
    const h = height / 8, w = width / 8;
    const vae = over.vae ?? m.vae;
    const mean = (await this.s.vae_encoder.run({ image: f32(vaeInput(p.image), [1, 3, height, width]) })).mean.data as Float32Array;
    const scale = Math.fround(vae.scalingFactor), shift = Math.fround(vae.shiftFactor);
    const cols = w / 2;
    const packed = new Float32Array((h / 2) * cols * 68);
    for (let cy = 0; cy < h / 2; cy++) {
      for (let cx = 0; cx < cols; cx++) {
        for (let c = 0; c < 17; c++) {
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) {
              const v = c < 16 ? Math.fround(mean[(c * h + 2 * cy + dy) * w + 2 * cx + dx] - shift) * scale : 1;
              packed[(cy * cols + cx) * 68 + c * 4 + dy * 2 + dx] = v;
            }
          }
        }
      }
    }
    const grid = transformerTokens(p.layout);
    const condition = new Float32Array(grid.count * 68);
    for (let t = 0; t < grid.count; t++) {
      const cell = grid.ids[t * 3 + 1] * cols + grid.ids[t * 3 + 2];
      condition.set(packed.subarray(cell * 68, (cell + 1) * 68), t * 68);
    }
    const adapter = this.cld.adapter;
    return this.run(p, over, {
      residuals: async (fixed, x, t) => {
        const n = grid.count;
        const out = await adapter.run({
          hidden_states: f32(x, [1, n, PACKED_CHANNELS]),
          timestep: f32(new Float32Array([t]), [1]),
          guidance: f32(new Float32Array([p.guidance]), [1]),
          encoder_hidden_states: new ort.Tensor('float32', (fixed.encoder_hidden_states.data as Float32Array).subarray(0, fixed.encoder_hidden_states.dims[1] * fixed.encoder_hidden_states.dims[2]), [1, fixed.encoder_hidden_states.dims[1], fixed.encoder_hidden_states.dims[2]]),
          pooled_projections: new ort.Tensor('float32', (fixed.pooled_projections.data as Float32Array).subarray(0, fixed.pooled_projections.dims[1]), [1, fixed.pooled_projections.dims[1]]),
          token_layer: fixed.token_layer,
          rope_cos: fixed.rope_cos,
          rope_sin: fixed.rope_sin,
          condition: f32(condition, [1, n, 68]),
          conditioning_scale: f32(new Float32Array([p.conditioningScale]), [1]),
        });
        return { ...out, ...this.jobFeed(1) };
      },
    });
  }

  /**
   * A transformer that takes an adapter's residuals (a folder that decomposes) gets zeros of the
   * whole sequence for a generation, and `job` 0 where it has that input.
   */
  private zeroResiduals(n: number): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const m of this.s.transformer.inputMetadata) {
      if (!m.isTensor) continue;
      if (/^adapter_(single_)?block_sample_\d+$/.test(m.name)) {
        const width = Number(m.shape[m.shape.length - 1]);
        feeds[m.name] = f32(new Float32Array(n * width), [1, n, width]);
      }
    }
    return { ...feeds, ...this.jobFeed(0) };
  }

  private jobFeed(job: number): Record<string, ort.Tensor> {
    return this.s.transformer.inputNames.includes('job') ? { job: new ort.Tensor('int64', BigInt64Array.of(BigInt(job)), [1]) } : {};
  }

  private async run(
    p: GenerateParams | DecomposeParams,
    over: ReferenceOverrides,
    cld?: { residuals: (fixed: Record<string, ort.Tensor>, x: Float32Array, t: number) => Promise<Record<string, ort.Tensor>> },
  ): Promise<ReferenceResult> {
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
        ...(cld ? await cld.residuals(fixed, x, t) : this.zeroResiduals(n)),
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

    // A decomposition decodes only the background with the VAE.
    const shown = cld ? [BACKGROUND_LAYER] : [MERGED_LAYER, BACKGROUND_LAYER];
    const pick = new Float32Array(shown.length * per);
    shown.forEach((l, i) => pick.set(full.subarray(l * per, (l + 1) * per), i * per));
    const images = (await this.s.vae_decoder.run({ latents: f32(pick, [shown.length, LATENT_CHANNELS, h, w]) })).image.data as Float32Array;
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
    const layers = patchesToLayerImages(patches, layout);
    if (!cld) return { layers, merged: rgb(0), background: rgb(1), tokens: x };
    const background = rgb(0);
    const merged = Float64Array.from(background);
    for (const layer of layers.slice(2)) {
      for (let y = 0; y < layer.height; y++) {
        for (let x0 = 0; x0 < layer.width; x0++) {
          const s = (y * layer.width + x0) * 4, a = layer.rgba[s + 3] / 255;
          const d = ((layer.box[1] + y) * width + layer.box[0] + x0) * 3;
          for (let c = 0; c < 3; c++) merged[d + c] = layer.rgba[s + c] * a + merged[d + c] * (1 - a);
        }
      }
    }
    return { layers, merged: Uint8Array.from(merged, Math.round), background, tokens: x };
  }
}

/** `[3, H, W]` in [-1, 1] from 8-bit pixels, RGBA drawn over white first and rounded to a level. */
function vaeInput(image: SourceImage): Float32Array {
  const px = image.width * image.height;
  const out = new Float32Array(3 * px);
  for (let q = 0; q < px; q++) {
    const a = image.channels === 4 ? image.pixels[q * 4 + 3] : 255;
    for (let c = 0; c < 3; c++) {
      const v = image.pixels[q * image.channels + c];
      const level = Math.round((v * a + 255 * (255 - a)) / 255);
      out[c * px + q] = Math.fround(Math.fround(level / 255) * 2 - 1);
    }
  }
  return out;
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

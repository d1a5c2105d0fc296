/**
 * LoRA files fused into the transformer's weights at conversion: for every Linear a file names,
 * `W' = W + s * (B @ A)` in float32 (before the precision cast), the files applied in order.
 * Key names and the meaning of `s` are diffusers' (its Flux LoRA loader + `fuse_lora`), except
 * where diffusers is known to be wrong; there the format's own definition is followed:
 *
 * - diffusers/peft (`transformer.<module>.lora_A.weight` = A `[r, in]`, `.lora_B.weight` = B
 *   `[out, r]`): `s = lora_scale * alpha / r` with `alpha = r` (files saved by
 *   `save_lora_weights` carry no alpha), or the module's own `transformer.<module>.alpha` tensor
 *   when the file has one (as `load_lora_weights` uses it). diffusers takes one `lora_alpha` for a
 *   whole file (the rank of the first key) and so scales modules of other ranks by
 *   `r_first / r_module`: here every module uses its own rank (per-module `alpha / r`).
 *   Keys without the `transformer.` prefix are read as transformer modules too (diffusers keeps
 *   only the `transformer_blocks.*` ones and silently drops the rest).
 * - kohya sd-scripts FLUX (`lora_unet_<block>_<name>.lora_down.weight` = A, `.lora_up.weight` = B,
 *   `.alpha`): BFL module names mapped to diffusers' (table below), `s = lora_scale * alpha / r`
 *   per module with `r = lora_down.shape[0]`, computed in float32 (diffusers multiplies the
 *   weights by `alpha / r` in the file's dtype, rounding bf16 files). A fused q/k/v (`qkv`) or a
 *   single block's `linear1` (q, k, v, mlp) shares one down-projection; its up-projection's rows
 *   are split by the model's own sizes, `[D, D, D]` or `[D, D, D, mlp]` (never split into rank/3
 *   pieces, as diffusers does when the up-projection happens to be block-diagonal).
 *   `final_layer_adaLN_modulation_1` swaps its (shift, scale) row halves into diffusers'
 *   (scale, shift) order for `norm_out.linear`.
 *
 * Anything else (LoKr, LoHa, DoRA, a LoRA for another base such as SDXL, text-encoder LoRAs) is
 * refused, naming the format and a few keys.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { JobKind } from '../../domain/job-kind.ts';
import type { WeightSource } from '../onnx/graph.ts';
import { Checkpoint, readHeader } from '../onnx/safetensors.ts';
import { ModelFolderError, sha256File } from './manifest.ts';

export type LoraFormat = 'diffusers_peft' | 'kohya_flux';

/** One `--lora` argument: the file and its `lora_scale`. */
export interface LoraSpec {
  file: string;
  scale: number;
}

/** One Linear's update: `W += scale * (B @ A)`. */
export interface LoraUpdate {
  /** The weight key it changes (`transformer_blocks.0.attn.to_q.weight`). */
  target: string;
  rank: number;
  inFeatures: number;
  /** A `[rank, in]`, row-major. */
  down: Float32Array;
  /** B `[rows, rank]`, row-major (for a fused kohya module, this target's rows of it). */
  up: Float32Array;
  rows: number;
  /** `lora_scale * alpha / rank`, a float32. */
  scale: number;
}

/** What the manifest records per LoRA file. */
export interface FusedLora {
  order: number;
  file: string;
  sha256: string;
  scale: number;
  format: LoraFormat;
  /** Weight keys it changed. */
  modules: number;
  /** The graph it changes. */
  into: 'transformer' | 'adapter';
  /** The jobs it applies to, when not all of the folder's (kept beside the weights, switched per job). */
  jobs?: JobKind[];
}

export interface LoadedLora {
  spec: LoraSpec;
  format: LoraFormat;
  sha256: string;
  updates: LoraUpdate[];
}

/** `file[:scale]` as typed on the command line; a scale must be a finite number. */
export function parseLoraArg(arg: string): LoraSpec {
  const colon = arg.lastIndexOf(':');
  const tail = colon > 0 ? arg.slice(colon + 1) : '';
  // A colon followed by a path separator is part of the path (C:\...), not a scale.
  if (colon <= 0 || tail.includes('/') || tail.includes('\\')) return { file: loraFileIn(arg), scale: 1 };
  const scale = Number(tail);
  if (tail.trim() === '' || !Number.isFinite(scale)) {
    throw new ModelFolderError(`--lora ${arg}: the scale "${tail}" is not a finite number; write --lora <file>:<scale>, e.g. --lora style.safetensors:0.8`);
  }
  return { file: loraFileIn(arg.slice(0, colon)), scale };
}

/** The file diffusers' `save_lora_weights` writes into a folder (thuteam/CLD ships folders of one). */
export const DIFFUSERS_LORA_FILE = 'pytorch_lora_weights.safetensors';

/** A LoRA given as its file, or as the folder holding `pytorch_lora_weights.safetensors`. */
export function loraFileIn(path: string): string {
  if (!existsSync(path) || !statSync(path).isDirectory()) return path;
  const file = join(path, DIFFUSERS_LORA_FILE);
  if (!existsSync(file)) throw new ModelFolderError(`${path} is a folder without ${DIFFUSERS_LORA_FILE}; give the LoRA file itself`);
  return file;
}

/** kohya (BFL) module names within a block -> diffusers modules, with their row split. */
type Split = 'whole' | 'qkv' | 'linear1' | 'swapHalves';
const DOUBLE_BLOCK: Record<string, { modules: string[]; split: Split }> = {
  img_attn_qkv: { modules: ['attn.to_q', 'attn.to_k', 'attn.to_v'], split: 'qkv' },
  img_attn_proj: { modules: ['attn.to_out.0'], split: 'whole' },
  img_mlp_0: { modules: ['ff.net.0.proj'], split: 'whole' },
  img_mlp_2: { modules: ['ff.net.2'], split: 'whole' },
  img_mod_lin: { modules: ['norm1.linear'], split: 'whole' },
  txt_attn_qkv: { modules: ['attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj'], split: 'qkv' },
  txt_attn_proj: { modules: ['attn.to_add_out'], split: 'whole' },
  txt_mlp_0: { modules: ['ff_context.net.0.proj'], split: 'whole' },
  txt_mlp_2: { modules: ['ff_context.net.2'], split: 'whole' },
  txt_mod_lin: { modules: ['norm1_context.linear'], split: 'whole' },
};
const SINGLE_BLOCK: Record<string, { modules: string[]; split: Split }> = {
  linear1: { modules: ['attn.to_q', 'attn.to_k', 'attn.to_v', 'proj_mlp'], split: 'linear1' },
  linear2: { modules: ['proj_out'], split: 'whole' },
  modulation_lin: { modules: ['norm.linear'], split: 'whole' },
};
const TOP_LEVEL: Record<string, { modules: string[]; split: Split }> = {
  img_in: { modules: ['x_embedder'], split: 'whole' },
  txt_in: { modules: ['context_embedder'], split: 'whole' },
  time_in_in_layer: { modules: ['time_text_embed.timestep_embedder.linear_1'], split: 'whole' },
  time_in_out_layer: { modules: ['time_text_embed.timestep_embedder.linear_2'], split: 'whole' },
  vector_in_in_layer: { modules: ['time_text_embed.text_embedder.linear_1'], split: 'whole' },
  vector_in_out_layer: { modules: ['time_text_embed.text_embedder.linear_2'], split: 'whole' },
  guidance_in_in_layer: { modules: ['time_text_embed.guidance_embedder.linear_1'], split: 'whole' },
  guidance_in_out_layer: { modules: ['time_text_embed.guidance_embedder.linear_2'], split: 'whole' },
  final_layer_linear: { modules: ['proj_out'], split: 'whole' },
  final_layer_adaLN_modulation_1: { modules: ['norm_out.linear'], split: 'swapHalves' },
};

function kohyaTarget(module: string): { modules: string[]; split: Split } | undefined {
  const m = /^lora_unet_(double|single)_blocks_(\d+)_(.+)$/.exec(module);
  if (m) {
    const table = m[1] === 'double' ? DOUBLE_BLOCK : SINGLE_BLOCK;
    const entry = Object.hasOwn(table, m[3]) ? table[m[3]] : undefined;
    const prefix = m[1] === 'double' ? `transformer_blocks.${m[2]}.` : `single_transformer_blocks.${m[2]}.`;
    return entry && { modules: entry.modules.map((x) => prefix + x), split: entry.split };
  }
  const top = module.replace(/^lora_unet_/, '');
  return Object.hasOwn(TOP_LEVEL, top) ? TOP_LEVEL[top] : undefined;
}

/** A short list of keys for messages. */
const some = (keys: string[], n = 3) => keys.slice(0, n).join(', ') + (keys.length > n ? `, ... (${keys.length} in all)` : '');

/** Names the format of a file that is not one of the two read here, from its keys. */
function otherFormat(keys: string[]): string | undefined {
  const has = (re: RegExp) => keys.some((k) => re.test(k));
  if (has(/\.lokr_w[12]/)) return 'a LoKr (LyCORIS) file';
  if (has(/\.hada_w[12]_[ab]/)) return 'a LoHa (LyCORIS) file';
  if (has(/\.dora_scale$|\.lora_magnitude_vector/)) return 'a DoRA file';
  if (has(/^lora_unet_(down|up|mid)_blocks?_|^lora_unet_input_blocks_|^lora_unet_output_blocks_/)) return 'a LoRA for a UNet model (SD 1.x/2.x/SDXL), not FLUX';
  if (has(/^lora_te[12]?_/) || has(/^text_encoder(_2)?\./)) return 'a LoRA with text-encoder keys (only transformer LoRAs are fused)';
  if (has(/\.lora\.(down|up)\.weight$/)) return "diffusers' old attention-processor LoRA format";
  return undefined;
}

/**
 * Reads one LoRA file and resolves every module to its updates against the model's weights
 * (`shape` gives a weight key's shape, undefined when the architecture has no such weight).
 * Every problem is an error naming the file and what to do; nothing is fused on error.
 */
export function loadLora(spec: LoraSpec, shape: (key: string) => number[] | undefined): LoadedLora {
  const where = `LoRA ${spec.file}`;
  if (!Number.isFinite(spec.scale)) throw new ModelFolderError(`${where}: the scale ${spec.scale} is not a finite number`);
  if (!spec.file.endsWith('.safetensors')) throw new ModelFolderError(`${where}: LoRA files are read as .safetensors (the format every FLUX LoRA is published in); convert it first`);
  let ckpt: Checkpoint;
  let metadata: Record<string, string>;
  try {
    ckpt = Checkpoint.open(spec.file);
    metadata = readHeader(spec.file).metadata;
  } catch (e) {
    throw new ModelFolderError(`${where}: ${(e as Error).message}`);
  }
  const keys = ckpt.keys().sort();
  if (keys.length === 0) throw new ModelFolderError(`${where}: holds no tensors`);
  const other = otherFormat(keys);
  if (other) throw new ModelFolderError(`${where} is ${other}; keys: ${some(keys)}. Only diffusers/peft (transformer.*.lora_A/lora_B) and kohya FLUX (lora_unet_*.lora_down/lora_up) LoRAs are fused`);
  const kohya = keys.some((k) => k.startsWith('lora_unet_'));
  const peft = keys.some((k) => /\.lora_[AB]\.weight$/.test(k));
  if (kohya && peft) throw new ModelFolderError(`${where} mixes kohya and diffusers keys (${some(keys)}); split it into one file per format`);
  if (!kohya && !peft) throw new ModelFolderError(`${where}: not a LoRA format this converter reads; keys: ${some(keys)}. Expected diffusers/peft (transformer.*.lora_A.weight) or kohya FLUX (lora_unet_*.lora_down.weight)`);
  const read = (key: string) => ckpt.readFloat32(key);
  const format: LoraFormat = kohya ? 'kohya_flux' : 'diffusers_peft';
  const updates = kohya ? kohyaUpdates(ckpt, keys, spec, shape, read) : peftUpdates(ckpt, keys, spec, shape, read, metadata);
  return { spec, format, sha256: sha256File(spec.file), updates };
}

interface Module {
  name: string;
  down?: string;
  up?: string;
  alpha?: string;
}

/** Which module and part a key is (`undefined`: no LoRA part). */
type Classify = (key: string) => { name: string; part: 'down' | 'up' | 'alpha' } | undefined;

function groupModules(keys: string[], classify: Classify, where: string): Map<string, Module> {
  const modules = new Map<string, Module>();
  const stray: string[] = [];
  for (const key of keys) {
    const c = classify(key);
    if (!c) {
      stray.push(key);
      continue;
    }
    const mod = modules.get(c.name) ?? { name: c.name };
    mod[c.part] = key;
    modules.set(c.name, mod);
  }
  if (stray.length > 0) {
    const bias = stray.find((k) => /lora_B\.bias$|lora_up\.bias$/.test(k));
    if (bias) throw new ModelFolderError(`${where}: ${bias} is a LoRA bias, which diffusers cannot load either; retrain or re-save the LoRA without biases`);
    throw new ModelFolderError(`${where}: keys that are no LoRA part: ${some(stray)}`);
  }
  for (const m of modules.values()) {
    if (!m.down || !m.up) throw new ModelFolderError(`${where}: module ${m.name} has ${m.down ? 'no up-projection' : 'no down-projection'}; the file is incomplete`);
  }
  return modules;
}

const classifyPeft: Classify = (key) => {
  const m = /^(.+)\.(?:lora_(A|B)\.weight|(alpha))$/.exec(key);
  return m ? { name: m[1], part: m[3] ? 'alpha' : m[2] === 'A' ? 'down' : 'up' } : undefined;
};
const classifyKohya: Classify = (key) => {
  const m = /^(lora_unet_.+)\.(?:lora_(down|up)\.weight|(alpha))$/.exec(key);
  return m ? { name: m[1], part: m[3] ? 'alpha' : (m[2] as 'down' | 'up') } : undefined;
};

/** Rank, in/out sizes and alpha of one module, checked. */
function moduleParts(ckpt: Checkpoint, m: Module, where: string, read: (key: string) => Float32Array) {
  const down = ckpt.info(m.down!).shape;
  const up = ckpt.info(m.up!).shape;
  if (down.length !== 2 || up.length !== 2) throw new ModelFolderError(`${where}: module ${m.name} has down [${down}] and up [${up}]; a Linear LoRA has 2-d ones (a conv LoRA is not for FLUX)`);
  const [rank, inFeatures] = down;
  if (up[1] !== rank) throw new ModelFolderError(`${where}: module ${m.name}: the up-projection has rank ${up[1]} but the down-projection ${rank}`);
  let alpha = rank;
  if (m.alpha) {
    const a = read(m.alpha);
    if (a.length !== 1 || !Number.isFinite(a[0])) throw new ModelFolderError(`${where}: module ${m.name}: alpha is not one finite number`);
    alpha = a[0];
  }
  return { rank, inFeatures, outFeatures: up[0], alpha };
}

/** Undefined when `target` is a Linear weight of `rows x inFeatures`; a reason when it does not exist; throws on a size mismatch. */
function checkTarget(target: string, rows: number, inFeatures: number, source: string, where: string, shape: (key: string) => number[] | undefined): string | undefined {
  const s = shape(target);
  if (!s) return `no weight ${target}`;
  if (s.length !== 2) return `${target} is not a Linear weight ([${s}])`;
  if (s[1] !== inFeatures) throw new ModelFolderError(`${where}: ${source} takes inputs of ${inFeatures} but ${target} has ${s[1]} (a LoRA for another model size?)`);
  if (s[0] !== rows) throw new ModelFolderError(`${where}: ${source} gives ${rows} outputs but ${target} has ${s[0]} (a LoRA for another model size?)`);
  return undefined;
}

const f32 = Math.fround;

function peftUpdates(ckpt: Checkpoint, keys: string[], spec: LoraSpec, shape: (key: string) => number[] | undefined, read: (key: string) => Float32Array, metadata: Record<string, string>): LoraUpdate[] {
  const where = `LoRA ${spec.file}`;
  let fileAlpha: number | undefined;
  const config = metadata.lora_adapter_metadata;
  if (config) {
    // diffusers >= 0.34 stores the training LoraConfig: lora_alpha is then the file's alpha.
    let c: { lora_alpha?: unknown; alpha_pattern?: unknown; rank_pattern?: unknown; use_dora?: unknown; use_rslora?: unknown };
    try {
      c = JSON.parse(config);
    } catch {
      throw new ModelFolderError(`${where}: its lora_adapter_metadata is not valid JSON`);
    }
    if (c.use_dora === true) throw new ModelFolderError(`${where} is a DoRA adapter (use_dora); only plain LoRAs are fused`);
    if (c.use_rslora === true) throw new ModelFolderError(`${where} uses rank-stabilized scaling (use_rslora), which this converter does not apply; fuse it with diffusers`);
    const pattern = (p: unknown) => p && typeof p === 'object' && Object.keys(p).length > 0;
    if (pattern(c.alpha_pattern) || pattern(c.rank_pattern)) throw new ModelFolderError(`${where}: per-module alpha_pattern/rank_pattern in its LoraConfig are not applied by this converter; fuse it with diffusers`);
    if (typeof c.lora_alpha === 'number' && Number.isFinite(c.lora_alpha)) fileAlpha = c.lora_alpha;
  }
  const modules = groupModules(keys, classifyPeft, where);
  const updates: LoraUpdate[] = [];
  const unmatched: string[] = [];
  for (const m of modules.values()) {
    const parts = moduleParts(ckpt, m, where, read);
    const alpha = m.alpha ? parts.alpha : fileAlpha ?? parts.rank;
    const module = m.name.replace(/^transformer\./, '');
    const target = `${module}.weight`;
    const missing = checkTarget(target, parts.outFeatures, parts.inFeatures, m.name, where, shape);
    if (missing) {
      unmatched.push(m.name);
      continue;
    }
    updates.push({ target, rank: parts.rank, inFeatures: parts.inFeatures, down: read(m.down!), up: read(m.up!), rows: parts.outFeatures, scale: f32(f32(spec.scale) * f32(f32(alpha) / parts.rank)) });
  }
  if (unmatched.length > 0) throw unmatchedError(where, unmatched, modules.size);
  return updates;
}

function unmatchedError(where: string, unmatched: string[], total: number): ModelFolderError {
  const all = unmatched.length === total;
  return new ModelFolderError(
    `${where}: ${unmatched.length} of ${total} modules match no Linear of this transformer: ${some(unmatched)}. ` +
      (all ? 'Is it a LoRA for another model (FLUX.1-dev LoRAs are fused here)?' : 'The file and this architecture disagree; check that it is a FLUX.1 LoRA'),
  );
}

function kohyaUpdates(ckpt: Checkpoint, keys: string[], spec: LoraSpec, shape: (key: string) => number[] | undefined, read: (key: string) => Float32Array): LoraUpdate[] {
  const where = `LoRA ${spec.file}`;
  const modules = groupModules(keys, classifyKohya, where);
  const updates: LoraUpdate[] = [];
  const unmatched: string[] = [];
  for (const m of modules.values()) {
    const mapped = kohyaTarget(m.name);
    if (!mapped) {
      unmatched.push(m.name);
      continue;
    }
    const parts = moduleParts(ckpt, m, where, read);
    const scale = f32(f32(spec.scale) * f32(f32(parts.alpha) / parts.rank));
    const down = read(m.down!);
    const up = read(m.up!);
    const targets = mapped.modules.map((x) => `${x}.weight`);
    // Row sizes of the targets, from the model's own weights (never FLUX.1's hard-coded sizes).
    const sizes = targets.map((t) => shape(t)?.[0]);
    const absent = targets.filter((_, i) => sizes[i] === undefined);
    if (absent.length > 0) {
      unmatched.push(`${m.name} (-> ${absent.join(', ')})`);
      continue;
    }
    const total = (sizes as number[]).reduce((a, b) => a + b, 0);
    if (mapped.split !== 'swapHalves' && total !== parts.outFeatures) {
      throw new ModelFolderError(`${where}: ${m.name} gives ${parts.outFeatures} outputs but ${targets.join(' + ')} have ${sizes.join(' + ')} = ${total} (a LoRA for another model size?)`);
    }
    let row = 0;
    targets.forEach((target, i) => {
      const rows = sizes[i] as number;
      const problem = checkTarget(target, rows, parts.inFeatures, m.name, where, shape);
      if (problem) throw new ModelFolderError(`${where}: ${m.name}: ${problem}`);
      let part = up.slice(row * parts.rank, (row + rows) * parts.rank);
      if (mapped.split === 'swapHalves') {
        // BFL's final modulation is (shift, scale); diffusers' norm_out.linear is (scale, shift).
        if (rows % 2 !== 0) throw new ModelFolderError(`${where}: ${m.name} has an odd number of outputs`);
        const half = (rows / 2) * parts.rank;
        part = Float32Array.from([...part.subarray(half), ...part.subarray(0, half)]);
      }
      updates.push({ target, rank: parts.rank, inFeatures: parts.inFeatures, down, up: part, rows, scale });
      row += rows;
    });
  }
  if (unmatched.length > 0) throw unmatchedError(where, unmatched, modules.size);
  return updates;
}

/** Adds `scale * (B @ A)` to `w` (`[rows, in]`), in float32 (the dot products in float64, then rounded). */
export function applyUpdate(w: Float32Array, u: LoraUpdate): void {
  const { rank, inFeatures: n, down, up, scale } = u;
  const row = new Float64Array(n);
  for (let o = 0; o < u.rows; o++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const b = up[o * rank + k];
      if (b === 0) continue;
      const base = k * n;
      for (let i = 0; i < n; i++) row[i] += b * down[base + i];
    }
    const at = o * n;
    for (let i = 0; i < n; i++) w[at + i] = f32(w[at + i] + f32(scale * f32(row[i])));
  }
}

/**
 * The base weights with every LoRA's updates added, in the order given: a weight source that
 * fuses on read, so the transformer's 12 B weights are never all in memory.
 */
export function fusedWeights(base: WeightSource, loras: readonly LoadedLora[]): WeightSource {
  const byTarget = new Map<string, LoraUpdate[]>();
  for (const lora of loras) for (const u of lora.updates) byTarget.set(u.target, [...(byTarget.get(u.target) ?? []), u]);
  if (byTarget.size === 0) return base;
  return {
    describe: `${base.describe} + ${loras.map((l) => basename(l.spec.file)).join(' + ')}`,
    shape: (key) => base.shape(key),
    read: (key) => {
      const updates = byTarget.get(key);
      if (!updates) return base.read(key);
      const w = Float32Array.from(base.read(key));
      for (const u of updates) applyUpdate(w, u);
      return w;
    },
  };
}

/** The manifest's record of one loaded LoRA. */
export function recordOf(l: LoadedLora, order: number, into: FusedLora['into'], jobs?: JobKind[]): FusedLora {
  return { order, file: basename(l.spec.file), sha256: l.sha256, scale: l.spec.scale, format: l.format, modules: new Set(l.updates.map((u) => u.target)).size, into, ...(jobs ? { jobs } : {}) };
}

/** Loads every `--lora` in order against the base weights; the manifest's record of them. */
export function loadLoras(specs: readonly LoraSpec[], base: WeightSource): { loras: LoadedLora[]; record: FusedLora[] } {
  const loras = specs.map((spec) => loadLora(spec, (key) => base.shape(key)));
  return {
    loras,
    record: loras.map((l, i) => recordOf(l, i + 1, 'transformer')),
  };
}


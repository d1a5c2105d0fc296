/**
 * Analytic FLOPs of one transformer forward pass (one CFG branch), counting multiply-adds as 2.
 * Per block over a joint sequence of S tokens of width D: the projections and MLP are 24·S·D²
 * in both block kinds (double: q,k,v,out + 4D MLP per stream; single: q,k,v + 4D MLP + 5D->D
 * output), and attention is 4·S²·D (QKᵀ and AV). Norms, RoPE and the per-sample modulation are
 * left out: they are linear in S with small constants.
 */
import { innerDim, type TransformerConfig } from '../gpu-server/models/transformer.ts';

export interface StepFlops {
  /** Matrix products of weights with tokens (embedders, projections, MLPs, output). */
  linear: number;
  /** Attention scores and weighted sums. */
  attention: number;
  total: number;
}

export function transformerFlops(c: TransformerConfig, imageTokens: number, textTokens: number): StepFlops {
  const d = innerDim(c);
  const s = imageTokens + textTokens;
  const blocks = c.numLayers + c.numSingleLayers;
  const embed = 2 * imageTokens * c.inChannels * d + 2 * textTokens * c.jointAttentionDim * d;
  const out = 2 * imageTokens * d * c.inChannels;
  const linear = embed + blocks * 24 * s * d * d + out;
  const attention = blocks * 4 * s * s * d;
  return { linear, attention, total: linear + attention };
}

/**
 * Comparing files this project writes (tiny tokenizers, synthetic Hugging Face folders) with the
 * real FLUX.1-dev files (test/fixtures/flux-dev): the Hugging Face tools load ours only if they
 * have the fields the real ones have, numbers written the same way (transformers' configs
 * type-check float fields: `1` where the real file writes `1.0` is refused by strict configs).
 */
import { readFileSync } from 'node:fs';

export const FLUX_DEV = new URL('../fixtures/flux-dev/', import.meta.url).pathname;

/** Paths where `ours` lacks a key `real` has (recursively through objects and first array items). */
export function missingKeys(ours: unknown, real: unknown, path = ''): string[] {
  if (Array.isArray(real)) {
    if (!Array.isArray(ours)) return [path || '(top level)'];
    return real.length > 0 && ours.length > 0 ? ours.flatMap((o, i) => missingKeys(o, real[Math.min(i, real.length - 1)], `${path}[${i}]`)) : [];
  }
  if (real === null || typeof real !== 'object') return [];
  if (ours === null || typeof ours !== 'object' || Array.isArray(ours)) return [path || '(top level)'];
  const o = ours as Record<string, unknown>;
  return Object.entries(real as Record<string, unknown>).flatMap(([k, v]) => (k in o ? missingKeys(o[k], v, path ? `${path}.${k}` : k) : [`${path ? `${path}.` : ''}${k}`]));
}

/** Top-level keys whose number is written with a decimal point or exponent in the JSON text. */
export function floatKeys(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  return new Set([...text.matchAll(/"([^"]+)":\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*[,}\n]/g)].filter((m) => /[.eE]/.test(m[2])).map((m) => m[1]));
}

/** Keys the real file writes as floats that ours writes as integers. */
export function floatsWrittenAsIntegers(ours: string, real: string): string[] {
  const oursText = JSON.parse(readFileSync(ours, 'utf8')) as Record<string, unknown>;
  const oursFloats = floatKeys(ours);
  return [...floatKeys(real)].filter((k) => typeof oursText[k] === 'number' && !oursFloats.has(k));
}

/** node:util parseArgs as both command lines use it: strict, no positionals, errors followed by the usage. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Flags = NonNullable<ParseArgsConfig['options']>;
type Values<T extends Flags> = ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: false }>>['values'];

export function parseFlags<T extends Flags>(argv: string[], options: T, usage: string): { ok: true; values: Values<T> } | { ok: false; error: string } {
  try {
    return { ok: true, values: parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values };
  } catch (error) {
    return { ok: false, error: `${(error as Error).message}\n\n${usage}` };
  }
}

/** A flag in milliseconds: absent, the default; else a positive integer, or why not (the error to print). */
export function positiveMs(flag: string, value: string | undefined, fallback: number): number | string {
  if (value === undefined) return fallback;
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : `${flag} must be a positive integer (milliseconds), got "${value}"`;
}

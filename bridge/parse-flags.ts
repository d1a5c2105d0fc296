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

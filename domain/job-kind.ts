/**
 * The jobs a model can run (a model folder's manifest says which, `welcome` lists them per model, the
 * plugin's jobs carry one): generation from a layout; decomposition of a flat image into layers (CLD,
 * needs the adapter).
 */
export const JOB_KINDS = ['generate', 'decompose'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/**
 * The setup the pipeline's entry-point tests share: a tiny model in a temporary folder, a pipeline on
 * it and the independent reference (reference-generation.ts), made before a file's tests and removed
 * after them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import type { ArtPipeline } from '../../gpu-server/pipeline/types.ts';
import { ReferenceGenerator } from './reference-generation.ts';

export interface TinySetup {
  root: string;
  model: string;
  pipeline: ArtPipeline;
  reference: ReferenceGenerator;
}

/** Registers the file's before/after hooks; the fields are set once `before` has run. */
export function useTinySetup(prefix: string): TinySetup {
  const setup = {} as TinySetup;
  before(async () => {
    setup.root = mkdtempSync(join(tmpdir(), prefix));
    setup.model = join(setup.root, 'tiny');
    writeTinyModel(setup.model);
    setup.pipeline = await createPipeline({ modelDir: setup.model, provider: 'cpu' });
    setup.reference = await ReferenceGenerator.open(setup.model);
  });
  after(async () => {
    await setup.pipeline?.dispose();
    await setup.reference?.release();
    if (setup.root) rmSync(setup.root, { recursive: true, force: true });
  });
  return setup;
}

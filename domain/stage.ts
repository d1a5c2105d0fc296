/** Stages a job reports progress in; `encode` (PNG encoding) is the bridge's, after the pipeline's. */
export type Stage = 'text' | 'denoise' | 'decode' | 'encode';

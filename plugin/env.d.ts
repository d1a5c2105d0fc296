/**
 * gpu-server/pipeline/types.ts (imported for Layout and BoxTuple) names AbortSignal in the
 * pipeline's options; Figma's sandbox has no such global, and the plugin never creates one.
 */
interface AbortSignal {
  readonly aborted: boolean;
}

/**
 * onnxruntime-node 1.30 ships Microsoft's 1DS telemetry: unless ORT_DISABLE_TELEMETRY is set, its
 * first session writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ (a device id and an event
 * database), $TMPDIR/mat-debug-<pid>.log and $TMPDIR/.ses. The native library reads the real
 * process environment, which a worker thread cannot change (its process.env is a copy): call
 * this on the main thread before any session or pipeline worker starts.
 */
export const ORT_TELEMETRY_ENV = 'ORT_DISABLE_TELEMETRY';

/** Turns the telemetry off unless the user set the variable themselves. */
export function disableOnnxTelemetry(env: NodeJS.ProcessEnv = process.env): void {
  if (env[ORT_TELEMETRY_ENV] === undefined) env[ORT_TELEMETRY_ENV] = '1';
}

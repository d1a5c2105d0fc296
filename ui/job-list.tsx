/** Running jobs with their progress and preview, then this session's results with thumbnails. */
import type { InsertPlace } from '../plugin/messages.ts';
import type { Job } from './jobs.ts';
import { isActive } from './jobs.ts';
import { remainingMs, seconds, stageText } from './words.ts';

function Progress({ job, preview, tiny }: { job: Job; preview?: string; tiny: boolean }) {
  const fraction = job.total > 0 ? job.step / job.total : 0;
  const left =
    job.stage === 'denoise' && job.denoiseFrom
      ? remainingMs(job.denoiseFrom, { step: job.step, total: job.total, elapsedMs: job.elapsedMs })
      : null;
  return (
    <li class="job running" data-testid="job-running" data-status={job.status}>
      <div class="job-head">
        <strong>{job.frameName}</strong>
        <span class="muted"> · seed {job.seed}</span>
      </div>
      {job.status === 'sending' && <p class="muted">Sending…</p>}
      {job.status === 'restored' && <p class="muted">From the last session: asking the bridge…</p>}
      {job.status === 'queued' && (
        <p class="muted">
          Waiting: {job.position} job{job.position === 1 ? '' : 's'} ahead
        </p>
      )}
      {job.status === 'running' && (
        <div>
          <p data-testid="job-stage">
            {job.stage ? stageText(job.stage) : 'Starting'}
            {job.total > 0 && ` · step ${job.step}/${job.total}`}
            <span class="muted">
              {' '}
              · {seconds(job.elapsedMs)}
              {left !== null && ` · about ${seconds(left)} left`}
            </span>
          </p>
          <progress max={1} value={fraction} />
        </div>
      )}
      {job.cancelRequested && <p class="muted">Cancelling…</p>}
      {preview && (
        <figure class="preview-figure">
          <img class="preview" src={preview} alt={`Preview of ${job.frameName}`} data-testid="job-preview" />
          {tiny && <figcaption class="muted">Live preview · tiny test model: noise</figcaption>}
        </figure>
      )}
    </li>
  );
}

type OnInsert = (job: Job, place: InsertPlace) => void;

function Result({ job, thumb, onInsert }: { job: Job; thumb?: string; onInsert: OnInsert }) {
  return (
    <li class={`job ${job.status}`} data-testid="job-result" data-status={job.status}>
      {thumb && <img class="thumb" src={thumb} alt={`Result for ${job.frameName}`} />}
      <div class="job-body">
        <div class="job-head">
          <strong>{job.insertedName ?? job.frameName}</strong>
        </div>
        {job.status === 'inserting' && <p class="muted">Adding layers to the canvas…</p>}
        {job.status === 'ready' && (
          <div>
            <p class="muted">Finished while the plugin was closed; not inserted yet.</p>
            <button onClick={() => onInsert(job, 'beside')}>Insert</button>
          </div>
        )}
        {job.status === 'insert-failed' && (
          <div>
            <p class="error" role="alert">
              {job.error}
            </p>
            <p class="muted">The layers are kept.</p>
            <button onClick={() => onInsert(job, 'page')}>Insert on page</button>
          </div>
        )}
        {job.status === 'inserted' && (
          <p class="muted">
            {job.layout.regions.length - 2} layers · seed {job.seed}
            {job.totalMs !== null && ` · ${seconds(job.totalMs)}`}
            {job.tiny && ' · tiny test model (noise)'}
          </p>
        )}
        {job.promptTruncated && <p class="warning">The prompt was too long for the model and was cut.</p>}
        {job.status === 'cancelled' && <p class="muted">Cancelled.</p>}
        {job.status === 'failed' && (
          <p class="error" role="alert">
            {job.error}
          </p>
        )}
      </div>
    </li>
  );
}

/** `tiny`: the bridge runs the random-weight test model, so previews are labelled as noise. */
export function JobList({
  jobs,
  images,
  tiny,
  onInsert,
}: {
  jobs: readonly Job[];
  images: Record<string, string>;
  tiny: boolean;
  onInsert: OnInsert;
}) {
  const active = jobs.filter(isActive);
  const finished = jobs.filter((j) => !isActive(j));
  if (jobs.length === 0) return null;
  return (
    <section class="panel" aria-label="Jobs">
      {active.length > 0 && (
        <>
          <h2>Progress</h2>
          <ul class="jobs">
            {active.map((job) => (
              <Progress key={job.requestId} job={job} preview={images[`preview:${job.requestId}`]} tiny={tiny} />
            ))}
          </ul>
        </>
      )}
      {finished.length > 0 && (
        <>
          <h2>Results</h2>
          <ul class="jobs">
            {finished.map((job) => (
              <Result key={job.requestId} job={job} thumb={images[`thumb:${job.requestId}`]} onInsert={onInsert} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/** Running jobs with their progress and preview, then this session's results with thumbnails. */
import type { InsertPlace } from '../plugin/messages.ts';
import { redrawnLayers } from '../plugin/regenerate.ts';
import { isActive, versionOf, type Job, type JobIn } from './jobs.ts';
import { remainingMs, seconds, stageText } from './words.ts';

type ActiveJob = JobIn<'held' | 'sending' | 'restored' | 'refetching' | 'queued' | 'running'>;

function Stage({ progress }: { progress: JobIn<'running'>['progress'] }) {
  const { stage, step, total, elapsedMs, denoiseFrom } = progress;
  const fraction = total > 0 ? step / total : 0;
  const left = stage === 'denoise' && denoiseFrom ? remainingMs(denoiseFrom, { step, total, elapsedMs }) : null;
  return (
    <div>
      <p data-testid="job-stage">
        {stage ? stageText(stage) : 'Starting'}
        {total > 0 && ` · step ${step}/${total}`}
        <span class="muted">
          {' '}
          · {seconds(elapsedMs)}
          {left !== null && ` · about ${seconds(left)} left`}
        </span>
      </p>
      <progress max={1} value={fraction} />
    </div>
  );
}

function Progress({ job, preview, tiny }: { job: ActiveJob; preview?: string; tiny: boolean }) {
  return (
    <li class="job running" data-testid="job-running" data-status={job.status}>
      <div class="job-head">
        <strong>{job.frameName}</strong>
        <span class="muted"> · seed {job.seed}</span>
      </div>
      {job.status === 'held' && <p class="muted">Waiting to be sent: the bridge takes a few jobs at a time from one window.</p>}
      {job.status === 'sending' && <p class="muted">Sending…</p>}
      {job.status === 'restored' && <p class="muted">From the last session: asking the bridge…</p>}
      {job.status === 'refetching' && <p class="muted">Asking the bridge for this version’s layers again…</p>}
      {job.status === 'queued' && (
        <p class="muted">
          Waiting: {job.position} job{job.position === 1 ? '' : 's'} ahead
        </p>
      )}
      {job.status === 'running' && <Stage progress={job.progress} />}
      {(job.status === 'queued' || job.status === 'running') && job.note && (
        <p class="muted" data-testid="job-note">
          {job.note}
        </p>
      )}
      {'cancelRequested' in job && job.cancelRequested && <p class="muted">Cancelling…</p>}
      {preview && (
        <figure class="preview-figure">
          <img class="preview" src={preview} alt={`Preview of ${job.frameName}`} data-testid="job-preview" />
          {tiny && <figcaption class="muted">Live preview · tiny test model: noise</figcaption>}
        </figure>
      )}
    </li>
  );
}

type OnInsert = (job: JobIn<'ready' | 'insert-failed'>, place: InsertPlace) => void;
type OnInsertAsNew = (job: JobIn<'ready' | 'insert-failed' | 'inserted'>) => void;
type EndedJob = Exclude<Job, ActiveJob>;

/** `v1 → v2 → v3`: the versions of the result frame up to this job. */
function Lineage({ job }: { job: Job }) {
  const version = versionOf(job);
  if (version === 1) return null;
  const redrawn = job.edit ? redrawnLayers(job.edit.layers).length : 0;
  return (
    <p class="muted" data-testid="lineage">
      {Array.from({ length: version - 1 }, (_, i) => `v${i + 1} → `).join('')}
      <strong>v{version}</strong>
      {job.edit && ` · ${redrawn} of ${job.layout.regions.length - 1} layers redrawn`}
    </p>
  );
}

function Result({
  job,
  thumb,
  superseded,
  onInsert,
  onInsertAsNew,
}: {
  job: EndedJob;
  thumb?: string;
  /** A later version replaced this one in its frame. */
  superseded: boolean;
  onInsert: OnInsert;
  onInsertAsNew: OnInsertAsNew;
}) {
  const inPlace = job.edit !== null && !job.asNew;
  return (
    <li class={`job ${job.status}`} data-testid="job-result" data-status={job.status} data-version={versionOf(job)}>
      {thumb && <img class="thumb" src={thumb} alt={`Result for ${job.frameName}`} />}
      <div class="job-body">
        <div class="job-head">
          <strong>{job.status === 'inserted' ? job.insertedName : job.frameName}</strong>
          <span class="muted"> · v{versionOf(job)}</span>
        </div>
        <Lineage job={job} />
        {job.status === 'inserting' && <p class="muted">{inPlace ? 'Updating the layers in place…' : 'Adding layers to the canvas…'}</p>}
        {job.status === 'ready' && (
          <div>
            <p class="muted">Finished while the plugin was closed; not inserted yet.</p>
            <button onClick={() => onInsert(job, 'beside')}>{inPlace ? 'Update the frame' : 'Insert'}</button>
            {inPlace && <button onClick={() => onInsertAsNew(job)}>Insert as new frame</button>}
          </div>
        )}
        {job.status === 'insert-failed' && (
          <div>
            <p class="error" role="alert">
              {job.error}
            </p>
            <p class="muted">The layers are kept.</p>
            {job.edit ? (
              <button onClick={() => onInsertAsNew(job)}>Insert as new frame</button>
            ) : (
              <button onClick={() => onInsert(job, 'page')}>Insert on page</button>
            )}
          </div>
        )}
        {job.status === 'inserted' && (
          <p class="muted">
            {job.layout.regions.length - 2} layers · seed {job.seed}
            {job.result.totalMs !== null && ` · ${seconds(job.result.totalMs)}`}
            {job.result.tiny && ' · tiny test model (noise)'}
          </p>
        )}
        {job.status === 'inserted' && superseded && (
          <div>
            <p class="muted">A later version replaced this one in its frame.</p>
            <button onClick={() => onInsertAsNew(job)}>Insert v{versionOf(job)} as a new frame</button>
          </div>
        )}
        {job.status === 'inserted' && job.error && (
          <p class="error" role="alert">
            {job.error}
          </p>
        )}
        {'result' in job && job.result.promptTruncated && <p class="warning">The prompt was too long for the model and was cut.</p>}
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
  onInsertAsNew,
}: {
  jobs: readonly Job[];
  images: Record<string, string>;
  tiny: boolean;
  onInsert: OnInsert;
  onInsertAsNew: OnInsertAsNew;
}) {
  const replaced = new Set(
    jobs.flatMap((j) => (j.status === 'inserted' && j.edit && !j.asNew ? [j.edit.baseJobId] : [])),
  );
  const active = jobs.filter(isActive);
  const finished = jobs.filter((j): j is EndedJob => !isActive(j));
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
              <Result
                key={job.requestId}
                job={job}
                thumb={images[`thumb:${job.requestId}`]}
                superseded={job.jobId !== null && replaced.has(job.jobId)}
                onInsert={onInsert}
                onInsertAsNew={onInsertAsNew}
              />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

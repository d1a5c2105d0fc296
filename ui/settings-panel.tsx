/** Resolution, steps, the two guidance knobs and the seed. */
import { RESOLUTIONS, type Resolution } from '../domain/layout.ts';
import { MAX_GUIDANCE, MAX_SEED, MAX_STEPS, MAX_TRUE_CFG, MIN_GUIDANCE, MIN_STEPS, MIN_TRUE_CFG } from '../domain/params.ts';
import type { Settings } from '../plugin/settings.ts';

interface Props {
  settings: Settings;
  /** Sides the connected model accepts. */
  resolutions: readonly number[];
  onChange: (change: Partial<Settings>) => void;
}

/** Reads a number input, keeping the old value for anything out of range. */
function numberFrom(text: string, min: number, max: number, integer: boolean): number | null {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) return null;
  if (integer && !Number.isInteger(value)) return null;
  return value;
}

export function SettingsPanel({ settings, resolutions, onChange }: Props) {
  const offered = RESOLUTIONS.filter((r) => resolutions.includes(r));
  const num = (key: 'steps' | 'guidance' | 'trueCfg' | 'seed', min: number, max: number, integer: boolean) => ({
    value: String(settings[key]),
    min,
    max,
    onChange: (e: Event) => {
      const input = e.currentTarget as HTMLInputElement;
      const value = numberFrom(input.value, min, max, integer);
      if (value === null) input.value = String(settings[key]);
      else onChange({ [key]: value });
    },
  });
  return (
    <div class="grid">
      <label class="field">
        <span>Resolution</span>
        <select
          aria-label="Resolution"
          value={String(settings.resolution)}
          onChange={(e) => onChange({ resolution: Number(e.currentTarget.value) as Resolution })}
        >
          {(offered.length ? offered : RESOLUTIONS).map((r) => (
            <option key={r} value={String(r)}>
              {r} px
            </option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>Steps</span>
        <input aria-label="Steps" type="number" step="1" {...num('steps', MIN_STEPS, MAX_STEPS, true)} />
      </label>
      <label class="field">
        <span title="The guidance embedding the model was trained with (4.0 by default)">Guidance</span>
        <input aria-label="Guidance" type="number" step="0.5" {...num('guidance', MIN_GUIDANCE, MAX_GUIDANCE, false)} />
      </label>
      <label class="field">
        <span title="Classifier-free guidance scale; 1 turns the negative prompt off">True CFG</span>
        <input aria-label="True CFG" type="number" step="0.5" {...num('trueCfg', MIN_TRUE_CFG, MAX_TRUE_CFG, false)} />
      </label>
      <label class="field">
        <span>Seed</span>
        <select
          aria-label="Seed mode"
          value={settings.seedMode}
          onChange={(e) => onChange({ seedMode: e.currentTarget.value === 'random' ? 'random' : 'fixed' })}
        >
          <option value="fixed">Fixed</option>
          <option value="random">Random</option>
        </select>
      </label>
      <label class="field">
        <span>&nbsp;</span>
        <input
          aria-label="Seed"
          type="number"
          step="1"
          disabled={settings.seedMode === 'random'}
          {...num('seed', 0, MAX_SEED, true)}
        />
      </label>
    </div>
  );
}

/**
 * A selected result frame: what regenerating it would change, and the two edits it offers.
 * "Regenerate N layers" replaces the selected, moved, resized and added layers in place and keeps
 * the rest byte for byte; "Variations" keeps only the background and draws every layer anew.
 */
import type { ResultSelection } from '../plugin/messages.ts';
import { redrawnLayers, type RegenerateMode, type RegeneratePlan } from '../plugin/regenerate.ts';

/** The names of the layers a plan draws anew (merged preview left out: it always is). */
export function regeneratedNames(plan: RegeneratePlan): string[] {
  return redrawnLayers(plan.layers).map((i) => plan.layout.regions[i].name);
}

/** Why "Regenerate" cannot run for this item, or null. */
export function regenerateBlocker(item: ResultSelection): string | null {
  if (!item.regenerate.ok) return item.regenerate.message;
  if (redrawnLayers(item.regenerate.value.layers).length === 0)
    return 'Select the layers to regenerate inside the frame, or move, resize or add one. Variations redraws them all.';
  return null;
}

export function EditPanel({
  item,
  version,
  blocker,
  tiny,
  onEdit,
}: {
  item: ResultSelection;
  /** The version the frame shows (1 for a first generation). */
  version: number;
  /** Why no edit can be sent now (not paired, prompt too long, this frame already being edited), or null. */
  blocker: string | null;
  tiny: boolean;
  onEdit: (item: ResultSelection, mode: RegenerateMode) => void;
}) {
  const own = regenerateBlocker(item);
  const names = item.regenerate.ok ? regeneratedNames(item.regenerate.value) : [];
  const count = names.length;
  return (
    <div class="edit" data-testid="selected-result" data-frame={item.name}>
      <p>
        <strong>{item.name}</strong>
        <span class="muted">
          {' '}
          · v{version} · seed {item.result.seed} · {item.result.layerCount - 2} layers
        </span>
      </p>
      {names.length > 0 && (
        <p class="muted" data-testid="regenerated-names">
          Redraws: {names.join(', ')}. The other layers stay as they are.
        </p>
      )}
      {(own ?? blocker) && <p class="muted hint">{own ?? blocker}</p>}
      <div class="actions">
        <button
          class="primary"
          disabled={blocker !== null || own !== null}
          title={blocker ?? own ?? undefined}
          onClick={() => onEdit(item, 'selected')}
        >
          Regenerate {count} layer{count === 1 ? '' : 's'}
        </button>
        <button
          disabled={blocker !== null || !item.variations.ok}
          title={blocker ?? (item.variations.ok ? 'Keep the background, redraw every layer with a new seed' : item.variations.message)}
          onClick={() => onEdit(item, 'variations')}
        >
          Variations
        </button>
      </div>
      {tiny && (
        <p class="muted hint">
          Tiny test model: new layers are noise, so only the numbers can be checked (kept layers stay byte-equal).
        </p>
      )}
    </div>
  );
}

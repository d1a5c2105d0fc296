/**
 * A selected flat picture (plugin/flat-image.ts): the marks it would be taken apart along, and
 * Decompose, shown only when the bridge's model decomposes (welcome.models[].jobs).
 */
import type { FlatSelection } from './job-desk.ts';
import { LayoutPreview } from './layout-preview.tsx';

export function DecomposePanel({
  item,
  offered,
  blocker,
  tiny,
  onDecompose,
}: {
  item: FlatSelection;
  /** The bridge's model lists `decompose`. */
  offered: boolean;
  /** Why Decompose cannot run now, or null. */
  blocker: string | null;
  tiny: boolean;
  onDecompose: () => void;
}) {
  const marks = item.layout.regions.length - 2;
  return (
    <div class="edit" data-testid="selected-flat" data-frame={item.layout.frameName}>
      <LayoutPreview layout={item.layout} note={item.note} />
      <p class="muted">
        A flat picture with {marks} mark{marks === 1 ? '' : 's'}: Decompose makes a layer of each, plus the background.
      </p>
      {offered ? (
        <div class="actions">
          <button class="primary" disabled={blocker !== null} title={blocker ?? undefined} onClick={onDecompose}>
            Decompose into {marks} layer{marks === 1 ? '' : 's'}
          </button>
        </div>
      ) : (
        <p class="muted hint">{blocker}</p>
      )}
      {offered && blocker && <p class="muted hint">{blocker}</p>}
      {tiny && offered && (
        <p class="muted hint">
          Tiny test model: the layers it returns are noise, not pieces of your picture; the run checks the path end to end.
        </p>
      )}
    </div>
  );
}

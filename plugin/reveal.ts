/**
 * Whether a new result may take the selection and the view (pure; plugin/main.ts applies it).
 *
 * The plugin counts the designer's selection changes in a stamp; the UI records the stamp at
 * Generate. Setting `selection` from the plugin also fires `selectionchange` (figma.on: "The
 * selection on the current page changed"), so a change that selects exactly what the plugin chose
 * is recognised as its own and not counted. A result is selected only while the stamp is still the
 * one of its Generate (then joining the results the plugin selected since, for several frames of
 * one Generate), and the view moves only when the result is not already inside it.
 */
import { contains } from './placement.ts';
import type { Rect } from './scene.ts';

export interface SelectionState {
  /** The designer's selection changes so far. */
  stamp: number;
  /** The ids the plugin itself selected last ([] once the designer changed the selection). */
  own: readonly string[];
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** The state after a `selectionchange` that left `ids` selected. */
export function afterSelectionChange(state: SelectionState, ids: readonly string[]): SelectionState {
  return sameIds(ids, state.own) ? state : { stamp: state.stamp + 1, own: [] };
}

export interface RevealPlan {
  /** The ids to select, or null to leave the selection alone. */
  select: string[] | null;
  zoom: boolean;
  /** The state once the plugin has set `select`. */
  state: SelectionState;
}

export function revealPlan(
  state: SelectionState,
  job: { stamp: number; onCurrentPage: boolean },
  selected: readonly string[],
  result: { id: string; box: Rect | null },
  viewport: Rect,
): RevealPlan {
  if (job.stamp !== state.stamp || !job.onCurrentPage) return { select: null, zoom: false, state };
  const keep = sameIds(selected, state.own) ? selected : [];
  const select = [...keep, result.id];
  return { select, zoom: result.box !== null && !contains(viewport, result.box), state: { stamp: state.stamp, own: select } };
}

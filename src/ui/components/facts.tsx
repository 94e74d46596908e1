/** A description list of label → value pairs, laid out as a two-column grid (each pair in a div, which HTML allows in a dl). */
import type { ComponentChildren } from 'preact';

export function Facts({ children }: { children: ComponentChildren }) {
  return <dl class="facts">{children}</dl>;
}

export function Fact({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

/** A value that may be missing: an em dash then, so an empty cell reads as "none" rather than "not loaded". */
export function OrDash({ value }: { value: ComponentChildren }) {
  return value === null || value === undefined || value === '' ? <span class="muted">—</span> : <>{value}</>;
}

import type { ComponentChildren } from 'preact';
import { useId } from 'preact/hooks';

/** A page section named by its h2 (aria-labelledby), so assistive tools list it as a region by that name. */
export function Section({ title, class: className, children }: { title: string; class?: string; children: ComponentChildren }) {
  const headingId = useId();
  return (
    <section aria-labelledby={headingId} class={className}>
      <h2 id={headingId}>{title}</h2>
      {children}
    </section>
  );
}

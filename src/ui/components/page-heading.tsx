/**
 * A page's h1, which also names the browser tab ("Repositories · skiff"). It takes focus after a
 * client-side navigation (App does that), so it is focusable by script only (tabIndex -1).
 */
import type { ComponentChildren } from 'preact';
import { useEffect } from 'preact/hooks';

export function PageHeading({ title, children }: { title: string; children?: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · skiff`;
  }, [title]);
  return (
    <h1 tabIndex={-1} class="page-heading">
      {children ?? title}
    </h1>
  );
}

/**
 * A wide table's container: it scrolls sideways on a narrow window rather than squeezing columns.
 * While it does scroll it is focusable, so keyboard users can scroll it too (axe's
 * scrollable-region-focusable); otherwise it stays out of the tab order.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export function ScrollBox({ children }: { children: ComponentChildren }) {
  const box = useRef<HTMLDivElement>(null);
  const [scrolls, setScrolls] = useState(false);
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const check = () => setScrolls(element.scrollWidth > element.clientWidth + 1);
    const observer = new ResizeObserver(check);
    observer.observe(element);
    if (element.firstElementChild) observer.observe(element.firstElementChild);
    return () => observer.disconnect();
  }, []);
  return (
    <div class="scroll-box" ref={box} tabIndex={scrolls ? 0 : undefined}>
      {children}
    </div>
  );
}

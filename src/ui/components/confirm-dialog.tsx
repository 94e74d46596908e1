/**
 * "Are you sure?" for destructive actions: a native modal <dialog> (focus trapped, Escape cancels,
 * the page behind inert), named by its heading. Mounted while asking; the action's error shows
 * inside it, so the user can retry or cancel.
 */
import type { ComponentChildren } from 'preact';
import { useId, useLayoutEffect, useRef } from 'preact/hooks';
import { ErrorAlert } from './error-alert.tsx';

export interface ConfirmDialogProps {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  /** The confirm button's text while the action runs ("Deleting…"). */
  busyLabel: string;
  busy: boolean;
  error: unknown;
  onConfirm(): void;
  onCancel(): void;
}

export function ConfirmDialog({ title, children, confirmLabel, busyLabel, busy, error, onConfirm, onCancel }: ConfirmDialogProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const textId = useId();
  // Set when this component closes the dialog itself, whose `close` event then is no cancel.
  const unmounting = useRef(false);
  useLayoutEffect(() => {
    const element = dialog.current;
    element?.showModal();
    // Closed before it leaves the page, so the browser gives focus back to what opened it.
    return () => {
      unmounting.current = true;
      if (element?.open) element.close();
    };
  }, []);
  return (
    <dialog
      ref={dialog}
      class="confirm"
      aria-labelledby={titleId}
      aria-describedby={textId}
      onCancel={(event) => {
        // Escape while the action runs: keep the dialog, its outcome shows there.
        if (busy) event.preventDefault();
      }}
      onClose={() => {
        if (!unmounting.current) onCancel();
      }}
    >
      <h2 id={titleId}>{title}</h2>
      <div id={textId}>{children}</div>
      <ErrorAlert error={error} />
      <div class="dialog-buttons">
        <button type="button" class="danger" disabled={busy} onClick={onConfirm}>
          {busy ? busyLabel : confirmLabel}
        </button>
        <button type="button" autoFocus disabled={busy} onClick={onCancel}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

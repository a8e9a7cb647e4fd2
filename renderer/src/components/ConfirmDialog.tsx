import { useEffect, useRef, useState } from 'react';
import type { KeyboardEvent, ReactNode } from 'react';
import { createPortal } from 'react-dom';
import { useApp } from '../store/context.js';

interface Props {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  confirmTestId?: string;
  onConfirm(): void;
  onCancel(): void;
}

/**
 * A modal confirmation: focus starts on Cancel, Escape cancels, Tab stays inside, and
 * the rest of the page is aria-hidden and inert while it is open. When it closes
 * (Escape, Cancel or the confirm button) App gives the focus back to the control
 * that had it when the dialog opened, or to the screen when that control is gone.
 */
export function ConfirmDialog({ title, children, confirmLabel, confirmTestId, onConfirm, onCancel }: Props) {
  const setModalOpen = useApp((s) => s.setModalOpen);
  const cancelRef = useRef<HTMLButtonElement>(null);
  const dialogRef = useRef<HTMLDivElement>(null);
  // Read while rendering, before the dialog takes the focus.
  const [opener] = useState(() => (document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null));

  useEffect(() => {
    setModalOpen(true, opener);
    cancelRef.current?.focus();
    return () => setModalOpen(false);
  }, [setModalOpen, opener]);

  function onKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    if (e.key === 'Escape') {
      e.preventDefault();
      onCancel();
      return;
    }
    if (e.key !== 'Tab' || dialogRef.current === null) return;
    const focusable = Array.from(dialogRef.current.querySelectorAll<HTMLElement>('button'));
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last?.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first?.focus();
    }
  }

  return createPortal(
    <div className="backdrop">
      <div
        ref={dialogRef}
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="dialog-title"
        aria-describedby="dialog-body"
        onKeyDown={onKeyDown}
      >
        <h2 id="dialog-title">{title}</h2>
        <div id="dialog-body">{children}</div>
        <div className="button-row">
          <button type="button" ref={cancelRef} onClick={onCancel}>
            Cancel
          </button>
          <button type="button" className="danger" data-testid={confirmTestId} onClick={onConfirm}>
            {confirmLabel}
          </button>
        </div>
      </div>
    </div>,
    document.body,
  );
}

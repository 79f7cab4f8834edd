// A button whose action needs a second, explicit yes: it opens a dialog that says what will
// happen. Used for cancel and for every live command.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

interface Props {
  label: string;
  question: string;
  /** Extra inputs shown in the dialog (e.g. the new learning rate). */
  children?: ComponentChildren;
  onConfirm: () => Promise<void> | void;
  danger?: boolean;
  disabled?: boolean;
}

export function ConfirmButton({ label, question, children, onConfirm, danger, disabled }: Props) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    if (open) dialog.current?.showModal();
    else dialog.current?.close();
  }, [open]);
  const confirm = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      setOpen(false);
    }
  };
  return (
    <>
      <button type="button" class={danger ? "danger" : ""} disabled={disabled} onClick={() => setOpen(true)}>
        {label}
      </button>
      {open && (
        <dialog ref={dialog} class="confirm" onClose={() => setOpen(false)} aria-label={label}>
          <form method="dialog" onSubmit={confirm}>
            <p>{question}</p>
            {children}
            <div class="dialog-buttons">
              <button type="button" onClick={() => setOpen(false)}>
                Back
              </button>
              <button type="submit" class={danger ? "danger" : "primary"} disabled={busy}>
                {busy ? "Sending…" : `Confirm: ${label}`}
              </button>
            </div>
          </form>
        </dialog>
      )}
    </>
  );
}

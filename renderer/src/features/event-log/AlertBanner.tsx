import { escapeControlChars } from '../../../../app/shared/control-chars.js';
import { useApp } from '../../store/context.js';

/** A visible alert for corrupted / no-space events, on every screen until dismissed. */
export function AlertBanner() {
  const alert = useApp((s) => s.alert);
  const dismiss = useApp((s) => s.dismissAlert);
  const setScreen = useApp((s) => s.setScreen);
  if (alert === null) return null;
  return (
    <div className="alert-banner" role="alert" data-testid="event-alert">
      <span>{escapeControlChars(alert.text)}</span>
      <span className="actions">
        <button type="button" className="small" onClick={() => setScreen('events')}>
          Open the timeline
        </button>
        <button
          type="button"
          className="small"
          onClick={() => {
            dismiss();
            // The banner and this button go away: the focus goes to the screen, not to <body>.
            document.getElementById('main')?.focus();
          }}
        >
          Dismiss
        </button>
      </span>
    </div>
  );
}

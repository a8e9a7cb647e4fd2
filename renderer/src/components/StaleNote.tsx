import { useApp } from '../store/context.js';

/** Under a screen title while the helper is gone: what is listed is the last known state. */
export function StaleNote() {
  const down = useApp((s) => s.helper.state === 'lost' || s.helper.state === 'stopped');
  if (!down) return null;
  return (
    <p className="stale-note" data-testid="stale-note">
      Last known state: the helper is not connected, so this list may be out of date.
    </p>
  );
}

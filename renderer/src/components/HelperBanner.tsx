import { useApp } from '../store/context.js';
import { ActionButton } from './ActionButton.js';

/**
 * Shown on every screen while the helper is lost or stopped: what happened, that
 * nothing typed is lost, and a Reconnect button (busy while a reconnect runs).
 */
export function HelperBanner() {
  const helper = useApp((s) => s.helper);
  const reconnecting = useApp((s) => s.reconnecting);
  const reconnect = useApp((s) => s.reconnect);
  const down = helper.state === 'lost' || helper.state === 'stopped';
  if (!down && !reconnecting) return null;
  return (
    <div className="alert-banner helper-banner" role="alert" data-testid="helper-banner">
      <span>
        {reconnecting ? (
          'Reconnecting to the helper…'
        ) : (
          <>
            <strong>The helper is not connected.</strong> {helper.message ?? ''}{' '}
            <span className="banner-note">Actions are paused; your form entries are kept.</span>
          </>
        )}
      </span>
      <span className="actions">
        <ActionButton type="button" className="small" data-testid="reconnect" disabled={reconnecting} onClick={() => void reconnect().then(keepFocusAfterReconnect)}>
          {reconnecting ? 'Reconnecting…' : 'Reconnect'}
        </ActionButton>
      </span>
    </div>
  );
}

/** A successful reconnect removes the banner and its button: the focus goes to the screen, not to the page body. */
function keepFocusAfterReconnect(): void {
  requestAnimationFrame(() => {
    const active = document.activeElement;
    if (active === null || active === document.body) document.getElementById('main')?.focus();
  });
}

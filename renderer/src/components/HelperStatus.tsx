import { useApp } from '../store/context.js';

function versionText(v: { major: number; minor: number; revision: number; build: number } | null): string {
  return v === null ? '' : ` ${v.major}.${v.minor}.${v.revision}.${v.build}`;
}

/** The helper's state and driver in the header, with Reconnect when the helper is gone. */
export function HelperStatus() {
  const helper = useApp((s) => s.helper);
  const status = useApp((s) => s.status);
  const reconnect = useApp((s) => s.reconnect);
  const driver =
    status?.driver === 'kernel' ? 'kernel module' : status?.driver === 'embedded' ? 'embedded engine' : 'no driver';
  return (
    <div className="helper-status">
      <span className={`dot dot-${helper.state}`} aria-hidden="true" />
      <span data-testid="helper-state">
        Helper {helper.state}
        {helper.state === 'connected' ? ` · ${driver}${versionText(status?.driverVersion ?? null)}` : ''}
      </span>
      {helper.message ? <span className="muted"> — {helper.message}</span> : null}
      {helper.state === 'lost' || helper.state === 'stopped' ? (
        <button type="button" className="small" onClick={() => void reconnect()}>
          Reconnect
        </button>
      ) : null}
    </div>
  );
}

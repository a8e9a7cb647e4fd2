import { useApp } from '../store/context.js';

function versionText(v: { major: number; minor: number; revision: number; build: number } | null): string {
  return v === null ? '' : ` ${v.major}.${v.minor}.${v.revision}.${v.build}`;
}

/** The helper's state, driver and kernel module health line in the header (the banner below offers Reconnect when it is gone). */
export function HelperStatus() {
  const helper = useApp((s) => s.helper);
  const status = useApp((s) => s.status);
  const driver =
    status?.driver === 'kernel' ? 'kernel module' : status?.driver === 'embedded' ? 'embedded engine' : 'no driver';
  return (
    <div className="helper-status">
      <span className={`dot dot-${helper.state}`} aria-hidden="true" />
      <span data-testid="helper-state">
        Helper {helper.state}
        {helper.state === 'connected' ? ` · ${driver}${versionText(status?.driverVersion ?? null)}` : ''}
      </span>
      {helper.state === 'connected' && status?.kernelModule ? (
        <span
          className={`module-health ${status.kernelModule.advice ? 'module-health-warn' : ''}`}
          data-testid="module-health"
          title={status.kernelModule.advice ?? undefined}
        >
          Kernel module: {status.kernelModule.summary}
          {status.kernelModule.advice ? ` (${status.kernelModule.advice})` : ''}
        </span>
      ) : null}
    </div>
  );
}

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
        status.kernelModule.advice ? (
          // The advice is long: one line in the header until opened, so the header stays short.
          <details className="module-health module-health-warn" data-testid="module-health">
            <summary>Kernel module: {status.kernelModule.summary}</summary>
            {` (${status.kernelModule.advice})`}
          </details>
        ) : (
          <span className="module-health" data-testid="module-health">
            Kernel module: {status.kernelModule.summary}
          </span>
        )
      ) : null}
    </div>
  );
}

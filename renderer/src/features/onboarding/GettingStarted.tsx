import { useApp } from '../../store/context.js';
import { selectableIds } from '../devices/selectable.js';
import { nextStep, setupSteps } from './setup-steps.js';

/**
 * The first-run guide (until a snapshot exists): devices -> storage -> snapshot, each
 * step ticked when done, with a button to the screen of the next one.
 */
export function GettingStarted() {
  const deviceCount = useApp((s) => selectableIds(s.devices, s.status?.driver ?? null).length);
  const selectedCount = useApp((s) => s.selectedDevices.length);
  const allocated = useApp((s) => s.allocation !== null);
  // Another window may have made one: a device in a snapshot counts too (the device list is polled here).
  const snapshotCount = useApp((s) => Math.max(s.snapshots.length, s.devices.some((d) => d.snapshotId !== null) ? 1 : 0));
  const loaded = useApp((s) => s.snapshotsLoaded);
  const screen = useApp((s) => s.screen);
  const openScreen = useApp((s) => s.openScreen);
  if (!loaded || snapshotCount > 0) return null;
  const steps = setupSteps({ deviceCount, selectedCount, allocated, snapshotCount });
  const next = nextStep(steps);
  return (
    <section className="getting-started" aria-labelledby="getting-started-title" data-testid="getting-started">
      <h3 id="getting-started-title">Getting started: three steps to a snapshot</h3>
      <ol>
        {steps.map((step, i) => (
          <li key={step.id} className={step.done ? 'step-done' : step === next ? 'step-next' : undefined} data-testid={`step-${step.id}`} data-done={step.done}>
            <span className="step-mark" aria-hidden="true">
              {step.done ? '✓' : i + 1}
            </span>
            <span>
              <strong>{step.title}</strong>
              <span className="visually-hidden">{step.done ? ' (done)' : step === next ? ' (next)' : ''}</span>: {step.text}{' '}
              {step === next && step.screen !== screen ? (
                <button type="button" className="small" data-testid={`step-go-${step.id}`} onClick={() => openScreen(step.screen)}>
                  {step.action}
                </button>
              ) : null}
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
}

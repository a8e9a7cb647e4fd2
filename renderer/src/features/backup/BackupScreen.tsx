import { useEffect, useRef } from 'react';
import { useApp } from '../../store/context.js';
import { WIZARD_STEPS } from '../../store/backup-slice.js';
import type { WizardStep } from '../../store/backup-slice.js';
import { DevicesStep, KindStep, ReleaseStep, RunStep, SnapshotStep, StorageStep, TargetStep, VerifyStep } from './WizardSteps.js';

export const STEP_LABELS: Record<WizardStep, string> = {
  devices: 'Devices',
  storage: 'Difference storage',
  snapshot: 'Snapshot',
  target: 'Target folder',
  kind: 'Kind',
  run: 'Run',
  verify: 'Verify',
  release: 'Release the snapshot',
};

/** Steps that cannot be gone back from: the snapshot is taken, the backup has started. */
function backAllowed(step: WizardStep, snapshotTaken: boolean, backupStarted: boolean): boolean {
  if (step === 'devices') return false;
  if (step === 'snapshot' || step === 'target') return !snapshotTaken || step === 'target';
  if (step === 'kind') return true;
  return !backupStarted;
}

function CurrentStep({ step, next }: { step: WizardStep; next(): void }) {
  switch (step) {
    case 'devices':
      return <DevicesStep next={next} />;
    case 'storage':
      return <StorageStep next={next} />;
    case 'snapshot':
      return <SnapshotStep next={next} />;
    case 'target':
      return <TargetStep next={next} />;
    case 'kind':
      return <KindStep next={next} />;
    case 'run':
      return <RunStep next={next} />;
    case 'verify':
      return <VerifyStep next={next} />;
    case 'release':
      return <ReleaseStep />;
  }
}

/** The Backup wizard: devices → difference storage → snapshot → target folder → kind → run → verify → release. */
export function BackupScreen() {
  const wizard = useApp((s) => s.wizard);
  const setWizard = useApp((s) => s.setWizard);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const first = useRef(true);
  const index = WIZARD_STEPS.indexOf(wizard.step);

  // Moving to another step puts the keyboard focus on its heading.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    headingRef.current?.focus();
  }, [wizard.step]);

  const go = (step: WizardStep | undefined) => {
    if (step !== undefined) setWizard({ step });
  };
  const canGoBack = backAllowed(wizard.step, wizard.snapshotId !== null && !wizard.released, wizard.backupJobId !== null);

  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Backup</h2>
      <ol className="wizard-steps" aria-label="Backup steps" data-testid="wizard-steps">
        {WIZARD_STEPS.map((s, i) => (
          <li key={s} aria-current={s === wizard.step ? 'step' : undefined} className={i < index ? 'step-done' : undefined}>
            {i + 1}. {STEP_LABELS[s]}
          </li>
        ))}
      </ol>
      <div className="panel wizard-step" data-testid={`wizard-step-${wizard.step}`}>
        <h3 ref={headingRef} tabIndex={-1} id="wizard-step-title">
          Step {index + 1} of {WIZARD_STEPS.length}: {STEP_LABELS[wizard.step]}
        </h3>
        <CurrentStep step={wizard.step} next={() => go(WIZARD_STEPS[index + 1])} />
        {canGoBack ? (
          <p>
            <button type="button" className="link" data-testid="wizard-back" onClick={() => go(WIZARD_STEPS[index - 1])}>
              Back
            </button>
          </p>
        ) : null}
      </div>
    </section>
  );
}

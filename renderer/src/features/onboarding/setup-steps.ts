/** The first-run guide: devices -> storage -> snapshot, and which steps are done (pure). */
import type { Screen } from '../../store/ui-slice.js';

export interface SetupInput {
  deviceCount: number;
  selectedCount: number;
  allocated: boolean;
  snapshotCount: number;
}

export interface SetupStep {
  id: 'devices' | 'storage' | 'snapshot';
  title: string;
  /** What to do (or what was done). */
  text: string;
  done: boolean;
  screen: Screen;
  /** The button that opens the step's screen. */
  action: string;
}

export function setupSteps(input: SetupInput): SetupStep[] {
  const { deviceCount, selectedCount, allocated, snapshotCount } = input;
  return [
    {
      id: 'devices',
      title: 'Choose the devices',
      text:
        selectedCount > 0
          ? `${selectedCount} device${selectedCount > 1 ? 's' : ''} ticked.`
          : deviceCount > 0
            ? 'Tick the devices to snapshot together on the Devices screen.'
            : 'Create a lab disk (or add an image) on the Devices screen, then tick it.',
      done: selectedCount > 0,
      screen: 'devices',
      action: 'Choose devices',
    },
    {
      id: 'storage',
      title: 'Allocate difference storage',
      text: allocated
        ? 'Storage allocated.'
        : 'Pick a directory and a size limit for the copies of overwritten blocks.',
      done: allocated,
      screen: 'storage',
      action: 'Choose storage',
    },
    {
      id: 'snapshot',
      title: 'Create and take the snapshot',
      text: snapshotCount > 0 ? 'A snapshot exists.' : 'Create the snapshot, then Take it to get its images.',
      done: snapshotCount > 0,
      screen: 'snapshots',
      action: 'Make a snapshot',
    },
  ];
}

/** The first step not done, or null when all are. */
export function nextStep(steps: SetupStep[]): SetupStep | null {
  return steps.find((s) => !s.done) ?? null;
}

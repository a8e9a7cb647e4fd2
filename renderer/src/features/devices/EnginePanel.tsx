import { LabDiskForm } from './LabDiskForm.js';
import { AddImageForm } from './AddImageForm.js';
import { WorkloadPanel } from './WorkloadPanel.js';

/** What only the embedded engine has: lab disks, images, a write workload. */
export function EnginePanel() {
  return (
    <div className="panels">
      <LabDiskForm />
      <AddImageForm />
      <WorkloadPanel />
    </div>
  );
}

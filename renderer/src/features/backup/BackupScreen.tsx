import { ScreenLink } from '../../components/ScreenLink.js';

export function BackupScreen() {
  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Backup</h2>
      <div className="callout" data-testid="backup-unavailable">
        <p>
          <strong>Backups are not available yet in this version.</strong> Full and incremental image backups,
          verification and restore are planned.
        </p>
        <p>Meanwhile you can copy a snapshot's images yourself:</p>
        <ol>
          <li>
            Create and take a snapshot. <ScreenLink screen="snapshots">Open the snapshot list</ScreenLink>
          </li>
          <li>Copy the image's NBD URI with its Copy button.</li>
          <li>
            Read it with any NBD client, for example{' '}
            <code className="command">nbdcopy &apos;NBD-URI&apos; disk1-backup.img</code>
          </li>
          <li>Destroy the snapshot when the copy is done, so that the difference storage is freed.</li>
        </ol>
        <p className="muted small-text">
          The CBT heatmap shows which blocks changed since a given snapshot: what an incremental backup would copy.
        </p>
      </div>
    </section>
  );
}

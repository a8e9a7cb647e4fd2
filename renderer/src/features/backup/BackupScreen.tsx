export function BackupScreen() {
  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Backup</h2>
      <p data-testid="backup-unavailable">
        Backups are not available yet. Full and incremental image backups, verification and restore will come in a later
        version. Meanwhile a taken snapshot's images can be read through their NBD URIs (Snapshots screen).
      </p>
    </section>
  );
}

import { useEffect, useLayoutEffect, useRef } from 'react';
import { escapeControlChars } from '../../app/shared/control-chars.js';
import { HelperBanner } from './components/HelperBanner.js';
import { HelperStatus } from './components/HelperStatus.js';
import { Sidebar } from './components/Sidebar.js';
import { BackupScreen } from './features/backup/BackupScreen.js';
import { CatalogScreen } from './features/backup/CatalogScreen.js';
import { JobBar } from './features/backup/JobBar.js';
import { DevicesScreen } from './features/devices/DevicesScreen.js';
import { AlertBanner } from './features/event-log/AlertBanner.js';
import { EventsScreen } from './features/event-log/EventsScreen.js';
import { HeatmapScreen } from './features/heatmap/HeatmapScreen.js';
import { SnapshotsScreen } from './features/snapshots/SnapshotsScreen.js';
import { StorageScreen } from './features/storage/StorageScreen.js';
import { useApp, useAppStoreApi } from './store/context.js';
import type { Screen } from './store/ui-slice.js';

function CurrentScreen({ screen }: { screen: Screen }) {
  switch (screen) {
    case 'devices':
      return <DevicesScreen />;
    case 'storage':
      return <StorageScreen />;
    case 'snapshots':
      return <SnapshotsScreen />;
    case 'events':
      return <EventsScreen />;
    case 'heatmap':
      return <HeatmapScreen />;
    case 'backup':
      return <BackupScreen />;
    case 'catalog':
      return <CatalogScreen />;
  }
}

function StatusLine() {
  const notice = useApp((s) => s.notice);
  return (
    <div className={`status-line${notice?.kind === 'error' ? ' status-error' : ''}`} role="status" data-testid="status-line">
      {escapeControlChars(notice?.text ?? '')}
    </div>
  );
}

export function App() {
  const store = useAppStoreApi();
  const screen = useApp((s) => s.screen);
  const modalOpen = useApp((s) => s.modalOpen);
  const focusRequest = useApp((s) => s.focusRequest);
  const mainRef = useRef<HTMLElement>(null);

  useEffect(() => {
    const s = store.getState();
    void s.refreshStatus();
    void s.refreshDevices();
    void s.refreshSnapshots();
    void s.refreshFilesystems();
    void s.refreshJobs();
    void s.loadAllocation();
    void s.loadEventHistory();
  }, [store]);

  // A link inside a screen opened another one: the focus follows, to its top.
  useEffect(() => {
    if (focusRequest > 0) mainRef.current?.focus();
  }, [focusRequest]);

  // Another screen opens at its top (the main area is the scroll container and would
  // keep the previous screen's offset).
  useLayoutEffect(() => {
    if (mainRef.current !== null) mainRef.current.scrollTop = 0;
  }, [screen]);

  // A dialog closed: the page is no longer inert (this runs after that commit), so the
  // control that opened it can take the focus back; the screen takes it when that
  // control is gone or unavailable.
  const wasModal = useRef(false);
  useLayoutEffect(() => {
    if (modalOpen) {
      wasModal.current = true;
      return;
    }
    if (!wasModal.current) return;
    wasModal.current = false;
    const opener = store.getState().modalOpener;
    if (opener !== null && opener.isConnected && !(opener instanceof HTMLButtonElement && opener.disabled)) opener.focus();
    if (document.activeElement === null || document.activeElement === document.body) mainRef.current?.focus();
  }, [modalOpen, store]);

  return (
    <div className="app" aria-hidden={modalOpen || undefined} inert={modalOpen}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <h1>Blksnap Manager</h1>
        <HelperStatus />
      </header>
      <HelperBanner />
      <AlertBanner />
      <JobBar />
      <div className="body">
        <Sidebar />
        <main id="main" className="main" tabIndex={-1} ref={mainRef}>
          <CurrentScreen screen={screen} />
        </main>
      </div>
      <StatusLine />
    </div>
  );
}

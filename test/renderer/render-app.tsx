/** Renders the whole App (jsdom) on a fake API with an embedded-engine status; returns the fake and the store. */
import { render } from '@testing-library/react';
import { ok } from '../../app/shared/result.js';
import type { AppStatus } from '../../app/shared/types.js';
import { App } from '../../renderer/src/App.js';
import { createAppStore } from '../../renderer/src/store/app-store.js';
import type { AppStore } from '../../renderer/src/store/app-store.js';
import { StoreProvider } from '../../renderer/src/store/context.js';
import { wireEvents } from '../../renderer/src/store/wire-events.js';
import { createFakeApi } from './fake-api.js';
import type { FakeApi, Handlers } from './fake-api.js';
import { filesystem } from './fixtures.js';

export const EMBEDDED_STATUS: AppStatus = {
  driver: 'embedded',
  driverVersion: { major: 1, minor: 0, revision: 0, build: 0 },
  appVersion: '0.1.0',
  protocolVersion: 1,
  capabilities: [],
  helper: { state: 'connected' },
};

/** The helper on the kernel driver over VAL-7's module (veeamblksnap 7.0.0.0 with bdevfilter). */
export const VAL7_STATUS: AppStatus = {
  ...EMBEDDED_STATUS,
  driver: 'kernel',
  driverVersion: { major: 7, minor: 0, revision: 0, build: 0 },
  kernelModule: {
    loaded: true,
    dialect: 'val7',
    moduleVersion: '7.0.0.0',
    filter: 'bdevfilter',
    bdevfilter: true,
    summary: 'veeamblksnap 7.0.0.0 (VAL-7 dialect) is loaded; bdevfilter is loaded',
    advice: null,
  },
};

export function renderApp(handlers: Handlers = {}): { fake: FakeApi; store: AppStore } {
  const fake = createFakeApi({
    getStatus: () => ok(EMBEDDED_STATUS),
    listDevices: () => ok([]),
    listFilesystems: () => ok([filesystem('/')]),
    listSnapshots: () => ok([]),
    jobsList: () => ok([]),
    ...handlers,
  });
  const store = createAppStore(fake.api, { now: () => 7 });
  wireEvents(fake.api, store);
  render(
    <StoreProvider store={store}>
      <App />
    </StoreProvider>,
  );
  return { fake, store };
}

// @vitest-environment jsdom
import { cleanup, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ok } from '../../../app/shared/result.js';
import { EMBEDDED_STATUS, VAL7_STATUS, renderApp } from '../render-app.js';

afterEach(cleanup);

describe('kernel module health line in the header', () => {
  it('shows the dialect and version of a usable module', async () => {
    renderApp({
      getStatus: () => ok(VAL7_STATUS),
    });
    const line = await screen.findByTestId('module-health');
    expect(line.textContent).toBe('Kernel module: veeamblksnap 7.0.0.0 (VAL-7 dialect) is loaded; bdevfilter is loaded');
    expect(line.className).not.toMatch(/module-health-warn/);
  });

  it('says what to install when no module is found', async () => {
    renderApp({
      getStatus: () =>
        ok({
          ...EMBEDDED_STATUS,
          kernelModule: {
            loaded: false,
            dialect: null,
            moduleVersion: null,
            filter: null,
            bdevfilter: false,
            summary: 'no blksnap kernel module is loaded',
            advice: 'install blksnap-dkms 7.x',
          },
        }),
    });
    const line = await screen.findByTestId('module-health');
    expect(line.textContent).toBe('Kernel module: no blksnap kernel module is loaded (install blksnap-dkms 7.x)');
    expect(line.className).toMatch(/module-health-warn/);
  });

  it('shows no line for a helper that does not report the module', async () => {
    renderApp();
    await waitFor(() => expect(screen.getByTestId('helper-state').textContent).toMatch(/connected/));
    expect(screen.queryByTestId('module-health')).toBeNull();
  });
});

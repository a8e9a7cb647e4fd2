import { describe, expect, it } from 'vitest';
import { helperNotes } from '../../../app/bridge/helper-notes.js';

describe('what npm start says about its helper', () => {
  it('says the helper outlives Ctrl+C, how to reach and stop it, and where the lab disks are', () => {
    const text = helperNotes({ socketPath: '/run/user/1000/blksnap-manager/helper.sock', stateDir: '/home/ann/.local/state/blksnap-manager', defaultSocket: true }).join('\n');
    expect(text).toMatch(/keeps running after Ctrl\+C/);
    expect(text).toContain('listens on /run/user/1000/blksnap-manager/helper.sock');
    expect(text).toContain('npx blksnap-manager devices\n');
    expect(text).toContain('kill $(cat /home/ann/.local/state/blksnap-manager/helper.pid)');
    expect(text).toContain('Lab disks are stored in /home/ann/.local/state/blksnap-manager/lab');
  });

  it('names a socket other than the default, quoted for the shell', () => {
    const text = helperNotes({ socketPath: "/tmp/my dir/it's.sock", stateDir: '/tmp/s t', defaultSocket: false }).join('\n');
    expect(text).toContain(`npx blksnap-manager devices --socket '/tmp/my dir/it'\\''s.sock'`);
    expect(text).toContain(`kill $(cat '/tmp/s t/helper.pid')`);
  });
});

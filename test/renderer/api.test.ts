// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createFakeApi } from './fake-api.js';

const created: string[] = [];

class StubWebSocket {
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(url: string) {
    created.push(url);
  }
  send() {}
  close() {}
}

beforeEach(() => {
  vi.resetModules();
  created.length = 0;
  sessionStorage.clear();
  delete window.blksnap;
  vi.stubGlobal('WebSocket', StubWebSocket);
});

afterEach(() => {
  vi.unstubAllGlobals();
  delete window.blksnap;
  window.history.replaceState(null, '', '/');
});

describe('api.ts', () => {
  it('uses the preload API when window.blksnap exists', async () => {
    const fake = createFakeApi();
    window.blksnap = fake.api;
    const { getApi, getApiMode } = await import('../../renderer/src/api.js');
    expect(getApi()).toBe(fake.api);
    expect(getApiMode()).toBe('electron');
    expect(created).toEqual([]);
  });

  it('browser mode: takes the token from the fragment, keeps it in sessionStorage, clears the address bar', async () => {
    window.history.replaceState(null, '', '/#token=s3cret');
    const { getApi, getApiMode } = await import('../../renderer/src/api.js');
    getApi();
    expect(getApiMode()).toBe('browser');
    expect(created).toEqual([`ws://${window.location.host}/ws?token=s3cret`]);
    expect(sessionStorage.getItem('blksnap-manager.token')).toBe('s3cret');
    expect(window.location.hash).toBe('');
  });

  it('browser mode: a reload without the fragment reuses the stored token', async () => {
    sessionStorage.setItem('blksnap-manager.token', 'kept');
    const { getApi } = await import('../../renderer/src/api.js');
    getApi();
    expect(created).toEqual([`ws://${window.location.host}/ws?token=kept`]);
  });
});

describe('sessionSelectionMemory', () => {
  it('keeps the selection in sessionStorage and ignores what is not a list of names', async () => {
    const { sessionSelectionMemory } = await import('../../renderer/src/api.js');
    window.sessionStorage.clear();
    const memory = sessionSelectionMemory();
    expect(memory.load()).toEqual([]);
    memory.save(['disk1', 'disk2']);
    expect(sessionSelectionMemory().load()).toEqual(['disk1', 'disk2']);
    window.sessionStorage.setItem('blksnap-manager.selected-devices', '{broken');
    expect(memory.load()).toEqual([]);
    window.sessionStorage.setItem('blksnap-manager.selected-devices', '["a", 3, null]');
    expect(memory.load()).toEqual(['a']);
  });
});

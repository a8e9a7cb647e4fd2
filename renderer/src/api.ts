/**
 * The only file that touches the window API. Electron: the preload's `window.blksnap`
 * (typed as the contract). Browser mode: a WebSocket to `/ws?token=...` on the same
 * origin, with the token taken from the page URL (`#token=` or `?token=`) and kept in
 * sessionStorage.
 */
import type { BlksnapApi } from '../../app/shared/contract.js';
import { wsUrl } from '../../app/shared/wire.js';
import { TOKEN_STORAGE_KEY, tokenFromUrl, urlWithoutToken } from './api/token.js';
import { createWsClient } from './api/ws-client.js';
import type { SocketLike } from './api/ws-client.js';

declare global {
  interface Window {
    blksnap?: BlksnapApi;
  }
}

export type ApiMode = 'electron' | 'browser';

function browserToken(): string {
  const fromUrl = tokenFromUrl(window.location.href);
  if (fromUrl !== null) {
    try {
      window.sessionStorage.setItem(TOKEN_STORAGE_KEY, fromUrl);
    } catch {
      // storage disabled: the token still works for this page load
    }
    window.history.replaceState(window.history.state, '', urlWithoutToken(window.location.href));
    return fromUrl;
  }
  try {
    return window.sessionStorage.getItem(TOKEN_STORAGE_KEY) ?? '';
  } catch {
    return '';
  }
}

function connect(): { api: BlksnapApi; mode: ApiMode } {
  if (window.blksnap !== undefined) return { api: window.blksnap, mode: 'electron' };
  const client = createWsClient({
    url: wsUrl(window.location.origin, browserToken()),
    createSocket: (url) => new WebSocket(url) as unknown as SocketLike,
  });
  return { api: client.api, mode: 'browser' };
}

let connection: { api: BlksnapApi; mode: ApiMode } | null = null;

/** The contract API for this page (created on first use). */
export function getApi(): BlksnapApi {
  connection ??= connect();
  return connection.api;
}

export function getApiMode(): ApiMode {
  connection ??= connect();
  return connection.mode;
}

const SELECTION_KEY = 'blksnap-manager.selected-devices';

/** The Devices selection in sessionStorage: it survives a reload of this tab (not shared with other tabs). */
export function sessionSelectionMemory(): { load(): string[]; save(ids: string[]): void } {
  return {
    load() {
      try {
        const parsed: unknown = JSON.parse(window.sessionStorage.getItem(SELECTION_KEY) ?? '[]');
        return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : [];
      } catch {
        return [];
      }
    },
    save(ids) {
      try {
        window.sessionStorage.setItem(SELECTION_KEY, JSON.stringify(ids));
      } catch {
        // storage refused (private mode, quota): the selection lasts until the reload
      }
    },
  };
}

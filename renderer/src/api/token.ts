/** Browser mode: where the page finds its access token. Pure (no window access). */

import { TOKEN_PARAM } from '../../../app/shared/wire.js';

/** sessionStorage key of the token. */
export const TOKEN_STORAGE_KEY = 'blksnap-manager.token';

/** The token in a page URL: `#token=...` (preferred: never sent to the server in requests) or `?token=...`. */
export function tokenFromUrl(href: string): string | null {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  const fragment = new URLSearchParams(url.hash.startsWith('#') ? url.hash.slice(1) : url.hash);
  const fromFragment = fragment.get(TOKEN_PARAM);
  if (fromFragment) return fromFragment;
  const fromQuery = url.searchParams.get(TOKEN_PARAM);
  return fromQuery || null;
}

/** The URL without the token (to replace the address bar, so the token is not left visible or bookmarked). */
export function urlWithoutToken(href: string): string {
  const url = new URL(href);
  url.searchParams.delete(TOKEN_PARAM);
  const fragment = new URLSearchParams(url.hash.startsWith('#') ? url.hash.slice(1) : url.hash);
  fragment.delete(TOKEN_PARAM);
  const rest = fragment.toString();
  url.hash = rest ? `#${rest}` : '';
  return url.toString();
}

import { describe, expect, it } from 'vitest';
import { tokenFromUrl, urlWithoutToken } from '../../../renderer/src/api/token.js';

describe('token from the page URL', () => {
  it('prefers the fragment, then the query', () => {
    expect(tokenFromUrl('http://127.0.0.1:8080/#token=abc')).toBe('abc');
    expect(tokenFromUrl('http://127.0.0.1:8080/?token=q#token=f')).toBe('f');
    expect(tokenFromUrl('http://127.0.0.1:8080/?token=q')).toBe('q');
    expect(tokenFromUrl('http://127.0.0.1:8080/')).toBeNull();
    expect(tokenFromUrl('http://127.0.0.1:8080/?token=')).toBeNull();
    expect(tokenFromUrl('not a url')).toBeNull();
  });

  it('removes the token from the URL and keeps the rest', () => {
    expect(urlWithoutToken('http://h:1/?token=q&x=1#token=f&y=2')).toBe('http://h:1/?x=1#y=2');
    expect(urlWithoutToken('http://h:1/#token=f')).toBe('http://h:1/');
  });
});

import { useEffect, useRef } from 'react';

/** Calls `fn` now and every `intervalMs` while enabled and the page is visible. */
export function usePolling(fn: () => unknown, intervalMs: number, enabled = true): void {
  const ref = useRef(fn);
  useEffect(() => {
    ref.current = fn;
  }, [fn]);
  useEffect(() => {
    if (!enabled) return undefined;
    const tick = () => {
      if (document.visibilityState !== 'hidden') void ref.current();
    };
    tick();
    const timer = setInterval(tick, intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, enabled]);
}

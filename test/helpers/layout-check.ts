/**
 * Geometry checks of the page in the browser (run through page.evaluate): which
 * interactive controls stick out of the box that clips them horizontally, and what
 * stays in view while the main area scrolls. Plain expressions, so they run
 * unchanged in the page whatever the test's TypeScript settings.
 */
import type { Page } from 'playwright-core';

/** A short name for an element in a message: tag, test id or label, and its text. */
const DESCRIBE = `(el) => {
  const id = el.getAttribute('data-testid') ?? el.getAttribute('aria-label') ?? el.id ?? '';
  const text = (el.textContent ?? '').trim().replace(/\\s+/g, ' ').slice(0, 40);
  return el.tagName.toLowerCase() + (id ? '[' + id + ']' : '') + (text ? ' "' + text + '"' : '');
}`;

/**
 * Every visible button, input, select, textarea, link and focusable element must lie
 * horizontally inside its nearest ancestor that clips (overflow other than visible),
 * or inside the viewport when none does; the page itself must not be wider than the
 * viewport, and no scroll container may scroll sideways. Returns the problems found.
 */
export async function horizontalClipping(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {
    const describe = ${DESCRIBE};
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) problems.push('the page is ' + root.scrollWidth + ' px wide in a ' + root.clientWidth + ' px viewport');
    const controls = document.querySelectorAll('button, input, select, textarea, summary, a[href], [role="button"], [tabindex]:not([tabindex="-1"])');
    for (const el of controls) {
      // Off screen by design until it has the focus.
      if (el.closest('.skip-link')) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (getComputedStyle(el).visibility === 'hidden') continue;
      let box = { left: 0, right: root.clientWidth, name: 'the viewport' };
      for (let a = el.parentElement; a !== null; a = a.parentElement) {
        if (getComputedStyle(a).overflowX === 'visible') continue;
        const ar = a.getBoundingClientRect();
        box = { left: ar.left + a.clientLeft, right: ar.left + a.clientLeft + a.clientWidth, name: describe(a).slice(0, 60) };
        break;
      }
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
        problems.push(describe(el) + ' spans x ' + Math.round(r.left) + '..' + Math.round(r.right) + ', outside ' + box.name + ' (' + Math.round(box.left) + '..' + Math.round(box.right) + ')');
      }
    }
    for (const el of document.querySelectorAll('*')) {
      const ox = getComputedStyle(el).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && el.scrollWidth > el.clientWidth + 1) {
        problems.push(describe(el).slice(0, 60) + ' scrolls sideways: ' + el.scrollWidth + ' px of content in ' + el.clientWidth + ' px');
      }
    }
    return problems;
  })()`);
}

export interface Rect {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

export interface ScrolledView {
  viewport: { width: number; height: number };
  /** The window's own scroll offset (0 when only the main area scrolls). */
  windowScrollY: number;
  main: { scrollTop: number; scrollHeight: number; clientHeight: number };
  header: Rect;
  alert: Rect | null;
  statusLine: Rect;
  nav: Rect[];
}

/** Scrolls the main area to its end and reports where the fixed parts of the window are. */
export async function scrollMainToEnd(page: Page): Promise<ScrolledView> {
  return page.evaluate<ScrolledView>(`(() => {
    const main = document.getElementById('main');
    main.scrollTop = main.scrollHeight;
    window.scrollTo(0, document.documentElement.scrollHeight);
    const rect = (el) => { const r = el.getBoundingClientRect(); return { top: r.top, bottom: r.bottom, left: r.left, right: r.right }; };
    const alert = document.querySelector('[data-testid="event-alert"]');
    return {
      viewport: { width: window.innerWidth, height: window.innerHeight },
      windowScrollY: Math.max(window.scrollY, document.documentElement.scrollTop, document.body.scrollTop),
      main: { scrollTop: main.scrollTop, scrollHeight: main.scrollHeight, clientHeight: main.clientHeight },
      header: rect(document.querySelector('.topbar')),
      alert: alert === null ? null : rect(alert),
      statusLine: rect(document.querySelector('[data-testid="status-line"]')),
      nav: Array.from(document.querySelectorAll('[data-testid^="nav-"]')).map(rect),
    };
  })()`);
}

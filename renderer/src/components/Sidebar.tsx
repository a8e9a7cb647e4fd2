import type { KeyboardEvent } from 'react';
import { useApp } from '../store/context.js';
import { SCREENS } from '../store/ui-slice.js';
import type { Screen } from '../store/ui-slice.js';

export const SCREEN_LABELS: Record<Screen, string> = {
  devices: 'Devices',
  storage: 'Difference storage',
  snapshots: 'Snapshots',
  events: 'Events',
  heatmap: 'CBT heatmap',
  backup: 'Backup',
  catalog: 'Catalog',
};

/** Sidebar navigation: Tab into it, arrow keys / Home / End move between screens. */
export function Sidebar() {
  const screen = useApp((s) => s.screen);
  const setScreen = useApp((s) => s.setScreen);
  const eventCount = useApp((s) => s.events.length);

  function onKeyDown(e: KeyboardEvent<HTMLUListElement>) {
    const buttons = Array.from(e.currentTarget.querySelectorAll('button'));
    const index = buttons.findIndex((b) => b === document.activeElement);
    let next = -1;
    if (e.key === 'ArrowDown') next = (index + 1) % buttons.length;
    else if (e.key === 'ArrowUp') next = (index - 1 + buttons.length) % buttons.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = buttons.length - 1;
    if (next >= 0) {
      e.preventDefault();
      buttons[next]?.focus();
    }
  }

  return (
    <nav className="sidebar" aria-label="Screens">
      <ul onKeyDown={onKeyDown}>
        {SCREENS.map((s) => (
          <li key={s}>
            <button
              type="button"
              className="nav-item"
              data-testid={`nav-${s}`}
              aria-current={screen === s ? 'page' : undefined}
              onClick={() => setScreen(s)}
            >
              {SCREEN_LABELS[s]}
              {s === 'events' && eventCount > 0 ? (
                <span className="badge" aria-hidden="true">
                  {eventCount}
                </span>
              ) : null}
            </button>
          </li>
        ))}
      </ul>
    </nav>
  );
}

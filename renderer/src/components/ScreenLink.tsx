import type { ReactNode } from 'react';
import { useApp } from '../store/context.js';
import type { Screen } from '../store/ui-slice.js';

/** A link-styled button that opens another screen and moves the focus there. */
export function ScreenLink({ screen, children, testId }: { screen: Screen; children: ReactNode; testId?: string }) {
  const openScreen = useApp((s) => s.openScreen);
  return (
    <button type="button" className="link" data-testid={testId} onClick={() => openScreen(screen)}>
      {children}
    </button>
  );
}

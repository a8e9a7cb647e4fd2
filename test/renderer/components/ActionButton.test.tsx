// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { ActionButton } from '../../../renderer/src/components/ActionButton.js';

afterEach(cleanup);

describe('ActionButton', () => {
  it('runs its action while available', () => {
    let clicks = 0;
    render(<ActionButton type="button" onClick={() => clicks++}>Take</ActionButton>);
    const button = screen.getByRole('button', { name: 'Take' });
    expect(button.hasAttribute('aria-disabled')).toBe(false);
    fireEvent.click(button);
    expect(clicks).toBe(1);
  });

  it('when unavailable: aria-disabled, still focusable, and a press does nothing', () => {
    let clicks = 0;
    render(
      <ActionButton type="button" disabled onClick={() => clicks++}>
        Take
      </ActionButton>,
    );
    const button = screen.getByRole('button', { name: 'Take' }) as HTMLButtonElement;
    expect(button.getAttribute('aria-disabled')).toBe('true');
    expect(button.disabled).toBe(false);
    button.focus();
    expect(document.activeElement).toBe(button);
    fireEvent.click(button);
    expect(clicks).toBe(0);
  });

  it('keeps the focus when it becomes unavailable (the element stays, only its state changes)', () => {
    const { rerender } = render(<ActionButton type="button">Start</ActionButton>);
    const button = screen.getByRole('button', { name: 'Start' });
    button.focus();
    rerender(
      <ActionButton type="button" disabled>
        Start
      </ActionButton>,
    );
    // The same element, not disabled (a browser moves the focus off a disabled one).
    expect(screen.getByRole('button', { name: 'Start' })).toBe(button);
    expect((button as HTMLButtonElement).disabled).toBe(false);
    expect(button.getAttribute('aria-disabled')).toBe('true');
    expect(document.activeElement).toBe(button);
  });

  it('as an unavailable submit button, blocks its form from submitting', () => {
    let submits = 0;
    render(
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submits++;
        }}
      >
        <ActionButton type="submit" disabled>
          Start workload
        </ActionButton>
      </form>,
    );
    fireEvent.click(screen.getByRole('button', { name: 'Start workload' }));
    expect(submits).toBe(0);
  });
});

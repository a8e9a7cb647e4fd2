import type { ButtonHTMLAttributes, MouseEvent, Ref } from 'react';

type Props = Omit<ButtonHTMLAttributes<HTMLButtonElement>, 'disabled' | 'aria-disabled'> & {
  /** Unavailable: announced and shown as disabled, clicks and Enter do nothing. */
  disabled?: boolean;
  ref?: Ref<HTMLButtonElement>;
};

/**
 * A button that keeps the keyboard focus when it becomes unavailable. A `disabled`
 * button loses the focus (the browser moves it to <body>) at the moment it is
 * disabled, so a button pressed with Enter that goes busy, or that the action it
 * started makes unavailable (Take, Start), would drop the user at the top of the
 * page. This one says `aria-disabled` instead, stays focusable, and ignores
 * activation while unavailable (a submit button also blocks its form's submission).
 */
export function ActionButton({ disabled = false, onClick, ref, ...rest }: Props) {
  function click(e: MouseEvent<HTMLButtonElement>) {
    if (disabled) {
      e.preventDefault();
      return;
    }
    onClick?.(e);
  }
  return <button {...rest} ref={ref} aria-disabled={disabled || undefined} onClick={click} />;
}

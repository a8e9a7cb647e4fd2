import { escapeControlChars } from '../../../app/shared/control-chars.js';
import type { ContractError } from '../../../app/shared/result.js';

/** An error under a form or a table: the code, the plain message, and the detail on demand. */
export function ErrorText({ error, testId = 'form-error' }: { error: ContractError | null; testId?: string }) {
  if (error === null) return null;
  return (
    <div className="error-text" data-testid={testId} aria-live="polite">
      <strong>{error.code}</strong>: {escapeControlChars(error.message)}
      {error.detail ? (
        <details>
          <summary>Details</summary>
          <pre>{escapeControlChars(error.detail)}</pre>
        </details>
      ) : null}
    </div>
  );
}

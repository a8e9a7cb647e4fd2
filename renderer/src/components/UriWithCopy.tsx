import { Breakable } from './Breakable.js';
import { CopyButton } from './CopyButton.js';

/** An NBD URI in monospace, wrapping at its separators, with its Copy button kept beside it. */
export function UriWithCopy({ uri, label, testId, copyTestId }: { uri: string; label: string; testId?: string; copyTestId?: string }) {
  return (
    <div className="uri">
      <code data-testid={testId} title={uri}>
        <Breakable text={uri} />
      </code>
      <CopyButton text={uri} label={label} testId={copyTestId} />
    </div>
  );
}

/** The error of one form field, right under it (the field points at it with aria-describedby). */
export function FieldError({ id, text }: { id: string; text: string | null }) {
  if (text === null) return null;
  return (
    <p id={id} className="field-error" data-testid={id}>
      {text}
    </p>
  );
}

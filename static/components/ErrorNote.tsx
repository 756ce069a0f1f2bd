/** @module An error message, announced to screen readers. */
export function ErrorNote({ error }: { error?: string }) {
  if (!error) return null;
  return <p class="error" role="alert">{error}</p>;
}

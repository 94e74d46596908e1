/** An error, where screen readers announce it (role="alert"). Nothing when there is none. */
import { ApiError } from '../api.ts';

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError || error instanceof Error) return error.message;
  return String(error);
}

export function ErrorAlert({ error, notFound }: { error: unknown; notFound?: string }) {
  if (error === null || error === undefined) return null;
  const text = notFound && error instanceof ApiError && error.status === 404 ? notFound : errorMessage(error);
  return (
    <p role="alert" class="alert">
      {text}
    </p>
  );
}

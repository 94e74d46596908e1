/** Any path the app has no page for. */
import { PageHeading } from '../components/page-heading.tsx';

export function NotFoundPage() {
  return (
    <>
      <PageHeading title="Not found" />
      <p>
        There is no page here. <a href="/">See the repositories</a>.
      </p>
    </>
  );
}

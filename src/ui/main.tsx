/**
 * The web UI's entry: Preact rather than Lit, because these pages are mostly data rendered into
 * tables and forms, which JSX with hooks writes as plain functions and TypeScript checks end to end
 * (props, the API's types), in ~5 kB of runtime; Lit's web components and tagged templates pay off
 * for widgets shared across sites, not for one small app, and their templates are strings to tsc.
 */
import { render } from 'preact';
import { App, BootError } from './app.tsx';
import './app.css';
import { prefetch } from './load.ts';
import { repositoriesUrl } from './pages/repositories.tsx';
import { interceptLinks } from './router.ts';
import { fetchSession } from './session.ts';

// The session comes first: every page depends on who the user is. On the repository list (the page
// most visits start at, and whose first render is measured) its data is asked for at the same
// time, not after the session.
// Marks for the benchmark's timeline (bench/ui.ts): when the app's code starts and first renders.
performance.mark('skiff:script');
const session = fetchSession();
if (location.pathname === '/') prefetch(repositoriesUrl(new URLSearchParams(location.search)));
interceptLinks(document);
const root = document.getElementById('app')!;
session.then(
  (initial) => {
    performance.mark('skiff:session');
    render(<App initial={initial} />, root);
    performance.mark('skiff:rendered');
  },
  (error: unknown) => render(<BootError error={error} />, root),
);

// esbuild bundles the CSS main.tsx imports into assets/main-[hash].css; to TypeScript it is just a module.
declare module '*.css';

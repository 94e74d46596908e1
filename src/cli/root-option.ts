/**
 * `--root` for every command that opens the local store, with one help line that says what
 * `defaultStoreRoot()` (src/images/store.ts) does; an empty variable counts as unset.
 */
export const ROOT_FLAG = '--root <dir>';
export const ROOT_HELP = 'image store directory (default $SKIFF_ROOT, else $XDG_DATA_HOME/skiff, else ~/.local/share/skiff)';

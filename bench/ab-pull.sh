#!/usr/bin/env bash
# Interleaved pulls of one image by several skiff builds and by skopeo, for comparing two commits
# side by side on a noisy machine (the harness in bench/run.ts compares skiff with its peers, not
# with itself). Each build is a checkout with dist/ built (`git worktree add /tmp/a <rev> &&
# ln -s "$PWD/node_modules" /tmp/a/ && (cd /tmp/a && node scripts/build.ts)`).
#
#   bench/ab-pull.sh <rounds> <registry/repo:tag> <checkout> [<checkout>…]
#
# Prints, per contestant, the wall and CPU (user + sys) seconds of each round, sorted.
set -euo pipefail
rounds=$1 image=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
node="$here/node_modules/node/bin/node"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq 1 "$rounds"); do
  for checkout in "$@" skopeo; do
    rm -rf "$work/out"
    if [ "$checkout" = skopeo ]; then
      /usr/bin/time -f "skopeo %e %U %S" -a -o "$work/times" skopeo copy -q --src-tls-verify=false "docker://$image" "oci:$work/out:x" >/dev/null
    else
      # The flags bin/skiff gives node.
      /usr/bin/time -f "$checkout %e %U %S" -a -o "$work/times" "$node" --disable-warning=ExperimentalWarning --max-semi-space-size=1 \
        "$checkout/dist/cli/main.js" pull -q --root "$work/out" "$image" >/dev/null
    fi
  done
done
sort -k1,1 -k2n "$work/times" | awk '{wall[$1] = wall[$1] " " $2; cpu[$1] = cpu[$1] " " ($3 + $4)} END {for (k in wall) print k "\n  wall:" wall[k] "\n  cpu: " cpu[k]}'

"""`python -m hack.images`: build, cache and push the cluster's images (see hack/images/__init__.py)."""

from __future__ import annotations

import argparse
import sys
import time

from hack.images.cache import prune
from hack.images.catalog import BUILDERS, NAMES, ensure
from hack.images.oci import compressed_size
from hack.images.proc import ImageBuildError

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hack.images", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build (when not cached) and, with --registry, push")
    build.add_argument("--registry", help="host:port of a plain-HTTP registry to push to")
    build.add_argument("names", nargs="*", help=f"images to build (default all): {', '.join(NAMES)}")
    sub.add_parser("list", help="print the image names")
    pr = sub.add_parser("prune", help="delete all but the newest cached layouts of each image")
    pr.add_argument("--keep", type=int, default=2, help="layouts to keep per image (default 2)")
    args = p.parse_args(argv)
    if args.cmd == "list":
        print("\n".join(NAMES))
        return 0
    if args.cmd == "prune":
        for path in prune(args.keep):
            print(f"deleted {path}")
        return 0
    names = args.names or list(NAMES)
    try:
        for name in names:
            start = time.monotonic()
            if args.registry:
                image = ensure([name], args.registry)[name]
                layout, where = image.layout, image.pinned
            else:
                layout = BUILDERS[name]()
                where = str(layout)
            size = compressed_size(layout) / MIB
            print(f"{name:28} {size:8.1f} MiB {time.monotonic() - start:7.1f}s  {where}", flush=True)
    except (ImageBuildError, KeyError) as exc:
        print(f"hack.images: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

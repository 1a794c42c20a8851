"""The pod sandbox ("pause") image: Debian's static `catatonit` in pause mode, alone on an empty base.

containerd's `sandbox_image` points at it; `catatonit -P` only waits, as Kubernetes' own pause does.
"""

from __future__ import annotations

from pathlib import Path

from hack.images.cache import Key, build_slot
from hack.images.oci import Entry, LayoutWriter
from hack.images.proc import ImageBuildError

NAME = "pause"
RECIPE = "pause/1"
CATATONIT = Path("/usr/bin/catatonit")


def layout() -> Path:
    if not CATATONIT.exists():
        raise ImageBuildError(
            f"{CATATONIT} missing: install the Debian package catatonit (hack/install-deps.sh)"
        )
    key = Key(RECIPE).add_file("catatonit", CATATONIT).hexdigest()
    with build_slot(NAME, key) as (final, tmp):
        if tmp is not None:
            w = LayoutWriter(tmp)
            w.files_layer([Entry("catatonit", 0o755, source=CATATONIT)], "COPY /usr/bin/catatonit /catatonit")
            # 65535 is the user Kubernetes' own pause image runs as.
            w.finish({"Entrypoint": ["/catatonit", "-P"], "User": "65535:65535"})
    return final

"""Every image the local cluster runs, built here from Debian packages, Go modules and this repo.

No outside registry is reachable, so each image is built from local inputs, cached by content key
under `~/.cache/model-image-push/images/<name>-<key>` as an OCI layout, and pushed to the local
registry (plain HTTP) as `<registry>/modelpush/<name>:<key>`.

    from hack.images import ensure_images
    images = ensure_images("10.88.0.1:5000")
    images.project.ref      # 10.88.0.1:5000/modelpush/model-image-push:<key>
    images.pause.pinned     # ...@sha256:...

CLI: `python -m hack.images build --registry HOST:PORT [NAME...]`, `python -m hack.images list`.
"""

from hack.images.catalog import NAMES, Image, Images, ensure, ensure_images
from hack.images.proc import ImageBuildError

__all__ = ["NAMES", "Image", "ImageBuildError", "Images", "ensure", "ensure_images"]

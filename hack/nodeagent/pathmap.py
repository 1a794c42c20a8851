"""The stand-in for mount namespaces: rewrite container paths (mountPath prefixes) to local directories."""

import re
from collections.abc import Mapping

# Characters that can be part of a path component: a mountPath only matches where it is not glued to them,
# so "/data" matches "/data", "/data/x", "--dir=/data" and "a:/data" but not "/database" or "/work/data".
_PATHCHAR = r"A-Za-z0-9_.\-"


class PathMap:
    def __init__(self, mounts: Mapping[str, str]) -> None:
        # Longest first, so /models/cache wins over /models; one regex pass never rewrites its own output.
        self._mounts = {_norm(k): v.rstrip("/") or "/" for k, v in mounts.items() if _norm(k)}
        keys = sorted(self._mounts, key=len, reverse=True)
        if keys:
            alt = "|".join(re.escape(k) for k in keys)
            self._re: re.Pattern[str] | None = re.compile(
                rf"(?<![{_PATHCHAR}/])({alt})(?=/|$|[^{_PATHCHAR}])"
            )
        else:
            self._re = None

    def rewrite(self, s: str) -> str:
        if self._re is None:
            return s
        return self._re.sub(lambda m: self._mounts[m.group(1)], s)

    def rewrite_all(self, items: list[str]) -> list[str]:
        return [self.rewrite(x) for x in items]

    def local(self, container_path: str) -> str:
        """Where a container path lives locally (unchanged if no mount covers it)."""
        return self.rewrite(container_path)


def _norm(p: str) -> str:
    return p.rstrip("/")

"""Why the API server refused a pod create (pure): our own missing RBAC rights, or admission policy."""

from __future__ import annotations

import re
from enum import Enum

# RBAC's authorizer words its denial `... is forbidden: User "<name>" cannot create resource "pods" ...`;
# admission plugins (PodSecurity, LimitRanger, ResourceQuota, webhooks) say why the *pod* is not allowed.
_RBAC = re.compile(r'\bUser "[^"]*" cannot [a-z]+ resource\b')


class Refusal(Enum):
    RBAC = "rbac"  # the controller lacks a right: fix the Role; retry with backoff, never final
    ADMISSION = "admission"  # the pod breaks a policy: final PodRejected with the server's message
    OTHER = "other"  # not a refusal: a transient error to retry


def classify(status: int, message: str) -> Refusal:
    if status == 403 and _RBAC.search(message):
        return Refusal.RBAC
    if status in (403, 422) or (status == 400 and "forbidden" in message.lower()):
        return Refusal.ADMISSION
    return Refusal.OTHER

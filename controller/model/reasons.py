"""Every `conditions[0].reason` the controller writes, in one place (the README's reasons table too)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # in progress (status Unknown)
    STARTED = "Started"
    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    WAITING_FOR_SECRET = "WaitingForSecret"
    WAITING_FOR_CA_BUNDLE = "WaitingForCABundle"
    # done (status True/False)
    SUCCEEDED = "Succeeded"
    INVALID_PARAMS = "InvalidParams"
    INVALID_CUSTOM_RUN = "InvalidCustomRun"  # the CustomRun's own fields cannot be read
    MISSING_SECRET = "MissingSecret"
    MISSING_CA_BUNDLE = "MissingCABundle"
    MISSING_WORKSPACE = "MissingWorkspace"
    POD_REJECTED = "PodRejected"
    EPHEMERAL_STORAGE_EXHAUSTED = "EphemeralStorageExhausted"
    POD_EVICTED = "PodEvicted"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    REGISTRY_UNREACHABLE = "RegistryUnreachable"
    PUSH_FAILED = "PushFailed"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    POD_FAILED = "PodFailed"
    CANCELLED = "CustomRunCancelled"
    TIMED_OUT = "CustomRunTimedOut"
    SIGNING_FAILED = "SigningFailed"  # pushed, but not signed (issue 13): False or True by REQUIRE_SIGNATURE


# reasons that no retry can fix: the input or the cluster setup must change first
FINAL_REASONS = frozenset(
    {
        Reason.INVALID_PARAMS,
        Reason.INVALID_CUSTOM_RUN,
        Reason.MISSING_SECRET,
        Reason.MISSING_CA_BUNDLE,
        Reason.MISSING_WORKSPACE,
        Reason.POD_REJECTED,
        Reason.CANCELLED,
    }
)

"""openstacksdk and keystoneauth exceptions turned into the contract's errors, with sentences a person can
act on.

Mapping (retryable in brackets):
- 5xx, 429, timeouts, connection failures, 409 while a resource is busy -> RetryableError [yes]
- quota refusals (Nova 403, Neutron 409 OverQuota, Cinder 413)           -> QuotaExceeded [no]
- 404, and Nova's 400 "flavor/image/network could not be found"          -> ResourceNotFound [no]
- 401, keystone refusals                                                 -> AuthenticationFailed [no]
- other 400/403, "already exists", a name matching several resources     -> ConfigurationError [no]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from keystoneauth1 import exceptions as ksa
from openstack import exceptions as sdk

from tempano.plugins.contract import (
    AuthenticationFailed,
    ConfigurationError,
    NonRetryableError,
    PluginError,
    QuotaExceeded,
    ResourceNotFound,
    RetryableError,
)

_QUOTA = re.compile(r"quota|OverQuota|LimitExceeded|exceeded for", re.IGNORECASE)
_MISSING = re.compile(r"could not be found|not found|Invalid key_name", re.IGNORECASE)
_EXISTS = re.compile(r"already exists", re.IGNORECASE)


@dataclass(frozen=True)
class Where:
    """What an operation acts on; every error message names it."""

    cloud: str
    instance_id: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} of node instance {self.instance_id} on cloud {self.cloud!r}"


def _reason(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    text = str(details or exc).strip().rstrip(".")
    return f"{text} (HTTP {status})" if status else text


def translate(exc: BaseException, where: Where, action: str) -> PluginError:
    """The contract error for an exception raised while doing ``action`` on ``where``."""
    reason = _reason(exc)
    head = f"could not {action} {where}: {reason}"
    if isinstance(exc, ksa.Unauthorized | ksa.AuthorizationFailure) or getattr(exc, "status_code", None) == 401:
        return AuthenticationFailed(
            f"{head}; cloud {where.cloud!r} refused the credentials of its clouds.yaml entry: fix its auth section"
        )
    if isinstance(exc, ksa.EndpointNotFound | sdk.EndpointNotFound):
        return ConfigurationError(
            f"{head}; the service catalog of cloud {where.cloud!r} has no such service for this region: "
            "check "
            "region_name and interface in clouds.yaml"
        )
    if isinstance(
        exc,
        ksa.ConnectFailure
        | ksa.ConnectTimeout
        | ksa.RetriableConnectionFailure
        | ksa.DiscoveryFailure
        | requests.ConnectionError
        | requests.Timeout
        | sdk.ResourceTimeout,
    ):
        return RetryableError(
            f"{head}; cloud {where.cloud!r} could not be reached in time: check that it is up and that the auth_url "
            "of its clouds.yaml entry is reachable from the worker (the operation retries as its policy allows)"
        )
    if isinstance(exc, sdk.DuplicateResource):
        return ConfigurationError(f"{head}; several resources match that name: give the id instead")
    if isinstance(exc, sdk.HttpException):
        status = exc.status_code or 0
        if _QUOTA.search(reason) and status in (403, 409, 413):
            return QuotaExceeded(
                f"{head}; the project's quota on cloud {where.cloud!r} is exhausted: free resources or ask "
                "the cloud "
                "administrator for a higher quota"
            )
        if status >= 500 or status == 429:
            return RetryableError(f"{head}; cloud {where.cloud!r} had a transient failure, the operation will retry")
        if status == 404 or (status == 400 and _MISSING.search(reason)):
            return ResourceNotFound(f"{head}; check the name or id in the blueprint against cloud {where.cloud!r}")
        if status == 409 and _EXISTS.search(reason):
            return ConfigurationError(f"{head}; choose another name, or adopt it with use_external_resource")
        if status == 409:
            return RetryableError(f"{head}; the resource is busy on cloud {where.cloud!r}, the operation will retry")
        if status == 403:
            return NonRetryableError(
                f"{head}; the user of cloud {where.cloud!r} is not allowed to do this: ask for the role or "
                "change "
                "the blueprint"
            )
        return ConfigurationError(f"{head}; fix the node's properties")
    if isinstance(exc, sdk.SDKException):
        return NonRetryableError(f"{head}; openstacksdk refused the request")
    return NonRetryableError(f"{head}; unexpected {type(exc).__name__}")


@contextmanager
def calling(where: Where, action: str) -> Iterator[None]:
    """Turn any openstacksdk/keystoneauth failure inside the block into a contract error naming ``where``."""
    try:
        yield
    except PluginError:
        raise
    except (sdk.SDKException, ksa.ClientException, requests.RequestException) as exc:
        raise translate(exc, where, action) from exc


def is_transient(exc: BaseException) -> bool:
    """Whether polling may simply try again after this failure."""
    return isinstance(exc, PluginError) and exc.retryable

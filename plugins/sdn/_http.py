"""The HTTP side of controller drivers: one client per controller, and controller errors as sentences.

Every failure names the controller URL, the request, the link or site, and what to do; 5xx answers,
timeouts and refused connections are retryable, 401/403 are :class:`AuthenticationFailed`, other 4xx
are not retryable.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable
from typing import Any

import httpx

from tempano.plugins.contract import (
    AuthenticationFailed,
    ConfigurationError,
    NonRetryableError,
    PluginError,
    RetryableError,
)
from tempano.plugins.sdn.driver import Credentials, SiteSpec

DEFAULT_TIMEOUT_S = 10.0


class ControllerClient:
    """An httpx client bound to one controller, turning every failure into a contract error."""

    def __init__(
        self,
        site: SiteSpec,
        credentials: Credentials | None,
        *,
        controller: str,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        content_type: str = "application/json",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not site.controller_url:
            raise ConfigurationError(
                f"site {site.name!r} uses the {site.driver} SDN driver but has no controller_url; "
                f"set it to the {controller} base URL"
            )
        if credentials is None:
            raise ConfigurationError(
                f"site {site.name!r} uses the {site.driver} SDN driver but names no credentials_secret; "
                f"store the {controller} credentials as a secret and name it in the site"
            )
        self.base_url = site.controller_url.rstrip("/")
        self.controller = controller
        self.credentials = credentials
        auth: httpx.Auth | None = None
        all_headers = dict(headers or {})
        if credentials.username is not None:
            auth = httpx.BasicAuth(credentials.username, credentials.password)
        else:
            all_headers["Authorization"] = f"Bearer {credentials.password}"
        timeout = timeout if timeout is not None else DEFAULT_TIMEOUT_S
        self._client = httpx.Client(
            base_url=self.base_url, auth=auth, headers=all_headers, timeout=timeout, transport=transport
        )
        self.timeout = timeout
        self.content_type = content_type

    def request(
        self,
        method: str,
        path: str,
        *,
        subject: str,
        json: Any = None,
        ok: Iterable[int] = (200, 201, 204),
        tolerate: Iterable[int] = (),
    ) -> httpx.Response:
        """Send one request; answers in ``ok`` or ``tolerate`` are returned, anything else raises.

        ``subject`` says what the request is for ("link 'wan_1'", "site 'central'") in error messages.
        """
        what = f"{method} {self.base_url}{path}"
        try:
            if json is None:
                response = self._client.request(method, path)
            else:
                body = jsonlib.dumps(json).encode()
                response = self._client.request(method, path, content=body, headers={"Content-Type": self.content_type})
        except httpx.TimeoutException:
            raise RetryableError(
                f"{self.controller} at {self.base_url} did not answer {what} within {self.timeout:g}s "
                f"for {subject}; the engine retries, check the controller if it persists"
            ) from None
        except httpx.TransportError as exc:
            raise RetryableError(
                f"cannot reach {self.controller} at {self.base_url} ({what}) for {subject}: {exc}; "
                "check the site's controller_url and the network path to the controller"
            ) from None
        status = response.status_code
        if status in set(ok) | set(tolerate):
            return response
        raise self.error(response, what, subject)

    def error(self, response: httpx.Response, what: str, subject: str) -> PluginError:
        status = response.status_code
        reason = self.reason(response)
        if status in (401, 403):
            return AuthenticationFailed(
                f"{self.controller} at {self.base_url} refused the credentials from secret "
                f"{self.credentials.secret_name!r} (HTTP {status} on {what}) for {subject}: {reason}; "
                "fix the secret or the controller account's rights",
                details={"status": status},
            )
        if status >= 500 or status == 429:
            return RetryableError(
                f"{self.controller} at {self.base_url} failed {what} for {subject} with HTTP {status}: "
                f"{reason}; the engine retries",
                details={"status": status},
            )
        return NonRetryableError(
            f"{self.controller} at {self.base_url} rejected {what} for {subject} with HTTP {status}: {reason}",
            details={"status": status},
        )

    @staticmethod
    def reason(response: httpx.Response) -> str:
        """The controller's own words: RESTCONF error-message, ONOS message, or the body's start."""
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:200] or response.reason_phrase
        if isinstance(body, dict):
            errors = body.get("ietf-restconf:errors", {}).get("error")
            if isinstance(errors, list) and errors:
                first = errors[0]
                return str(first.get("error-message") or first.get("error-tag") or first)
            if "message" in body:
                return str(body["message"])
        return str(body)[:200]

    def close(self) -> None:
        self._client.close()

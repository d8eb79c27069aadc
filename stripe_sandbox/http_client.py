"""A `stripe.HTTPClient` that answers from the sandbox in-process, without any network."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any, Mapping, Optional

import stripe

from .api import handle_request

if TYPE_CHECKING:
    from .sandbox import StripeSandbox


class SandboxHTTPClient(stripe.HTTPClient):
    """`stripe.StripeClient("sk_test_...", http_client=SandboxHTTPClient(sandbox))`.

    Implements the sync and async request methods of stripe 16's HTTPClient; the library's
    own `request_with_retries` wraps them as usual.
    """

    name = "stripe_sandbox"

    def __init__(self, sandbox: "StripeSandbox"):
        super().__init__()
        self.sandbox = sandbox

    def request(self, method: str, url: str, headers: Optional[Mapping[str, str]],
                post_data: Any = None, *, _usage: Any = None) -> tuple[str, int, Mapping[str, str]]:
        answer = handle_request(self.sandbox, method, url, headers or {}, post_data)
        return answer.body, answer.status, answer.headers

    def request_stream(self, method: str, url: str, headers: Optional[Mapping[str, str]],
                       post_data: Any = None, *, _usage: Any = None) -> tuple[Any, int, Mapping[str, str]]:
        body, status, headers = self.request(method, url, headers, post_data)
        return io.BytesIO(body.encode("utf-8")), status, headers

    def close(self) -> None:
        pass

    async def request_async(self, method: str, url: str, headers: Mapping[str, str],
                            post_data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        body, status, headers = self.request(method, url, headers, post_data)
        return body.encode("utf-8"), status, headers

    async def request_stream_async(self, method: str, url: str, headers: Mapping[str, str],
                                   post_data: Any = None):
        body, status, headers = self.request(method, url, headers, post_data)

        async def chunks():
            yield body.encode("utf-8")

        return chunks(), status, headers

    async def close_async(self) -> None:
        pass

    def sleep_async(self, secs: float):
        return asyncio.sleep(secs)

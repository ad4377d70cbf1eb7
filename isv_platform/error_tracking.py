"""Sentry, when ``SENTRY_DSN`` is set: unhandled errors of web requests and Celery tasks are reported there.

Reports carry no personal data (the SDK's default), no request bodies, cookies or headers and no local
variables: a request to this platform carries API keys, session tokens and signed wallet messages, and a frame
may hold a private key.
The request id travels as a tag, so a report leads to the log lines of its request.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


def start(*, dsn: str, environment: str, traces_sample_rate: float = 0.0) -> None:
    try:
        import sentry_sdk
    except ImportError:
        raise ImproperlyConfigured(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install '.[sentry]' (the image has it)."
        ) from None
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        max_request_body_size="never",
        include_local_variables=False,  # a frame may hold a private key or a token
        traces_sample_rate=traces_sample_rate,
        before_send=_tag_request_id,
    )


def _tag_request_id(event: dict, hint: dict) -> dict:
    from apps.core.request_context import current_request_id

    event.setdefault("tags", {})["request_id"] = current_request_id()
    request = event.get("request")
    if request:  # whatever an integration gathered: no headers, cookies or query string leave
        for field in ("headers", "cookies", "query_string", "data", "env"):
            request.pop(field, None)
    return event

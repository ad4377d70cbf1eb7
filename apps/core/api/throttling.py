"""API rate limits, counted atomically in the default cache.

DRF's ``SimpleRateThrottle`` reads a list of timestamps, appends and writes it back: requests arriving together
read the same list and all get through, so a burst from many threads or servers overruns the limit. Here each
request is one atomic increment — a Lua script (``INCR``, ``PEXPIRE`` when the count is new, ``PTTL``) where the
cache is Redis (``REDIS_URL``), the in-process cache's own lock otherwise — so however many arrive at once, no
more than the limit are let through.

A window opens with its key's first request and lasts the rate's period; ``Retry-After`` is the time left in it.
If the cache cannot be reached, requests are let through (and a warning logged) rather than all failing.
"""

from __future__ import annotations

import logging
import math
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from apps.core.errors import RateLimitedError
from apps.core.tenancy import Principal

logger = logging.getLogger(__name__)

# One round trip, and nothing else runs in between. The first request creates the count without an expiry and
# gives it the window's; testing the TTL rather than count == 1 also mends a count that lost its expiry, which
# would otherwise block its tenant for good.
_COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class Window:
    """Requests counted under ``key`` in a window of ``duration`` seconds that opens with the first of them."""

    def __init__(self, key: str, duration: int) -> None:
        self.key, self.duration = key, duration
        self.seconds_left = duration

    def add(self) -> int | None:
        """Count one more request and return how many the window holds with it; ``None`` if the cache is
        unreachable."""
        cache = caches["default"]
        try:
            if isinstance(cache, RedisCache):
                key = cache.make_and_validate_key(self.key)
                # Django's RedisCache has no script call; its client is the connection pool it keeps.
                client = cache._cache.get_client(key, write=True)
                count, ttl_ms = client.eval(_COUNT_IN_WINDOW, 1, key, self.duration * 1000)
                self._ends_in(ttl_ms / 1000)
                return count
            # LocMemCache (or any other): add and incr are each atomic; the window's end is kept beside the count.
            ends = time.time() + self.duration
            cache.add(f"{self.key}:ends", ends, timeout=self.duration)
            cache.add(self.key, 0, timeout=self.duration)
            count = cache.incr(self.key)
            self._ends_in(cache.get(f"{self.key}:ends", ends) - time.time())
            return count
        except ValueError:  # the count expired between add and incr: that window is over, this opens the next
            return self.add()
        except RedisError as error:
            _cache_unreachable(error)
            return None

    def count(self) -> int:
        """How many requests the window holds now (0 if the cache is unreachable), without counting one."""
        cache = caches["default"]
        try:
            if isinstance(cache, RedisCache):
                key = cache.make_and_validate_key(self.key)
                count, ttl_ms = cache._cache.get_client(key).pipeline().get(key).pttl(key).execute()
                self._ends_in(ttl_ms / 1000 if ttl_ms > 0 else self.duration)
                return int(count or 0)
            self._ends_in(cache.get(f"{self.key}:ends", time.time() + self.duration) - time.time())
            return cache.get(self.key, 0)
        except RedisError as error:
            _cache_unreachable(error)
            return 0

    def _ends_in(self, seconds: float) -> None:
        self.seconds_left = max(1, math.ceil(seconds))


def _cache_unreachable(error: RedisError) -> None:
    logger.warning("rate limit not enforced, the cache is unreachable: %s", error)


class TenantRateThrottle(SimpleRateThrottle):
    """One budget per tenant (ISV, or ISV and merchant), whatever key or server the requests come from.

    A mini program user session has a smaller budget of its own, so no single user can spend the merchant's.
    Over budget: 429 ``request.rate_limited`` with ``Retry-After``.
    """

    scope = "tenant"

    @property
    def THROTTLE_RATES(self) -> dict:
        """DRF's rates, read per request (DRF reads them once, at import), so a changed setting applies."""
        return api_settings.DEFAULT_THROTTLE_RATES

    def allow_request(self, request, view) -> bool:
        principal = request.auth
        self.scope = "user_session" if isinstance(principal, Principal) and principal.is_user_session else "tenant"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.window = Window(self.get_cache_key(request, view), self.duration)
        count = self.window.add()
        return count is None or count <= self.num_requests

    def wait(self) -> int:
        return self.window.seconds_left

    def get_cache_key(self, request, view) -> str:
        principal = request.auth
        if isinstance(principal, Principal) and principal.is_user_session:
            ident = f"{principal.tenant_key()}:wallet-user:{principal.wallet_user_id}"
        elif isinstance(principal, Principal) and principal.is_authenticated:
            ident = principal.tenant_key()
        else:
            ident = f"ip:{self.get_ident(request)}"  # the public schema and docs, starting sessions
        return self.cache_format % {"scope": self.scope, "ident": ident}


class FailedAuthenticationLimit(SimpleRateThrottle):
    """Caps failed credential checks per client address, so keys cannot be guessed or probed at speed.

    Counted before the key lookup, and only failures count: a busy client with a good key is never slowed.
    """

    scope = "failed_auth"

    def __init__(self) -> None:
        self.rate = api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def _window(self, request) -> Window:
        return Window(f"throttle_{self.scope}_{self.get_ident(request)}", self.duration)

    def check(self, request) -> None:
        window = self._window(request)
        if window.count() >= self.num_requests:
            raise RateLimitedError(
                "auth.too_many_failures",
                "Too many failed authentication attempts from this address; wait and retry.",
                retry_after=window.seconds_left,
            )

    def record_failure(self, request) -> None:
        self._window(request).add()

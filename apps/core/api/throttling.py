import time

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from apps.core.errors import RateLimitedError
from apps.core.tenancy import Principal


class TenantRateThrottle(SimpleRateThrottle):
    """One budget per tenant (ISV, or ISV and merchant), whatever key or server the requests come from.

    A mini program user session has a smaller budget of its own, so no single user can spend the merchant's.
    """

    scope = "tenant"

    def allow_request(self, request, view) -> bool:
        principal = request.auth
        self.scope = "user_session" if isinstance(principal, Principal) and principal.is_user_session else "tenant"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

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

    def _key(self, request) -> str:
        window = int(time.time() // self.duration)
        return f"throttle_{self.scope}_{self.get_ident(request)}_{window}"

    def check(self, request) -> None:
        if cache.get(self._key(request), 0) >= self.num_requests:
            raise RateLimitedError(
                "auth.too_many_failures",
                "Too many failed authentication attempts from this address; wait and retry.",
                retry_after=self.duration - int(time.time() % self.duration),
            )

    def record_failure(self, request) -> None:
        key = self._key(request)
        cache.add(key, 0, timeout=self.duration)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=self.duration)

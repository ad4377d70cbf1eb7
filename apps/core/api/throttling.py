from rest_framework.throttling import SimpleRateThrottle

from apps.core.tenancy import Principal


class TenantRateThrottle(SimpleRateThrottle):
    """One budget per tenant (ISV, or ISV and merchant), whatever key or server the requests come from."""

    scope = "tenant"

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, Principal) and request.auth.is_authenticated:
            ident = request.auth.tenant_key()
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

"""The demo: mini program pages a newcomer can click through, and the demo merchants' servers (their
webhook endpoint, and the rental shop's "stop the ride"). Served only where the sandbox is (never in
production)."""

import hmac
import json
import logging

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from apps.core.api.views import TenantApiView
from apps.core.tenancy import PrincipalKind
from apps.miniprograms.models import MiniProgram
from apps.payments import selectors as payment_selectors
from apps.payments.api.serializers import PreAuthorizationOutputSerializer
from apps.webhooks.sender import signature

from . import rentals, selectors

logger = logging.getLogger(__name__)


@require_GET
def index(request):
    """The demo mini programs, with what to try in each."""
    return render(request, "demo/index.html", {"mini_programs": selectors.demo_mini_programs()})


@require_GET
def mini_program(request, app_id: str):
    """One demo mini program in a phone-shaped page; everything on it goes through the my.* shim."""
    found = selectors.demo_mini_program(app_id)
    if found is None:
        raise Http404("No demo mini program with that appId (run `make seed`).")
    return render(
        request,
        "demo/mini_program.html",
        {
            "mini_program": found,
            "pre_authorization": selectors.has_pre_authorization(found),
            "wallet_url": _same_origin_path(found.super_app.gateway_base_url),
            "api_url": reverse("sessions").removesuffix("sessions"),
        },
    )


def _same_origin_path(url: str) -> str:
    """The sandbox served by this platform as a path, so the page works under any name of the host."""
    return url.removeprefix(settings.PUBLIC_BASE_URL) or "/"


class RentalStopApi(TenantApiView):
    """The rental shop's server ends a ride its user started: it prices the ride and captures that much.
    The user's session proves whose ride it is; the capture is the merchant's, as with its API key."""

    allowed_principals = frozenset({PrincipalKind.MINI_PROGRAM_USER})

    @extend_schema(exclude=True)
    def post(self, request, preauthorization_id: str):
        pre_authorization = payment_selectors.preauthorization_get(
            principal=self.principal, preauthorization_id=preauthorization_id
        )
        stopped = rentals.rental_stop(pre_authorization=pre_authorization)
        return Response(PreAuthorizationOutputSerializer(stopped).data)


@csrf_exempt
@require_POST
def merchant_webhook(request, app_id: str):
    """A demo merchant's server, as far as webhooks go: it checks each delivery's signature the way
    ``docs/webhooks.md`` tells merchants to, logs it, and answers 204 — so ``make run`` shows deliveries
    succeed in the admin's webhook log."""
    mini_program = MiniProgram.objects.unscoped().filter(app_id=app_id).first()  # the demo plays every merchant
    if mini_program is None:
        return HttpResponse(status=404)
    try:
        timestamp = int(request.headers.get("Webhook-Timestamp", ""))
    except ValueError:
        return HttpResponse(status=400)
    expected = signature(
        mini_program.unseal("webhook_secret_ciphertext").decode(),
        message_id=request.headers.get("Webhook-Id", ""),
        timestamp=timestamp,
        body=request.body,
    )
    offered = request.headers.get("Webhook-Signature", "").split()
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        logger.warning("demo merchant %s: a webhook with a bad signature was refused", app_id)
        return HttpResponse(status=401)
    event = json.loads(request.body)
    logger.info("demo merchant %s received %s (%s)", app_id, event.get("type"), event.get("data", {}).get("id"))
    return HttpResponse(status=204)

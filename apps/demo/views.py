"""A demo merchant's server, as far as webhooks go: it checks each delivery's signature the way
``docs/webhooks.md`` tells merchants to, logs it, and answers 204 — so ``make run`` shows deliveries
succeed in the admin's webhook log. Served only where the sandbox is (never in production)."""

import hmac
import json
import logging

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.miniprograms.models import MiniProgram
from apps.webhooks.sender import signature

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def merchant_webhook(request, app_id: str):
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

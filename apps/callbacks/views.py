"""The notification endpoints, one set per super app at an unguessable path (its ``callback_token``). They
hand the raw request to ``services.notification_receive`` and answer with what it says; nothing else."""

from django.http import Http404, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.superapps.models import SuperApp

from . import services
from .models import NotificationKind


def _notification_view(kind: str):
    @csrf_exempt
    @require_POST
    def view(request, callback_token: str):
        super_app = SuperApp.objects.filter(callback_token=callback_token).first()
        if super_app is None:
            raise Http404
        ack = services.notification_receive(
            super_app=super_app,
            kind=kind,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=request.body,
            remote_addr=request.META.get("REMOTE_ADDR") or None,
        )
        response = HttpResponse(ack.body, status=ack.status, content_type=ack.content_type)
        for name, value in ack.headers.items():
            response[name] = value
        return response

    return view


notify_payment = _notification_view(NotificationKind.PAYMENT)
notify_refund = _notification_view(NotificationKind.REFUND)
notify_registration = _notification_view(NotificationKind.REGISTRATION)
notify_classic = _notification_view(NotificationKind.CLASSIC)

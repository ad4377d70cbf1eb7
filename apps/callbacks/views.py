from django.http import Http404, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.superapps.models import SuperApp

from . import services


def _notification_view(apply, kind: str):
    @csrf_exempt
    @require_POST
    def view(request, callback_token: str):
        super_app = SuperApp.objects.filter(callback_token=callback_token).first()
        if super_app is None:
            raise Http404
        ack = services.receive(
            super_app=super_app,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=request.body,
            apply=apply,
            kind=kind,
        )
        response = HttpResponse(ack.body, status=ack.status, content_type="application/json; charset=UTF-8")
        for name, value in ack.headers.items():
            response[name] = value
        return response

    return view


notify_payment = _notification_view(services.apply_payment_notification, "notifyPayment")
notify_registration = _notification_view(services.apply_registration_notification, "notifyRegistrationStatus")

"""The one admin page outside the admin site: setting up the second factor."""

from __future__ import annotations

import base64

import segno
from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import second_factor
from .selectors import principal_for_user


class CodeForm(forms.Form):
    code = forms.CharField(label="Code from the app", max_length=10, strip=True)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def second_factor_setup(request: HttpRequest) -> HttpResponse:
    """Show the secret (QR code and text) of a new authenticator and confirm it with a code from the app."""
    if not request.user.is_staff or (second_factor.has_authenticator(request.user) and request.user.is_verified()):
        return redirect("admin:index")
    if second_factor.has_authenticator(request.user):
        return redirect(f"{reverse('admin:login')}?next={reverse('admin:index')}")
    device = second_factor.authenticator_pending(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if second_factor.authenticator_confirm(request=request, device=device, token=form.cleaned_data["code"]):
            return redirect("admin:index")
        form.add_error("code", "That code is not the app's current one; check the phone's clock and try again.")
    context = {
        "title": "Set up your authenticator",
        "form": form,
        "qr_svg": segno.make(device.config_url, error="m").svg_inline(scale=4),
        "secret": base64.b32encode(device.bin_key).decode().rstrip("="),
        "required": second_factor.second_factor_required(principal_for_user(request.user)),
        "site_header": "ISV merchant platform",
    }
    return TemplateResponse(request, "accounts/second_factor_setup.html", context)

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.core import rls
from apps.core.api.schema import error_response
from apps.core.api.throttling import FailedAuthenticationLimit
from apps.core.api.views import TenantApiView
from apps.core.errors import AuthenticationError
from apps.core.tenancy import PrincipalKind
from apps.usersessions import selectors, services

from .serializers import SessionCreatedSerializer, SessionCreateInputSerializer


class SessionCreateApi(TenantApiView):
    """A mini program's front end trades its user's auth code for a session token (no API key involved)."""

    allowed_principals = frozenset({PrincipalKind.ANONYMOUS})

    @extend_schema(
        operation_id="sessions_create",
        request=SessionCreateInputSerializer,
        responses={
            201: SessionCreatedSerializer,
            503: error_response(
                "The super app did not answer (`sessions.wallet_unavailable`: get a new auth code), or the database "
                "is out of reach; retry."
            ),
        },
        auth=[],
        tags=["sessions"],
    )
    def post(self, request):
        data = SessionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        # Each attempt costs a wallet call: refused auth codes count against the address like bad keys do.
        limit = FailedAuthenticationLimit()
        limit.check(request)
        mini_program = selectors.mini_program_by_app_id(app_id=fields["app_id"], super_app=fields.get("super_app"))
        # No credential names a tenant here: the mini program does, for its merchant's credentials.
        rls.enter(rls.DbScope(isv_id=mini_program.isv_id, merchant_id=mini_program.merchant_id))
        try:
            opened = services.session_start(mini_program=mini_program, auth_code=fields["auth_code"])
        except AuthenticationError:
            limit.record_failure(request)
            raise
        return Response(
            SessionCreatedSerializer(opened).data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )

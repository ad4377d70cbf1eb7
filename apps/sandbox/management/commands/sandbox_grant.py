import json

from django.core.management.base import BaseCommand, CommandError

from apps.sandbox import services
from apps.sandbox.models import SandboxClient
from apps.sandbox.protocol import Dialect, WalletError


class Command(BaseCommand):
    help = (
        "Grant a client access to a test user's account, as a user consenting in the wallet would, and print "
        "the applyToken answer (JSON) — for seeding sessions without a running server."
    )

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--app-id", required=True, help="The mini program's appId.")
        parser.add_argument("--user", default="alice", help="A sandbox test user: alice or bob.")

    def handle(self, *args, client_id: str, app_id: str, user: str, **options):
        client = SandboxClient.objects.filter(client_id=client_id).first()
        if client is None:
            raise CommandError(f"no sandbox client {client_id!r}")
        try:
            code = services.auth_code_issue(app_id=app_id, login=user, scopes=["auth_base"])
            grant = services.token_from_auth_code(client=client, dialect=Dialect.V2, code=code.code, app_id=app_id)
        except WalletError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
        answer = {
            "accessToken": grant.access_token,
            "accessTokenExpiryTime": grant.access_token_expires_at.isoformat(),
            "refreshToken": grant.refresh_token,
            "refreshTokenExpiryTime": grant.refresh_token_expires_at.isoformat(),
            "customerId": grant.user.customer_id,
        }
        self.stdout.write(json.dumps(answer))

"""Create one payment at a super app for a merchant and print the cashier URL: a smoke test of the wire
protocol against a wallet (the sandbox, or a real one), outside the order flow."""

from django.core.management.base import BaseCommand, CommandError
from ulid import ULID

from apps.core.errors import ApplicationError
from apps.core.money import Money
from apps.core.tenancy import Principal
from apps.merchants import selectors
from apps.merchants.models import Merchant
from apps.superapps.client.errors import WalletError
from apps.superapps.client.messages import PayRequest
from apps.superapps.models import SuperApp


class Command(BaseCommand):
    help = "Call payments/pay for a merchant and print the paymentUrl to open in a browser."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", required=True, help="Merchant id (mer_…) or exact name.")
        parser.add_argument("--super-app", default="sandbox", help="Super app code.")
        parser.add_argument("--app-id", default="demo-mini-program", help="The mini program's appId.")
        parser.add_argument("--amount", type=int, required=True, help="Amount in minor units, e.g. 1250 = 12.50 USD.")
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--description", default="Smoke-test payment")

    def handle(self, *args, merchant, super_app, app_id, amount, currency, description, **options):
        merchants = Merchant.objects.visible_to(Principal.operator())
        found = merchants.filter(public_id=merchant).first() or merchants.filter(name=merchant).first()
        wallet = SuperApp.objects.filter(code=super_app).first()
        if found is None or wallet is None:
            raise CommandError(f"No merchant {merchant!r} or no super app {super_app!r}.")
        try:
            credential = selectors.wallet_credential_for(merchant=found, super_app=wallet)
            request = PayRequest(
                payment_request_id=f"pay_{str(ULID()).lower()}",
                amount=Money(value=amount, currency=currency),
                order_description=description,
                reference_order_id=f"smoke_{str(ULID()).lower()}",
                notify_url=wallet.payment_notify_url(),
                merchant_display_name=found.name,
            )
            response = selectors.wallet_client_for(credential=credential).pay(request, app_id=app_id)
        except (ApplicationError, WalletError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"paymentRequestId  {request.payment_request_id}")
        self.stdout.write(f"paymentId         {response.payment_id}")
        self.stdout.write(f"paymentUrl        {response.payment_url}")

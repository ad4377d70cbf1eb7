import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.sandbox import services


class Command(BaseCommand):
    help = "Register (or update) a merchant client of the sandbox wallet with its RSA public key."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--public-key-file", required=True, help="PEM or bare base64 key; '-' reads stdin.")
        parser.add_argument("--key-version", type=int, help="keyVersion the client signs with (default 1).")
        parser.add_argument("--name", help="Payee name shown on the cashier (default: the client id).")
        parser.add_argument("--partner-id", help="v1 partnerId.")
        parser.add_argument("--classic-app-id", help="app_id of the client's classic orderStr.")
        parser.add_argument("--site-name", help="siteName (customerBelongsTo) of the wallet.")
        parser.add_argument("--faults", help="Fault injection as JSON, e.g. '{\"result_u\": true}'.")

    def handle(self, *args, client_id, public_key_file, faults, **options):
        source = sys.stdin if public_key_file == "-" else None
        try:
            public_key = source.read() if source else Path(public_key_file).read_text()
            fault_settings = None if faults is None else json.loads(faults)
            client, created = services.client_register(
                client_id=client_id,
                public_key=public_key,
                key_version=options["key_version"],
                name=options["name"],
                partner_id=options["partner_id"],
                classic_app_id=options["classic_app_id"],
                site_name=options["site_name"],
                fault_settings=fault_settings,
            )
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{'Registered' if created else 'Updated'} sandbox client {client.client_id}")

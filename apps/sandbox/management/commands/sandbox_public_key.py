from django.core.management.base import BaseCommand

from apps.sandbox import services


class Command(BaseCommand):
    help = "Print the sandbox wallet's public key (PEM), generating the key pair on first use."

    def handle(self, *args, **options):
        self.stdout.write(services.wallet_key().public_key_pem, ending="")

import time

from django.core.management.base import BaseCommand

from apps.sandbox import services


class Command(BaseCommand):
    help = "Send due sandbox notifications, finish due reviews, end expired authorizations (once, or --loop)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep sweeping until interrupted.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between sweeps with --loop.")

    def handle(self, *args, loop: bool, interval: float, **options):
        while True:
            attempts = services.deliver_due_notifications()
            if attempts or not loop:
                self.stdout.write(f"{attempts} notification attempt(s)")
            if not loop:
                return
            time.sleep(interval)

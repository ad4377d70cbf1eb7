import dataclasses
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.demo.services import demo_seed


class Command(BaseCommand):
    help = "Create (or refresh) the demo ISV, merchants, staff logins and API keys. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print what was made as JSON.")
        parser.add_argument(
            "--base-url",
            default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}",
            help="Where the platform is served, for the links printed.",
        )
        parser.add_argument("--force", action="store_true", help="Seed even with ISV_ENV=production.")

    def handle(self, *args, as_json: bool, base_url: str, force: bool, **options):
        if settings.PRODUCTION and not force:
            raise CommandError("Refusing to seed demo logins in production (pass --force if you mean it).")
        demo = demo_seed()
        if as_json:
            self.stdout.write(json.dumps(dataclasses.asdict(demo)))
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready (passwords and keys are new on every run)."))
        self.stdout.write(f"\n  Start here      {base_url}/demo/   (buy in a mini program, pay at the sandbox cashier)")
        for merchant in demo.merchants:
            for mini_program in merchant.mini_programs:
                self.stdout.write(f"  Mini program    {base_url}/demo/{mini_program['app_id']}/   ({merchant.name})")
        self.stdout.write(f"\n  Operator        {demo.operator.username} / {demo.operator.password}")
        self.stdout.write(
            f"  ISV staff       {demo.isv.staff.username} / {demo.isv.staff.password}   ({demo.isv.name})"
        )
        for merchant in demo.merchants:
            self.stdout.write(
                f"  Merchant staff  {merchant.staff.username} / {merchant.staff.password}   ({merchant.name})"
            )
        self.stdout.write(f"\n  ISV API key     {demo.isv.api_key}   ({demo.isv.id})")
        for merchant in demo.merchants:
            self.stdout.write(f"  Merchant key    {merchant.api_key}   ({merchant.name}, {merchant.id})")
        self.stdout.write(f"\n  Admin           {base_url}/admin/")
        self.stdout.write(f"  API docs        {base_url}/api/v1/docs/")
        self.stdout.write(f"  Sandbox wallet  {base_url}/sandbox/   (payments awaiting the user, test users)")
        self.stdout.write(f"  Health          {base_url}/healthz   {base_url}/readyz")
        example_key = demo.merchants[0].api_key
        self.stdout.write(f"\n  Try:  curl -H 'Authorization: Bearer {example_key}' {base_url}/api/v1/merchant\n")

"""Indexes for the order changelist's filters, each ending in the default ordering (newest public id first),
so that a filtered page reads its rows in index order and stops: status, kind and mini program for a
merchant's staff, and the ISV-wide list of an ISV's staff.

Plain SQL that both SQLite and PostgreSQL accept; they are not part of the model state (``Order.Meta`` does
not declare them), so ``makemigrations`` neither adds nor drops them.
"""

from django.db import migrations

INDEXES = {
    "order_merchant_status_list_idx": "(merchant_id, status, public_id DESC)",
    "order_merchant_kind_list_idx": "(merchant_id, kind, public_id DESC)",
    "order_mini_program_list_idx": "(mini_program_id, public_id DESC)",
    "order_isv_list_idx": "(isv_id, public_id DESC)",
}


class Migration(migrations.Migration):
    dependencies = [("payments", "0005_wallet_id_indexes")]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX {name} ON payments_order {columns}",
            reverse_sql=f"DROP INDEX {name}",
        )
        for name, columns in INDEXES.items()
    ]

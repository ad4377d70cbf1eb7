import datetime

from django.db import connection
from django.utils import timezone

from apps.accounts.models import ApiKey


def test_created_key_is_shown_once_and_works(world, api):
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    response = client.post("/api/v1/api-keys", {"name": "production server"}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("msk_")
    assert body["prefix"] == secret[:12]
    assert body["owner"] == {"type": "merchant", "id": world.a.merchants[0].merchant.public_id}
    assert body["status"] == "active"

    listed = client.get("/api/v1/api-keys").json()["results"]
    assert body["id"] in [key["id"] for key in listed]
    assert all("secret" not in key for key in listed)
    assert secret not in client.get(f"/api/v1/api-keys/{body['id']}").content.decode()

    fresh = api.__class__().as_key(secret)
    assert fresh.get("/api/v1/merchant").json()["id"] == world.a.merchants[0].merchant.public_id


def test_the_database_holds_a_hash_not_the_key(world, api):
    secret = (
        api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
        .post("/api/v1/api-keys", {"name": "x"}, format="json")
        .json()["secret"]
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        rows = cursor.fetchall()
    assert not any(secret in str(value) for row in rows for value in row)
    assert not any(secret[12:] in str(value) for row in rows for value in row)


def test_isv_key_manages_isv_level_keys_and_with_merchant_id_that_merchants(world, api):
    isv_level = api.as_key(world.a.key).get("/api/v1/api-keys").json()["results"]
    assert [key["name"] for key in isv_level] == ["canary-isvkey-a"]

    merchant = world.a.merchants[1].merchant
    created = api.as_key(world.a.key, merchant=merchant).post("/api/v1/api-keys", {"name": "for m2"}, format="json")
    assert created.json()["owner"] == {"type": "merchant", "id": merchant.public_id}
    names = {key["name"] for key in api.as_key(world.a.merchants[1].key).get("/api/v1/api-keys").json()["results"]}
    assert names == {"canary-key-a2", "for m2"}


def test_isv_key_without_merchant_creates_an_isv_key(world, api):
    body = api.as_key(world.a.key).post("/api/v1/api-keys", {"name": "isv ops"}, format="json").json()
    assert body["secret"].startswith("isk_")
    assert body["owner"] == {"type": "isv", "id": world.a.isv.public_id}


def test_revoke_stops_the_key_and_is_idempotent(world, api):
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    created = client.post("/api/v1/api-keys", {"name": "temp"}, format="json").json()
    first = client.delete(f"/api/v1/api-keys/{created['id']}")
    assert first.status_code == 200
    assert first.json()["status"] == "revoked"
    second = client.delete(f"/api/v1/api-keys/{created['id']}")
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    assert api.__class__().as_key(created["secret"]).get("/api/v1/merchant").status_code == 401


def test_expiry_in_the_past_is_rejected_and_nothing_is_created(world, api):
    before = ApiKey.objects.unscoped().count()
    past = (timezone.now() - datetime.timedelta(minutes=1)).isoformat()
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
        "/api/v1/api-keys", {"name": "x", "expires_at": past}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation.in_past"
    assert response.json()["error"]["attr"] == "expires_at"
    assert ApiKey.objects.unscoped().count() == before


def test_missing_name_is_rejected_and_nothing_is_created(world, api):
    before = ApiKey.objects.unscoped().count()
    response = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant).post(
        "/api/v1/api-keys", {}, format="json"
    )
    assert (response.status_code, response.json()["error"]["attr"]) == (400, "name")
    assert ApiKey.objects.unscoped().count() == before


def test_list_is_cursor_paginated(world, api):
    client = api.as_key(world.a.key, merchant=world.a.merchants[0].merchant)
    for index in range(4):
        client.post("/api/v1/api-keys", {"name": f"k{index}"}, format="json")
    first = client.get("/api/v1/api-keys?limit=2").json()
    assert len(first["results"]) == 2
    assert first["next"]
    second = client.get(first["next"]).json()
    assert {k["id"] for k in first["results"]}.isdisjoint({k["id"] for k in second["results"]})
    assert client.get("/api/v1/api-keys?limit=1000").status_code == 200
    invalid = client.get("/api/v1/api-keys?cursor=garbage")
    assert (invalid.status_code, invalid.json()["error"]["code"]) == (400, "pagination.invalid_cursor")


def test_merchant_keys_read_keys_but_cannot_create_or_revoke(world, api):
    client = api.as_key(world.a.merchants[0].key)
    assert client.get("/api/v1/api-keys").status_code == 200
    created = client.post("/api/v1/api-keys", {"name": "successor"}, format="json")
    assert (created.status_code, created.json()["error"]["code"]) == (403, "auth.principal_not_allowed")
    own = ApiKey.objects.unscoped().get(name="canary-key-a1")
    revoked = client.delete(f"/api/v1/api-keys/{own.public_id}")
    assert revoked.status_code == 403
    own.refresh_from_db()
    assert own.revoked_at is None


def test_a_forged_cursor_position_is_a_400(world, api):
    import base64

    cursor = base64.b64encode(b"p=\x00abc").decode()
    response = api.as_key(world.a.key).get(f"/api/v1/api-keys?cursor={cursor}")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "pagination.invalid_cursor")

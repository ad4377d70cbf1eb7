import json


def test_merchant_key_reads_its_merchant(world, api):
    tenant = world.a.merchants[0]
    body = api.as_key(tenant.key).get("/api/v1/merchant").json()
    assert body["id"] == tenant.merchant.public_id
    assert body["name"] == "canary-merchant-a1"
    assert body["isv"] == {"id": world.a.isv.public_id, "name": "canary-isv-a"}
    assert body["license_status"] == "missing"
    assert body["registrations"] == []
    [credential] = body["wallet_credentials"]
    assert credential["client_id"] == "canary-client-a1"
    assert credential["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in json.dumps(body)
    [mini_program] = body["mini_programs"]
    assert mini_program["app_id"] == "canary-app-a1"
    assert mini_program["features"] == ["payment"]


def test_isv_key_needs_merchant_id_for_the_merchant_endpoint(world, api):
    response = api.as_key(world.a.key).get("/api/v1/merchant")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "auth.merchant_id_required"
    assert response.json()["error"]["attr"] == "Merchant-Id"


def test_isv_key_lists_only_its_merchants(world, api):
    body = api.as_key(world.a.key).get("/api/v1/merchants").json()
    assert {merchant["name"] for merchant in body["results"]} == {"canary-merchant-a1", "canary-merchant-a2"}


def test_merchant_keys_cannot_list_merchants(world, api):
    response = api.as_key(world.a.merchants[0].key).get("/api/v1/merchants")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "auth.principal_not_allowed"


def test_the_merchant_list_uses_a_constant_number_of_queries(world, api, django_assert_max_num_queries):
    from tests.factories import MerchantFactory

    MerchantFactory.create_batch(20, isv=world.a.isv)
    client = api.as_key(world.a.key)
    with django_assert_max_num_queries(4):
        assert len(client.get("/api/v1/merchants?limit=50").json()["results"]) == 22

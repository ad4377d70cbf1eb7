"""Settlement files: a signed GET for one client's day, as CSV (fees, captures, refunds, voids, UTC day boundaries)."""

import csv
import datetime as dt
import io

import time_machine

from apps.sandbox import services
from apps.sandbox.models import Capture, Refund
from apps.sandbox.models import Payment as WalletPayment
from tests.sandbox.conftest import (
    CLIENT_ID,
    WalletCaller,
    new_payment,
    paid_payment,
    pay_at_cashier,
    pay_body,
    public_pem,
)

DAY = dt.date(2026, 3, 2)


def at(hour, minute=0, second=0, day=DAY):
    return dt.datetime.combine(day, dt.time(hour, minute, second), dt.UTC)


def rows(answer):
    assert answer.status_code == 200, answer.response.text
    assert answer.response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.response.text)))


def settlement(caller, day=DAY, client_id=CLIENT_ID):
    return caller.get(f"/sandbox/settlements/{client_id}/{day.isoformat()}.csv")


def test_a_day_of_payments_refunds_and_voids(caller, merchant, wallet_public_pem):
    with time_machine.travel(at(10), tick=False) as clock:
        first = paid_payment(merchant, request_id="pr_a", amount=1000)
        clock.move_to(at(11))
        services.refund_create(
            client=merchant,
            payment=first,
            refund_request_id="rf_a",
            fingerprint="f",
            currency="USD",
            amount=400,
            reason="",
        )
        clock.move_to(at(12))
        voided = paid_payment(merchant, request_id="pr_void", amount=300)
        clock.move_to(at(23, 59, 59))
        late = paid_payment(merchant, request_id="pr_late", amount=333)
        clock.move_to(at(0, day=DAY + dt.timedelta(days=1)))
        paid_payment(merchant, request_id="pr_next_day", amount=100)
        services.payment_cancel(payment=voided)
        new_payment(merchant, request_id="pr_unpaid")

    answer = settlement(caller)
    assert answer.signed_by(wallet_public_pem, method="GET")
    day_rows = rows(answer)
    assert list(day_rows[0]) == [
        "record_type",
        "payment_id",
        "payment_request_id",
        "refund_id",
        "refund_request_id",
        "currency",
        "amount",
        "fee",
        "net",
        "transaction_time",
        "settlement_date",
    ]
    refund = Refund.objects.get()
    assert [
        (r["record_type"], r["payment_request_id"], r["refund_id"], r["amount"], r["fee"], r["net"]) for r in day_rows
    ] == [
        ("PAYMENT", "pr_a", "", "1000", "15", "985"),
        ("REFUND", "pr_a", refund.refund_id, "-400", "0", "-400"),
        ("PAYMENT", "pr_void", "", "300", "5", "295"),
        ("PAYMENT", "pr_late", "", "333", "5", "328"),
    ]
    assert day_rows[0]["payment_id"] == first.payment_id
    assert day_rows[1]["refund_request_id"] == "rf_a"
    assert day_rows[3]["payment_id"] == late.payment_id
    assert day_rows[3]["transaction_time"] == "2026-03-02T23:59:59+00:00"
    assert {r["settlement_date"] for r in day_rows} == {"2026-03-02"}
    assert {r["currency"] for r in day_rows} == {"USD"}

    next_day = rows(settlement(caller, DAY + dt.timedelta(days=1)))
    assert [(r["record_type"], r["payment_request_id"], r["refund_id"], r["amount"]) for r in next_day] == [
        ("PAYMENT", "pr_next_day", "", "100"),
        ("REFUND", "pr_void", "", "-300"),
    ]


def capture(caller, payment_id, request_id, value, last):
    body = {
        "captureRequestId": request_id,
        "paymentId": payment_id,
        "captureAmount": {"currency": "USD", "value": value},
        "isLastCapture": last,
    }
    answer = caller.post("payments/capture", body)
    assert answer.result["resultCode"] == "SUCCESS", answer.json
    return answer.json


def test_each_capture_of_an_authorization_settles_under_its_own_ids(caller):
    with time_machine.travel(at(9), tick=False) as clock:
        authorization = pay_at_cashier(
            caller, pay_body("pa_1", "10000", paymentFactor={"isAuthorizationPayment": "true"})
        )
        clock.move_to(at(10))
        first = capture(caller, authorization, "cap_1", "3000", last=False)
        clock.move_to(at(15))
        second = capture(caller, authorization, "cap_2", "4999", last=True)
        clock.move_to(at(16))
        body = {
            "refundRequestId": "rf_1",
            "paymentId": authorization,
            "refundAmount": {"currency": "USD", "value": "500"},
        }
        assert caller.post("payments/refund", body).result["resultCode"] == "SUCCESS"

    day_rows = rows(settlement(caller))
    captures = {c.capture_request_id: c for c in Capture.objects.all()}
    assert (first["captureId"], second["captureId"]) == (captures["cap_1"].capture_id, captures["cap_2"].capture_id)
    assert [
        (r["record_type"], r["payment_id"], r["payment_request_id"], r["amount"], r["fee"], r["net"]) for r in day_rows
    ] == [
        ("PAYMENT", first["captureId"], "cap_1", "3000", "45", "2955"),
        ("PAYMENT", second["captureId"], "cap_2", "4999", "75", "4924"),
        # A refund request names the authorization, not a capture: the wallet cannot say which it returns.
        ("REFUND", authorization, "pa_1", "-500", "0", "-500"),
    ]
    assert [r["transaction_time"] for r in day_rows[:2]] == [first["captureTime"], second["captureTime"]]
    assert day_rows[2]["refund_id"] == Refund.objects.get().refund_id
    assert WalletPayment.objects.get(payment_id=authorization).payment_request_id == "pa_1"
    assert authorization not in {r["payment_id"] for r in day_rows[:2]}


def test_fee_follows_the_setting(caller, merchant, settings):
    settings.SANDBOX_FEE_BPS = 250
    with time_machine.travel(at(9), tick=False):
        paid_payment(merchant, amount=1000)
    assert rows(settlement(caller))[0]["fee"] == "25"


def test_an_empty_day_has_only_the_header(caller):
    text = settlement(caller).response.text
    assert text == (
        "record_type,payment_id,payment_request_id,refund_id,refund_request_id,"
        "currency,amount,fee,net,transaction_time,settlement_date\n"
    )


def test_the_request_must_be_signed(caller):
    import httpx

    response = httpx.get(f"{caller.base_url}/sandbox/settlements/{CLIENT_ID}/{DAY}.csv")
    assert response.status_code == 401
    assert response.json()["result"]["resultCode"] == "INVALID_CLIENT"
    path = f"/sandbox/settlements/{CLIENT_ID}/{DAY}.csv"
    headers = caller.headers(path, b"")  # signed as a POST
    response = caller.http.get(caller.base_url + path, headers=headers)
    assert response.status_code == 401
    assert response.json()["result"]["resultCode"] == "INVALID_SIGNATURE"


def test_another_clients_file_is_refused(caller, merchant_key):
    services.client_register(client_id="OTHER", public_key=public_pem(merchant_key))
    other = WalletCaller(caller.base_url, merchant_key, client_id="OTHER")
    answer = settlement(other, client_id=CLIENT_ID)
    assert answer.status_code == 403
    assert answer.result["resultCode"] == "ACCESS_DENIED"


def test_an_impossible_date_is_404(caller):
    assert caller.get(f"/sandbox/settlements/{CLIENT_ID}/2026-02-30.csv").status_code == 404

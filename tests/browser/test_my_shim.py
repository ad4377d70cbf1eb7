"""The my.* shim's contract (docs/my-shim.md), called from a page as a mini program's code calls it:
callbacks or a Promise, the super app's result and error shapes, and every way out of the cashier."""

import pytest

from tests.browser.test_demo import demo  # noqa: F401 - the seeded demo at the live server

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM_INFO_KEYS = {
    "model", "pixelRatio", "windowWidth", "windowHeight", "language", "version", "storage", "currentBattery",
    "system", "platform", "titleBarHeight", "statusBarHeight", "screenWidth", "screenHeight", "brand",
    "fontSizeSetting", "app",
}  # fmt: skip


@pytest.fixture
def shim(demo, page):  # noqa: F811 - the fixture imported above
    """The demo coffee page, whose shop has loaded (so the shim and a user session are in place)."""
    page.goto("/demo/demo-coffee-app/")
    page.locator("button.buy").first.wait_for()
    return page


WITHIN_10_S = "new Promise((_, reject) => setTimeout(() => reject('no answer within 10 s'), 10000))"


def _start(page, call: str) -> None:
    """Start ``call`` without waiting for it (the user has something to do first); ``_finished`` awaits it."""
    page.evaluate(f"() => {{ window.pendingCall = {call}; }}")


def _finished(page):
    return page.evaluate(f"() => Promise.race([window.pendingCall, {WITHIN_10_S}])")


def _settle(page, call: str):
    """``call`` (an expression giving a Promise) as {ok, value}: what it resolved or rejected with."""
    settled = f"Promise.race([{call}, {WITHIN_10_S}])"
    return page.evaluate(f"() => {settled}.then(value => ({{ok: true, value}}), value => ({{ok: false, value}}))")


def test_my_request_answers_with_data_status_and_headers_or_the_super_apps_error_numbers(shim):
    answered = _settle(shim, "my.request({url: '/healthz'})")
    assert answered["ok"]
    assert answered["value"]["status"] == 200
    assert "content-type" in answered["value"]["headers"]

    refused = _settle(shim, "my.request({url: '/api/v1/orders', method: 'POST', data: {description: 'x'}})")
    assert not refused["ok"]
    assert (refused["value"]["error"], refused["value"]["status"]) == (19, 401)
    assert refused["value"]["data"]["error"]["code"].startswith("auth.")

    unreachable = _settle(shim, "my.request({url: 'http://127.0.0.1:9/'})")
    assert unreachable["value"]["error"] == 12
    assert _settle(shim, "my.request({})")["value"]["error"] == 2


def test_callbacks_replace_the_promise_and_complete_always_runs(shim):
    calls = shim.evaluate(
        """() => new Promise(resolve => {
            const seen = [];
            const returned = my.getSiteInfo({
                success: result => seen.push(['success', result]),
                complete: () => resolve({seen, returned: returned === undefined}),
            });
        })"""
    )
    assert calls == {"seen": [["success", {"siteName": "SANDBOX"}]], "returned": True}
    failed = shim.evaluate("""() => new Promise(resolve => my.tradePay({fail: error => resolve(error)}))""")
    assert failed["error"] == 2


def test_trade_pay_takes_exactly_one_of_payment_url_or_order_str(shim):
    for options in ("{}", "{paymentUrl: '/sandbox/cashier/x', orderStr: 'a=b'}", "{tradeNO: '2026'}"):
        refused = _settle(shim, f"my.tradePay({options})")
        assert not refused["ok"]
        assert refused["value"]["error"] == 2


def test_closing_the_cashier_is_6001_and_an_order_str_the_wallet_refuses_is_4000(shim):
    _start(shim, "my.tradePay({paymentUrl: '/sandbox/'})")
    shim.locator(".my-shim-close").click()
    assert _finished(shim) == {"resultCode": "6001"}
    assert shim.locator(".my-shim-layer").count() == 0
    assert _settle(shim, "my.tradePay({orderStr: 'app_id=nobody&sign=x'})")["value"] == {"resultCode": "4000"}


def test_trade_pay_in_a_window_answers_when_the_user_pays_there(shim):
    order = _settle(
        shim,
        """(async () => {
            const {data: session} = await my.request({url: '/api/v1/sessions', method: 'POST', data: {
                app_id: 'demo-coffee-app', auth_code: (await my.getAuthCode({scopes: ['auth_base']})).authCode}});
            const headers = {Authorization: 'Bearer ' + session.token};
            return (await my.request({url: '/api/v1/orders', method: 'POST', headers,
                data: {items: [{sku: 'croissant', quantity: 1}], description: 'Butter croissant'}})).data;
        })()""",
    )["value"]
    shim.evaluate("my.configure({tradePayIn: 'window'})")
    with shim.expect_popup() as opened:
        _start(shim, f"my.tradePay({{paymentUrl: '{order['trade_pay']['paymentUrl']}'}})")
    opened.value.locator("button[value=pay]").click()
    assert _finished(shim) == {"resultCode": "9000"}


def test_get_auth_code_failures_name_the_scopes_and_system_info_and_alert_answer(shim):
    shim.evaluate("my.configure({appId: ''})")
    assert _settle(shim, "my.getAuthCode({scopes: ['auth_base']})")["value"]["error"] == 2
    shim.evaluate("my.configure({appId: 'x'.repeat(65)})")
    refused = _settle(shim, "my.getAuthCode({scopes: ['auth_base']})")["value"]
    assert refused["error"] == 11
    assert set(refused["authErrorScopes"]) == {"auth_base"}

    assert set(shim.evaluate("my.getSystemInfo()")) == SYSTEM_INFO_KEYS
    _start(shim, "my.alert({title: 'Hello', content: 'Your order is on its way'})")
    assert "Your order is on its way" in shim.locator("[role=alertdialog]").inner_text()
    shim.click(".my-shim-alert-ok")
    assert _finished(shim) == {}

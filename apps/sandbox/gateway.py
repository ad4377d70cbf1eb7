"""The classic gateway's APIs (``gateway.do``): query, refund, refund query and close of orderStr trades, and
the pre-authorisation's capture (``alipay.trade.pay`` with ``auth_no``), unfreeze and detail query.

Each handler reads ``biz_content``, calls one service or selector, and returns the members of the
``…_response`` object; authentication, faults and signing are the view's (``views.gateway``). Business
failures are ``WalletError`` with the gateway's codes (``ACQ.*``, and the fund-authorisation APIs' own),
answered as ``40004``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from . import selectors, services
from .classic import amount, text
from .models import ClassicOrder, ClassicUnfreeze, SandboxClient
from .protocol import WalletError, classic_amount, classic_time, fingerprint

INVALID = "ACQ.INVALID_PARAMETER"
SYSTEM_ERROR = {
    "code": "20000",
    "msg": "Service Currently Unavailable",
    "sub_code": "aop.ACQ.SYSTEM_ERROR",
    "sub_msg": "system error; call again with the same parameters",
}


def success(fields: dict) -> dict:
    return {"code": "10000", "msg": "Success", **fields}


def failure(error: WalletError) -> dict:
    """``isv.*`` (the request itself) is ``40002 Invalid Arguments``; anything else ``40004 Business Failed``."""
    code, msg = ("40002", "Invalid Arguments") if error.code.startswith("isv.") else ("40004", "Business Failed")
    return {"code": code, "msg": msg, "sub_code": error.code, "sub_msg": error.message}


def trade_query(client: SandboxClient, biz: dict) -> dict:
    order = _trade(client, biz)
    answer = {
        **_ids(order),
        "trade_status": _trade_status(order),
        "total_amount": classic_amount(order.amount),
        **_currency("trans_currency", order.currency),
    }
    if order.payer:
        answer["buyer_user_id"] = order.payer.customer_id
    if order.paid_at:
        answer["send_pay_date"] = classic_time(order.paid_at)
    return answer


def trade_refund(client: SandboxClient, biz: dict) -> dict:
    order = _trade(client, biz)
    value = amount(biz, "refund_amount", code=INVALID)
    if text(biz, "refund_currency", max_length=3, required=False, code=INVALID) not in ("", order.currency):
        raise WalletError(INVALID, f"refund_currency must be the trade's currency {order.currency}")
    refund, moved = services.classic_refund_create(
        order=order,
        out_request_no=text(biz, "out_request_no", required=False, code=INVALID) or order.out_no,
        amount=value,
        reason=text(biz, "refund_reason", max_length=256, required=False, code=INVALID),
    )
    return {
        **_ids(order),
        "buyer_user_id": order.payer.customer_id,
        "fund_change": "Y" if moved else "N",
        "refund_fee": classic_amount(refund.refund_total),
        "gmt_refund_pay": classic_time(refund.refunded_at),
        **_currency("refund_currency", refund.currency),
    }


def refund_query(client: SandboxClient, biz: dict) -> dict:
    """An unknown ``out_request_no`` is a success without refund fields, as at the real gateway."""
    order = _trade(client, biz)
    refund = order.refunds.filter(out_request_no=text(biz, "out_request_no", code=INVALID)).first()
    if refund is None:
        return {}
    answer = {
        **_ids(order),
        "out_request_no": refund.out_request_no,
        "total_amount": classic_amount(order.amount),
        "refund_amount": classic_amount(refund.amount),
        "refund_status": "REFUND_SUCCESS",
        "gmt_refund_pay": classic_time(refund.refunded_at),
        **_currency("refund_currency", refund.currency),
    }
    if refund.reason:
        answer["refund_reason"] = refund.reason
    return answer


def trade_close(client: SandboxClient, biz: dict) -> dict:
    return _ids(services.classic_trade_close(order=_trade(client, biz)))


def trade_pay(client: SandboxClient, biz: dict) -> dict:
    """Only the capture of a pre-authorisation (``product_code=PRE_AUTH_ONLINE`` with ``auth_no``) is
    simulated; ``auth_confirm_mode`` ``COMPLETE`` gives the rest back, ``NOT_COMPLETE`` (the default) keeps it."""
    if biz.get("product_code") != "PRE_AUTH_ONLINE":
        raise WalletError(INVALID, "only product_code PRE_AUTH_ONLINE (paying from a pre-authorisation) is simulated")
    mode = text(biz, "auth_confirm_mode", max_length=16, required=False, code=INVALID) or "NOT_COMPLETE"
    if mode not in ("COMPLETE", "NOT_COMPLETE"):
        raise WalletError(INVALID, "auth_confirm_mode must be COMPLETE or NOT_COMPLETE")
    capture = services.ClassicCapture(
        out_trade_no=text(biz, "out_trade_no", code=INVALID),
        amount=amount(biz, "total_amount", code=INVALID),
        subject=text(biz, "subject", max_length=256, code=INVALID),
        complete=mode == "COMPLETE",
    )
    freeze = selectors.classic_freeze_find(client=client, auth_no=text(biz, "auth_no", code=INVALID))
    if freeze is None:
        raise WalletError("ACQ.PAYMENT_AUTH_CODE_INVALID", "no pre-authorisation has this auth_no")
    if text(biz, "trans_currency", max_length=3, required=False, code=INVALID) not in ("", freeze.currency):
        raise WalletError(INVALID, f"trans_currency must be the pre-authorisation's currency {freeze.currency}")
    trade, _ = services.classic_auth_capture(freeze=freeze, capture=capture, fingerprint=fingerprint(biz))
    amount_text = classic_amount(trade.amount)
    return {
        **_ids(trade),
        "buyer_user_id": trade.payer.customer_id,
        "total_amount": amount_text,
        "receipt_amount": amount_text,
        "gmt_payment": classic_time(trade.paid_at),
        **_currency("trans_currency", trade.currency),
    }


def auth_unfreeze(client: SandboxClient, biz: dict) -> dict:
    freeze = _freeze(client, auth_no=text(biz, "auth_no", code=INVALID), out_order_no="")
    unfreeze, _ = services.classic_auth_unfreeze(
        freeze=freeze,
        out_request_no=text(biz, "out_request_no", code=INVALID),
        amount=amount(biz, "amount", code=INVALID),
        remark=text(biz, "remark", max_length=100, code=INVALID),
    )
    return {
        "auth_no": freeze.wallet_no,
        "out_order_no": freeze.out_no,
        "operation_id": unfreeze.operation_id,
        "out_request_no": unfreeze.out_request_no,
        "amount": classic_amount(unfreeze.amount),
        "status": "SUCCESS",
        "gmt_trans": classic_time(unfreeze.unfrozen_at),
    }


def auth_detail_query(client: SandboxClient, biz: dict) -> dict:
    """One operation of a freeze (the freeze itself unless ``out_request_no`` or ``operation_id`` names an
    unfreeze) with the freeze's state and running totals. ``order_status``: ``INIT`` (not authorised yet),
    ``AUTHORIZED``, ``FINISH`` (paid from, nothing left frozen), ``CLOSED`` (expired, or unfrozen in full)."""
    freeze = _freeze(
        client,
        auth_no=text(biz, "auth_no", required=False, code=INVALID),
        out_order_no=text(biz, "out_order_no", required=False, code=INVALID),
    )
    freeze = services.classic_auth_expire_if_due(order=freeze)
    operation = _operation(
        freeze,
        out_request_no=text(biz, "out_request_no", required=False, code=INVALID),
        operation_id=text(biz, "operation_id", required=False, code=INVALID),
    )
    answer = {
        "auth_no": freeze.wallet_no,
        "out_order_no": freeze.out_no,
        "order_status": _order_status(freeze),
        "order_title": freeze.title,
        "total_freeze_amount": classic_amount(freeze.amount if freeze.paid_at else 0),
        "rest_amount": classic_amount(freeze.rest),
        "total_pay_amount": classic_amount(freeze.captured),
        "out_request_no": operation.out_request_no,
        "amount": classic_amount(operation.amount),
        "gmt_create": classic_time(freeze.created_at),
        **_currency("trans_currency", freeze.currency),
    }
    if isinstance(operation, ClassicUnfreeze):
        answer |= {
            "operation_id": operation.operation_id,
            "operation_type": "UNFREEZE",
            "status": "SUCCESS",
            "remark": operation.remark,
            "gmt_create": classic_time(operation.unfrozen_at),
            "gmt_trans": classic_time(operation.unfrozen_at),
        }
    else:
        answer |= {"operation_type": "FREEZE", "status": _freeze_operation_status(freeze)}
        if freeze.paid_at:
            answer |= {"operation_id": freeze.operation_id, "gmt_trans": classic_time(freeze.paid_at)}
    if freeze.payer:
        answer["payer_user_id"] = freeze.payer.customer_id
    return answer


HANDLERS: dict[str, Callable[[SandboxClient, dict], dict]] = {
    "alipay.trade.query": trade_query,
    "alipay.trade.refund": trade_refund,
    "alipay.trade.fastpay.refund.query": refund_query,
    "alipay.trade.close": trade_close,
    "alipay.trade.pay": trade_pay,
    "alipay.fund.auth.order.unfreeze": auth_unfreeze,
    "alipay.fund.auth.operation.detail.query": auth_detail_query,
}


def _freeze(client: SandboxClient, *, auth_no: str, out_order_no: str) -> ClassicOrder:
    """The freeze named by ``auth_no`` (it wins) or ``out_order_no``; a freeze never opened does not exist."""
    if not auth_no and not out_order_no:
        raise WalletError(INVALID, "auth_no or out_order_no is required")
    freeze = selectors.classic_freeze_find(client=client, auth_no=auth_no, out_order_no=out_order_no)
    if freeze is None:
        raise WalletError("AUTH_ORDER_NOT_EXIST", "no such pre-authorisation")
    return freeze


def _operation(freeze: ClassicOrder, *, out_request_no: str, operation_id: str) -> ClassicOrder | ClassicUnfreeze:
    if operation_id:
        if operation_id == freeze.operation_id:
            return freeze
        found = freeze.unfreezes.filter(operation_id=operation_id).first()
    elif out_request_no and out_request_no != freeze.out_request_no:
        found = freeze.unfreezes.filter(out_request_no=out_request_no).first()
    else:
        return freeze
    if found is None:
        raise WalletError("AUTH_OPERATION_NOT_EXIST", "no such operation of this pre-authorisation")
    return found


def _order_status(freeze: ClassicOrder) -> str:
    if freeze.status == ClassicOrder.Status.SUCCESS:
        return "AUTHORIZED"
    if freeze.status == ClassicOrder.Status.CLOSED:
        return "FINISH" if freeze.captured and not freeze.lapsed() else "CLOSED"
    return "INIT"


def _freeze_operation_status(freeze: ClassicOrder) -> str:
    """The freeze operation: ``INIT`` until the user authorises, ``CLOSED`` if it expired before that."""
    if freeze.paid_at:
        return "SUCCESS"
    return "CLOSED" if freeze.status == ClassicOrder.Status.CLOSED else "INIT"


def _trade(client: SandboxClient, biz: dict) -> ClassicOrder:
    """The trade named by ``trade_no`` or ``out_trade_no``; an orderStr never opened does not exist yet."""
    trade_no = text(biz, "trade_no", required=False, code=INVALID)
    out_trade_no = text(biz, "out_trade_no", required=False, code=INVALID)
    if not trade_no and not out_trade_no:
        raise WalletError(INVALID, "out_trade_no or trade_no is required")
    order = selectors.classic_trade_find(client=client, trade_no=trade_no, out_trade_no=out_trade_no)
    if order is None:
        raise WalletError("ACQ.TRADE_NOT_EXIST", "no such trade")
    return order


def _trade_status(order: ClassicOrder) -> str:
    if order.status == ClassicOrder.Status.SUCCESS:
        return "TRADE_SUCCESS"
    if order.status == ClassicOrder.Status.CLOSED or order.is_expired(timezone.now()):
        return "TRADE_CLOSED"
    return "WAIT_BUYER_PAY"


def _ids(order: ClassicOrder) -> dict:
    return {"trade_no": order.wallet_no, "out_trade_no": order.out_no}


def _currency(field: str, currency: str) -> dict:
    """Cross-border answers name their currency; CNY, the gateway's own, goes unsaid."""
    return {} if currency == "CNY" else {field: currency}

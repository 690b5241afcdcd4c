"""localstripe (PyPI, a fake stateful Stripe API) with the few changes the payment service's
Stripe provider needs to be tested against it over HTTP. Run by scripts/stripe-test-server:

    python localstripe_compat.py --port 0     # prints "LISTENING 127.0.0.1:<port>" when ready

Binds 127.0.0.1 only and keeps its state in memory (one isolated instance per test run).
Every patch below is test tooling, not product code; each says what real Stripe does that
localstripe 1.15.10 does not.
"""

import argparse
import json
import socket
import sys
from urllib.parse import parse_qsl

from aiohttp import web

# The patches go in before `localstripe.server` is imported: it registers its routes with the
# functions in `resources.extra_apis` at import time.
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import Charge, PaymentIntent, PaymentMethod

# 1. State stays in memory. localstripe pickles its whole store to /tmp/localstripe.pickle on
#    every write (and loads it on start), which would mix concurrent instances.
resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None

# 2. Stripe's test payment methods. localstripe knows `pm_card_visa` but not
#    `pm_card_chargeDeclined` / `pm_card_authenticationRequired`, and declines 4000000000000002
#    only when attaching it to a customer, whereas Stripe declines it when charging.
_TEST_CARDS = {
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_authenticationRequired": "4000002500003155",
}
_canonical = PaymentMethod._try_get_canonical_test_article.__func__


def _try_get_canonical_test_article(cls, id):
    if id in _TEST_CARDS:
        return PaymentMethod(type="card", card=dict(number=_TEST_CARDS[id], exp_month="12", exp_year="2030", cvc="123"))
    return _canonical(cls, id)


PaymentMethod._try_get_canonical_test_article = classmethod(_try_get_canonical_test_article)
_charging_is_declined = PaymentMethod._charging_is_declined


def _declines(self):
    return _charging_is_declined(self) or (self.type == "card" and self._card_number == "4000000000000002")


PaymentMethod._charging_is_declined = _declines

# 3. Confirming with a payment method (`POST /v1/payment_intents/{id}/confirm` with
#    `payment_method=…`) is how Stripe's API confirms; localstripe answers 500 "Not implemented".
#    Like Stripe, a new payment method may also be tried after a decline or a 3-D Secure prompt.
_api_confirm = PaymentIntent._api_confirm.__func__


def _confirm_with_payment_method(cls, id, payment_method=None, **kwargs):
    if payment_method is not None:
        obj = cls._api_retrieve(id)
        if obj.status not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise UserError(400, "You cannot confirm this PaymentIntent because it has a status of " + obj.status,
                            {"code": "payment_intent_unexpected_state"})
        PaymentMethod._api_retrieve(payment_method)  # 404 for an unknown one
        obj.payment_method = payment_method
        obj.latest_charge = None
        obj.next_action = None
    return _api_confirm(cls, id, **kwargs)


PaymentIntent._api_confirm = classmethod(_confirm_with_payment_method)
for i, (method, url, func) in enumerate(resources.extra_apis):
    if url == "/v1/payment_intents/{id}/confirm":
        resources.extra_apis[i] = (method, url, PaymentIntent._api_confirm)

# 4. A partial capture: Stripe reports the captured amount as `amount_received`; localstripe
#    does not keep it.
_capture = Charge._capture


def _capture_and_remember(self, amount, on_success=None):
    _capture(self, amount, on_success=on_success)
    self._amount_captured = self.amount if amount is None else int(amount)


Charge._capture = _capture_and_remember

# 5. Payment intent fields async-stripe 0.41 requires and localstripe leaves out
#    (`amount_capturable`, `amount_received`, `confirmation_method`, `payment_method_types`,
#    `last_payment_error.type`), and `latest_charge` as an id: localstripe embeds the whole charge,
#    which has too few fields to parse as a Stripe Charge.
_export = PaymentIntent._export


def _export_like_stripe(self, expand=None):
    obj = _export(self, expand=expand)
    charge = self.latest_charge
    succeeded = charge is not None and charge.status == "succeeded"
    obj["latest_charge"] = charge.id if charge is not None else None
    obj.pop("charges", None)
    obj["amount_capturable"] = self.amount if succeeded and not charge.captured else 0
    obj["amount_received"] = getattr(charge, "_amount_captured", charge.amount) if succeeded and charge.captured else 0
    obj["confirmation_method"] = "automatic"
    obj["payment_method_types"] = ["card"]
    if obj.get("last_payment_error"):
        obj["last_payment_error"] = dict(obj["last_payment_error"], type="card_error")
    return obj


PaymentIntent._export = _export_like_stripe

# 6. Declines are `card_error`s in Stripe; localstripe labels every error `invalid_request_error`.
_user_error_init = UserError.__init__


def _user_error(self, code, message=None, contents=None):
    _user_error_init(self, code, message, contents)
    if code == 402:
        self.body["error"]["type"] = "card_error"


UserError.__init__ = _user_error

# 7. Idempotency keys: Stripe replays the first answer for a repeated `Idempotency-Key` and
#    refuses the key with other parameters (400 `idempotency_error`); localstripe ignores it.
#    Parameters are compared as a sorted list (clients may send form fields in any order).
_answers = {}


@web.middleware
async def idempotency(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    fingerprint = (request.path, tuple(sorted(parse_qsl((await request.read()).decode(), keep_blank_values=True))))
    if key in _answers:
        first, status, text = _answers[key]
        if first != fingerprint:
            return web.json_response({"error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            }}, status=400)
        return web.Response(status=status, text=text, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    response = await handler(request)
    if response.status < 500:
        _answers[key] = (fingerprint, response.status, response.text)
    return response


from localstripe import server  # noqa: E402  (after the patches above)

server.app.middlewares.insert(0, idempotency)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    print("LISTENING 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
    web.run_app(server.app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    sys.exit(main())

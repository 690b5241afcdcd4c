"""Fixtures of the OpenAPI contract run (scripts/schemathesis). Standard library only.

    python scripts/schemathesis_setup.py http://127.0.0.1:PORT OUT_DIR

Signs in the seeded demo accounts and creates real resources through the public API, then
writes into OUT_DIR:

- `fixtures.env`: NAME=VALUE lines (`SHOP_ST_…`) that schemathesis.toml names (the tokens);
- `openapi.json`: the served document, with the fixtures as the `example` of the path
  parameters and body fields that name stored data or depend on the deployment (EXAMPLES
  below): the examples phase and the coverage phase's valid cases then reach real resources
  (an existing product, order, payment, an allowed redirect origin, a known payment method…),
  while fuzzing and the stateful phase still try other values. Examples change no rule of the
  document. (schemathesis's `parameters` would replace every generated value, also those its
  coverage phase made invalid on purpose, and then report the valid request it really sent
  as "accepted schema-violating request".)
"""

import json
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE = sys.argv[1].rstrip("/")
OUT = sys.argv[2]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


NO_REDIRECT = urllib.request.build_opener(NoRedirect)


def call(method, path, body=None, token=None, headers=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, raw, hdrs = res.status, res.read(), res.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    if status not in expect:
        sys.exit(f"schemathesis setup: {method} {path} answered {status}: {raw[:500]!r}")
    return (json.loads(raw) if raw else None), hdrs


def login(email, password):
    body, _ = call("POST", "/api/v1/auth/login", {"email": email, "password": password})
    return body["accessToken"], body["user"]["id"]


admin, admin_id = login("admin@example.com", "Admin123!")
customer, customer_id = login("customer@example.com", "Customer123!")

# A user the admin operations may change (roles, disable, enable) without touching the demo
# accounts the run signs in with.
# Registration answers 202 (the address is verified by mail); an unverified account may sign in.
# Its token is also the one `POST /auth/logout-all` signs out (scripts/schemathesis_hooks.py).
call(
    "POST",
    "/api/v1/auth/register",
    {"email": "contract-test@example.com", "password": "Contract123!", "firstName": "Contract"},
    expect=(202,),
)
throwaway, user_id = login("contract-test@example.com", "Contract123!")

products, _ = call("GET", "/api/v1/products?pageSize=20", token=admin)
product = products["items"][0]
category_id = product["category"]["id"]
brand_id = (product.get("brand") or {}).get("id") or call("GET", "/api/v1/brands")[0]["items"][0]["id"]

# A product with plenty of stock for orders and carts (the seeded ones have a few units).
bulk, _ = call(
    "POST",
    "/api/v1/products",
    {
        "name": "Contract Test Bulk Mug",
        "sku": "CT-BULK-1",
        "price": {"amount": 500, "currency": "USD"},
        "categoryId": category_id,
    },
    token=admin,
)
call(
    "POST",
    "/api/v1/inventory",
    {"productId": bulk["id"], "sku": "CT-BULK-1", "quantity": 1000000},
    token=admin,
)

# A product of its own for DELETE (the others keep reading the first one).
doomed, _ = call(
    "POST",
    "/api/v1/products",
    {
        "name": "Contract Test Doomed Lamp",
        "sku": "CT-DOOMED-1",
        "price": {"amount": 1000, "currency": "USD"},
        "categoryId": category_id,
    },
    token=admin,
)


def address():
    return {
        "name": "Ada Lovelace",
        "line1": "12 Analytical Row",
        "city": "London",
        "postalCode": "N1 9GU",
        "country": "GB",
    }


def place_order(token):
    order, _ = call(
        "POST",
        "/api/v1/orders",
        {"items": [{"productId": bulk["id"], "quantity": 1}], "shippingAddress": address()},
        token=token,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        expect=(201, 202),
    )
    return order["id"]


# The admin's order with a payment intent; another with a hosted checkout session.
order_id = place_order(admin)
payment, _ = call(
    "POST",
    "/api/v1/payments/intent",
    {"orderId": order_id},
    token=admin,
    headers={"Idempotency-Key": str(uuid.uuid4())},
)
session_order_id = place_order(admin)
session, _ = call(
    "POST",
    "/api/v1/payments/checkout-session",
    {
        "orderId": session_order_id,
        "successUrl": "http://localhost/ok",
        "cancelUrl": "http://localhost/cancelled",
    },
    token=admin,
    headers={"Idempotency-Key": str(uuid.uuid4())},
)

# The session is closed before the run: paying or cancelling an open one answers 303 to the
# shop's front end, which schemathesis (requests) always follows and cannot reach.
req = urllib.request.Request(
    f"{BASE}/api/v1/payments/hosted/{session['sessionId']}/cancel", data=b"", method="POST"
)
try:
    NO_REDIRECT.open(req, timeout=30)
    sys.exit("schemathesis setup: cancelling the checkout session did not redirect")
except urllib.error.HTTPError as e:
    if e.code != 303:
        sys.exit(f"schemathesis setup: cancelling the checkout session answered {e.code}")

# A guest cart and a line in the admin's cart.
_, hdrs = call("POST", "/api/v1/cart/items", {"productId": bulk["id"], "quantity": 1})
cart_token = hdrs["X-Cart-Token"]
call("POST", "/api/v1/cart/items", {"productId": bulk["id"], "quantity": 1}, token=admin)

# A notification (the order confirmations are sent through the in-process bus).
notification_id = ""
for _ in range(50):
    page, _ = call("GET", "/api/v1/notifications/admin/all?pageSize=1", token=admin)
    if page["items"]:
        notification_id = page["items"][0]["id"]
        break
    time.sleep(0.1)
if not notification_id:
    sys.exit("schemathesis setup: no notification appeared")

fixtures = {
    "SHOP_ST_ADMIN_TOKEN": admin,
    "SHOP_ST_CUSTOMER_TOKEN": customer,
    "SHOP_ST_THROWAWAY_TOKEN": throwaway,
}
with open(f"{OUT}/fixtures.env", "w") as f:
    for k, v in fixtures.items():
        f.write(f"{k}={v}\n")

# The examples: (method, path) of a path parameter -> value, and schema property -> value.
PATH_PINS = {
    ("*", "/api/v1/products/{id}"): product["id"],
    ("delete", "/api/v1/products/{id}"): doomed["id"],
    ("*", "/api/v1/categories/{id}"): category_id,
    ("*", "/api/v1/brands/{id}"): brand_id,
    ("*", "/api/v1/users/{id}"): user_id,
    ("*", "/api/v1/users/{id}/roles"): user_id,
    ("*", "/api/v1/users/{id}/disable"): user_id,
    ("*", "/api/v1/users/{id}/enable"): user_id,
    ("*", "/api/v1/notifications/{id}"): notification_id,
    ("*", "/api/v1/notifications/{id}/resend"): notification_id,
    ("*", "/api/v1/payments/hosted/{sessionId}"): session["sessionId"],
    ("*", "/api/v1/payments/hosted/{sessionId}/pay"): session["sessionId"],
    ("*", "/api/v1/payments/hosted/{sessionId}/cancel"): session["sessionId"],
}
PATH_PREFIX_PINS = [
    ("/api/v1/orders/{id}", order_id),
    ("/api/v1/bff/orders/{id}", order_id),
    ("/api/v1/payments/{id}", payment["id"]),
    ("/api/v1/payments/order/{orderId}", order_id),
    ("/api/v1/inventory/reservations/{orderId}", order_id),
    ("/api/v1/inventory/{productId}", bulk["id"]),
    ("/api/v1/cart/items/{productId}", bulk["id"]),
]
SCHEMA_PINS = {
    ("AddItem", "productId"): bulk["id"],
    ("OrderLineRequest", "productId"): bulk["id"],
    ("CheckoutRequest", "shippingMethod"): "standard",
    ("CreateOrderRequest", "shippingMethod"): "standard",
    ("ProductInput", "categoryId"): category_id,
    ("ProductInput", "brandId"): brand_id,
    ("ProductPatch", "categoryId"): category_id,
    ("ProductPatch", "brandId"): brand_id,
    ("CategoryInput", "parentId"): category_id,
    ("MergeRequest", "cartToken"): cart_token,
    ("CreateIntentRequest", "orderId"): order_id,
    ("CreateCheckoutSessionRequest", "orderId"): session_order_id,
    ("CreateCheckoutSessionRequest", "successUrl"): "http://localhost/ok",
    ("CreateCheckoutSessionRequest", "cancelUrl"): "http://localhost/cancelled",
    ("ConfirmRequest", "paymentMethod"): "pm_card_visa",
    ("ReservationLine", "productId"): bulk["id"],
    ("ReserveRequest", "orderId"): order_id,
    ("NewStock", "productId"): doomed["id"],
}

with urllib.request.urlopen(f"{BASE}/api/v1/openapi.json", timeout=30) as res:
    doc = json.load(res)
examples_set = 0
for path, item in doc["paths"].items():
    for method, op in item.items():
        value = PATH_PINS.get((method, path)) or PATH_PINS.get(("*", path))
        if value is None:
            value = next((v for p, v in PATH_PREFIX_PINS if path.startswith(p)), None)
        for param in op.get("parameters", []):
            if param["in"] == "path" and value is not None:
                param["example"] = value
                examples_set += 1
schemas = doc["components"]["schemas"]
for (schema, prop), value in SCHEMA_PINS.items():
    target = schemas[schema]["properties"][prop]
    target["examples"] = [value]
    examples_set += 1
missing = [
    f"{m.upper()} {p}"
    for p, item in doc["paths"].items()
    for m, op in item.items()
    if any(x["in"] == "path" and "example" not in x for x in op.get("parameters", []))
]
if missing:
    sys.exit(f"schemathesis setup: path parameters without a fixture: {missing}")
with open(f"{OUT}/openapi.json", "w") as f:
    json.dump(doc, f, indent=1)
print(f"schemathesis setup: {examples_set} examples name the fixtures", file=sys.stderr)

// Orders: the list (status filter, search by id or customer email, pages) and one order with
// its lines, totals, address, history, payment, refunds and shipment, and the admin actions.

import { api, get } from '../api.js';
import {
  h, mount, money, when, badge, table, pager, section, pageHeader, errorBox, loading, shortId, field, input, select,
  filterBar, dialog, toast, uuid, isUuid, toMinor, fromMinor, formData,
} from '../ui.js';

const STATUSES = ['PENDING', 'AWAITING_PAYMENT', 'PAID', 'PROCESSING', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'FAILED'];
const TERMINAL = ['DELIVERED', 'CANCELLED', 'FAILED'];

export async function render(main, ctx) {
  if (ctx.rest[0]) return detail(main, ctx, ctx.rest[0]);
  return list(main, ctx);
}

// ---------------------------------------------------------------- the list

async function list(main, ctx) {
  const p = ctx.params;
  const status = p.get('status') || '';
  const q = p.get('q') || '';
  const page = Number(p.get('page') || 1);
  const go = (changes) => {
    const next = new URLSearchParams({ status, q, page: String(page), ...changes });
    for (const [k, v] of [...next]) if (!v || (k === 'page' && v === '1')) next.delete(k);
    ctx.navigate(`/admin/orders${next.size ? `?${next}` : ''}`);
  };
  const results = h('div', {}, loading('Loading orders'));
  mount(
    main,
    pageHeader('Orders'),
    filterBar(
      'Filter orders',
      [
        field('Status', select([['', 'Any status'], ...STATUSES.map((s) => [s, s.replaceAll('_', ' ').toLowerCase()])], { name: 'status', value: status })),
        field('Order id or customer email', input({ name: 'q', value: q, type: 'search', placeholder: 'e.g. ada@example.com' })),
      ],
      (v) => go({ status: v.status, q: v.q.trim(), page: '1' }),
    ),
    results,
  );
  try {
    if (isUuid(q)) {
      const order = await api('GET', `/api/v1/orders/${q.trim()}`).catch((e) => (e.status === 404 ? null : Promise.reject(e)));
      if (order) {
        ctx.navigate(`/admin/orders/${order.id}`, { replace: true });
        return;
      }
      mount(results, h('p', { class: 'empty' }, `No order has the id ${q}.`));
      return;
    }
    const data = await get('/api/v1/orders', { status, email: q, page, pageSize: 20 });
    mount(
      results,
      table(
        'Orders, newest first',
        [
          { label: 'Order', header: true, cell: (o) => h('a', { href: `/admin/orders/${o.id}`, class: 'mono' }, shortId(o.id)) },
          { label: 'Placed', cell: (o) => when(o.createdAt) },
          { label: 'Customer', cell: (o) => o.customerEmail || h('span', { class: 'muted' }, shortId(o.userId)) },
          { label: 'Status', cell: (o) => badge(o.status) },
          { label: 'Items', class: 'num', cell: (o) => o.items.reduce((n, i) => n + i.quantity, 0) },
          { label: 'Total', class: 'num', cell: (o) => money(o.total) },
          { label: 'Payment', cell: (o) => (o.paymentStatus ? badge(o.paymentStatus) : '—') },
        ],
        data.items,
        { emptyText: q || status ? 'No order matches these filters.' : 'No orders yet.' },
      ),
      pager(data, (n) => go({ page: String(n) })),
    );
  } catch (err) {
    mount(results, errorBox(err));
  }
}

// ---------------------------------------------------------------- one order

async function detail(main, ctx, id) {
  mount(main, pageHeader(`Order ${shortId(id)}`), loading('Loading the order'));
  let order;
  try {
    order = await api('GET', `/api/v1/orders/${id}`);
  } catch (err) {
    mount(main, pageHeader(`Order ${shortId(id)}`), errorBox(err), h('p', {}, h('a', { href: '/admin/orders' }, 'All orders')));
    return;
  }
  const [payments, shipment] = await Promise.all([
    api('GET', `/api/v1/payments/order/${id}`).catch((e) => (e.status === 404 ? [] : { error: e })),
    api('GET', `/api/v1/orders/${id}/shipment`).catch((e) => ({ error: e })),
  ]);
  const payment = Array.isArray(payments) ? payments[0] : null;
  ctx.setTitle(`Order ${shortId(id)}`);
  const reload = () => detail(main, ctx, id).then(() => main.querySelector('h1').focus());

  const actions = [];
  if (['PAID', 'PROCESSING'].includes(order.status)) actions.push(h('button', { type: 'button', class: 'btn btn-primary', onclick: () => ship(order, reload) }, 'Ship…'));
  if (order.status === 'SHIPPED') actions.push(h('button', { type: 'button', class: 'btn btn-primary', onclick: () => deliver(order, reload) }, 'Mark delivered…'));
  if (payment && ['CAPTURED', 'PARTIALLY_REFUNDED'].includes(payment.status)) actions.push(h('button', { type: 'button', class: 'btn', onclick: () => refund(payment, reload) }, 'Refund…'));
  if (!TERMINAL.includes(order.status)) actions.push(h('button', { type: 'button', class: 'btn btn-danger', onclick: () => cancel(order, reload) }, 'Cancel order…'));
  actions.push(h('a', { class: 'btn', href: `/admin/events?orderId=${order.id}` }, 'Events'));

  const a = order.shippingAddress || {};
  mount(
    main,
    pageHeader(h('span', {}, `Order ${shortId(order.id)} `, badge(order.status)), ...actions),
    h('p', { class: 'muted mono' }, order.id),
    h(
      'div',
      { class: 'grid' },
      section(
        'Summary',
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Placed'), h('dd', {}, when(order.createdAt)),
          h('dt', {}, 'Customer'), h('dd', {}, order.customerEmail || '—', h('br'), h('span', { class: 'muted mono' }, order.userId)),
          h('dt', {}, 'Subtotal'), h('dd', {}, money(order.subtotal)),
          h('dt', {}, 'Shipping'), h('dd', {}, `${money(order.shippingCost)} (${order.shippingMethod})`),
          h('dt', {}, 'Tax'), h('dd', {}, money(order.tax)),
          h('dt', {}, 'Total'), h('dd', {}, h('strong', {}, money(order.total))),
          h('dt', {}, 'Refunded'), h('dd', {}, money(order.refundedAmount)),
          order.failureReason ? [h('dt', {}, 'Reason'), h('dd', {}, order.failureReason)] : null,
          order.notes ? [h('dt', {}, 'Notes'), h('dd', {}, order.notes)] : null,
        ),
      ),
      section(
        'Shipping address',
        h('address', {}, a.name, h('br'), a.line1, a.line2 ? [h('br'), a.line2] : null, h('br'), `${a.postalCode || ''} ${a.city || ''}`, a.state ? `, ${a.state}` : '', h('br'), a.country, a.phone ? [h('br'), a.phone] : null),
      ),
      section(
        'Shipment',
        shipment.error
          ? errorBox(shipment.error)
          : h(
              'dl',
              { class: 'facts' },
              h('dt', {}, 'Status'), h('dd', {}, badge(shipment.status)),
              h('dt', {}, 'Carrier'), h('dd', {}, shipment.carrier || '—'),
              h('dt', {}, 'Tracking'), h('dd', {}, shipment.trackingNumber || '—'),
              h('dt', {}, 'Shipped'), h('dd', {}, when(shipment.shippedAt)),
              h('dt', {}, 'Delivered'), h('dd', {}, when(shipment.deliveredAt)),
            ),
      ),
    ),
    section(
      'Lines',
      table(
        'Order lines',
        [
          { label: 'Product', header: true, cell: (i) => [i.name, h('br'), h('span', { class: 'muted mono' }, i.sku)] },
          { label: 'Quantity', class: 'num', cell: (i) => i.quantity },
          { label: 'Unit price', class: 'num', cell: (i) => money(i.unitPrice) },
          { label: 'Line total', class: 'num', cell: (i) => money(i.lineTotal) },
        ],
        order.items,
      ),
    ),
    section('Payment', paymentView(payments)),
    section(
      'Status history',
      table(
        'Status changes, oldest first',
        [
          { label: 'When', cell: (e) => when(e.at) },
          { label: 'From', cell: (e) => (e.from ? badge(e.from) : '—') },
          { label: 'To', cell: (e) => badge(e.to) },
          { label: 'By', cell: (e) => h('span', { class: 'mono' }, e.actor) },
          { label: 'Reason', cell: (e) => e.reason || '—' },
        ],
        order.history || [],
      ),
    ),
  );
}

function paymentView(payments) {
  if (payments && payments.error) return errorBox(payments.error);
  if (!payments.length) return h('p', { class: 'empty' }, 'No payment yet.');
  return payments.map((p, i) =>
    h(
      'div',
      { class: i ? 'muted' : '' },
      i ? h('h3', {}, 'Earlier attempt') : null,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Payment'), h('dd', { class: 'mono' }, p.id),
        h('dt', {}, 'Status'), h('dd', {}, badge(p.status)),
        h('dt', {}, 'Amount'), h('dd', {}, money(p.amount)),
        h('dt', {}, 'Captured'), h('dd', {}, money({ amount: p.capturedAmount, currency: p.amount.currency })),
        h('dt', {}, 'Refunded'), h('dd', {}, money({ amount: p.refundedAmount, currency: p.amount.currency })),
        h('dt', {}, 'Provider'), h('dd', {}, `${p.provider} · `, h('span', { class: 'mono' }, p.providerPaymentId)),
        p.failureReason ? [h('dt', {}, 'Failure'), h('dd', {}, p.failureReason)] : null,
      ),
      p.refunds && p.refunds.length
        ? [h('h3', {}, 'Refunds'), table('Refunds of this payment', [
            { label: 'When', cell: (r) => when(r.createdAt) },
            { label: 'Amount', class: 'num', cell: (r) => money(r.amount) },
            { label: 'Status', cell: (r) => badge(r.status) },
            { label: 'Reason', cell: (r) => r.reason || '—' },
          ], p.refunds)]
        : null,
      h('h3', {}, 'Payment history'),
      table('Payment status changes', [
        { label: 'When', cell: (e) => when(e.at) },
        { label: 'To', cell: (e) => badge(e.to) },
        { label: 'Source', cell: (e) => e.source },
        { label: 'Reason', cell: (e) => e.reason || '—' },
      ], p.history || []),
    ),
  );
}

// ---------------------------------------------------------------- actions

async function ship(order, reload) {
  const key = uuid();
  const done = await dialog({
    title: `Ship order ${shortId(order.id)}`,
    submitLabel: 'Ship',
    body: [
      h('p', {}, 'The customer is emailed the carrier and tracking number.'),
      field('Carrier', input({ name: 'carrier', required: true, autocomplete: 'off' }), { name: 'carrier' }),
      field('Tracking number', input({ name: 'trackingNumber', required: true, autocomplete: 'off' }), { name: 'trackingNumber' }),
    ],
    submit: (form) => {
      const v = formData(form);
      return api('POST', `/api/v1/orders/${order.id}/shipment/ship`, { body: { carrier: v.carrier.trim(), trackingNumber: v.trackingNumber.trim() }, idempotencyKey: key });
    },
  });
  if (done) {
    toast(`Order ${shortId(order.id)} shipped.`);
    reload();
  }
}

async function deliver(order, reload) {
  const key = uuid();
  const done = await dialog({
    title: `Mark order ${shortId(order.id)} delivered`,
    submitLabel: 'Mark delivered',
    body: h('p', {}, 'The order becomes DELIVERED and the customer is told. This cannot be undone.'),
    submit: () => api('POST', `/api/v1/orders/${order.id}/shipment/deliver`, { idempotencyKey: key }),
  });
  if (done) {
    toast(`Order ${shortId(order.id)} delivered.`);
    reload();
  }
}

async function cancel(order, reload) {
  const key = uuid();
  const paid = !['PENDING', 'AWAITING_PAYMENT'].includes(order.status);
  const done = await dialog({
    title: `Cancel order ${shortId(order.id)}`,
    submitLabel: 'Cancel the order',
    danger: true,
    body: [
      h('p', {}, paid ? 'The stock goes back and the payment is refunded (or voided when not captured yet).' : 'The reserved stock is released.'),
      field('Reason', h('textarea', { name: 'reason', required: true, maxlength: '500' }), { name: 'reason', hint: 'Shown in the history and to the customer.' }),
    ],
    submit: (form) => {
      const reason = formData(form).reason.trim();
      if (!reason) throw Object.assign(new Error('Give a reason.'), { problem: { title: 'A reason is required', errors: [{ field: 'reason', message: 'required' }] } });
      return api('POST', `/api/v1/orders/${order.id}/cancel`, { body: { reason }, idempotencyKey: key });
    },
  });
  if (done) {
    toast(`Order ${shortId(order.id)} cancelled.`);
    reload();
  }
}

async function refund(payment, reload) {
  // One key per refund the admin means to make: a retry after a network failure cannot refund twice.
  const key = uuid();
  const cur = payment.amount.currency;
  const refundable = payment.capturedAmount - payment.refundedAmount;
  const amount = input({ name: 'amount', inputmode: 'decimal', value: fromMinor(refundable, cur), autocomplete: 'off', disabled: true });
  const done = await dialog({
    title: 'Refund the payment',
    submitLabel: 'Refund',
    danger: true,
    body: [
      h('p', {}, `Up to ${money({ amount: refundable, currency: cur })} can be refunded.`),
      h(
        'fieldset',
        {},
        h('legend', {}, 'How much'),
        h('div', { class: 'check' }, h('input', { type: 'radio', name: 'kind', value: 'full', id: 'refund-full', checked: true, onchange: () => (amount.disabled = true) }), h('label', { for: 'refund-full' }, 'Everything refundable')),
        h('div', { class: 'check' }, h('input', { type: 'radio', name: 'kind', value: 'partial', id: 'refund-partial', onchange: () => { amount.disabled = false; amount.focus(); } }), h('label', { for: 'refund-partial' }, 'Part of it')),
        field(`Amount (${cur})`, amount, { name: 'amount' }),
      ),
      field('Reason', input({ name: 'reason', maxlength: '500' }), { name: 'reason' }),
    ],
    submit: (form) => {
      const v = formData(form);
      const body = { reason: v.reason.trim() || undefined };
      if (v.kind === 'partial') {
        const minor = toMinor(amount.value, cur);
        if (!(minor > 0)) throw Object.assign(new Error('Enter an amount.'), { problem: { title: 'Invalid amount', errors: [{ field: 'amount', message: `a positive amount in ${cur}` }] } });
        body.amount = minor;
      }
      return api('POST', `/api/v1/payments/${payment.id}/refund`, { body, idempotencyKey: key });
    },
  });
  if (done) {
    toast(`Refunded: the payment is now ${String(done.status).toLowerCase().replaceAll('_', ' ')}.`);
    // The order learns of the refund through an event: give it a moment before showing it.
    const want = done.refundedAmount;
    for (let i = 0; i < 15; i += 1) {
      const o = await api('GET', `/api/v1/orders/${payment.orderId}`).catch(() => null);
      if (!o || o.refundedAmount.amount >= want) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    reload();
  }
}

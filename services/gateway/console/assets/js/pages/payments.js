// Payments: every payment, filtered by status, provider, order and creation date.

import { get } from '../api.js';
import { h, mount, money, when, badge, table, pager, pageHeader, errorBox, loading, field, input, select, filterBar, shortId, isUuid, showFieldErrors } from '../ui.js';

const STATUSES = ['REQUIRES_PAYMENT_METHOD', 'REQUIRES_ACTION', 'AUTHORIZED', 'CAPTURED', 'PARTIALLY_REFUNDED', 'REFUNDED', 'FAILED', 'CANCELLED'];

/** A yyyy-mm-dd date (local midnight) as RFC 3339; `end` gives the next midnight. */
function dayBound(date, end) {
  if (!date) return undefined;
  const d = new Date(`${date}T00:00:00`);
  if (end) d.setDate(d.getDate() + 1);
  return d.toISOString();
}

export async function render(main, ctx) {
  const p = ctx.params;
  const f = {
    status: p.get('status') || '', provider: p.get('provider') || '', orderId: p.get('orderId') || '',
    from: p.get('from') || '', to: p.get('to') || '', page: Number(p.get('page') || 1),
  };
  const go = (changes) => {
    const next = new URLSearchParams({ ...f, page: String(f.page), ...changes });
    for (const [k, v] of [...next]) if (!v || (k === 'page' && v === '1')) next.delete(k);
    ctx.navigate(`/admin/payments${next.size ? `?${next}` : ''}`);
  };
  const results = h('div', {}, loading('Loading payments'));
  const filters = filterBar(
    'Filter payments',
    [
      field('Status', select([['', 'Any status'], ...STATUSES.map((s) => [s, s.replaceAll('_', ' ').toLowerCase()])], { name: 'status', value: f.status })),
      field('Provider', select([['', 'Any provider'], ['simulated', 'simulated'], ['stripe', 'stripe']], { name: 'provider', value: f.provider })),
      field('Order id', input({ name: 'orderId', value: f.orderId, autocomplete: 'off' }), { name: 'orderId' }),
      field('Created from', input({ name: 'from', type: 'date', value: f.from })),
      field('Created until', input({ name: 'to', type: 'date', value: f.to })),
    ],
    (v) => {
      if (v.orderId.trim() && !isUuid(v.orderId)) {
        showFieldErrors(filters, { errors: [{ field: 'orderId', message: 'an order id (a UUID)' }] });
        return;
      }
      go({ status: v.status, provider: v.provider, orderId: v.orderId.trim(), from: v.from, to: v.to, page: '1' });
    },
  );
  mount(main, pageHeader('Payments'), filters, results);
  try {
    const data = await get('/api/v1/payments', {
      status: f.status, provider: f.provider, orderId: f.orderId, from: dayBound(f.from), to: dayBound(f.to, true), page: f.page, pageSize: 25,
    });
    mount(
      results,
      table(
        'Payments, newest first',
        [
          { label: 'Payment', header: true, cell: (x) => h('span', { class: 'mono', title: x.id }, shortId(x.id)) },
          { label: 'Order', cell: (x) => h('a', { href: `/admin/orders/${x.orderId}`, class: 'mono' }, shortId(x.orderId)) },
          { label: 'Created', cell: (x) => when(x.createdAt) },
          { label: 'Status', cell: (x) => badge(x.status) },
          { label: 'Amount', class: 'num', cell: (x) => money(x.amount) },
          { label: 'Captured', class: 'num', cell: (x) => money({ amount: x.capturedAmount, currency: x.amount.currency }) },
          { label: 'Refunded', class: 'num', cell: (x) => money({ amount: x.refundedAmount, currency: x.amount.currency }) },
          { label: 'Provider', cell: (x) => x.provider },
          { label: 'Failure', cell: (x) => x.failureReason || '—' },
        ],
        data.items,
        { emptyText: 'No payment matches.' },
      ),
      pager(data, (n) => go({ page: String(n) })),
    );
  } catch (err) {
    mount(results, errorBox(err));
  }
}

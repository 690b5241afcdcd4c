// The dashboard: today's orders and revenue, orders by status, low stock, failures, services.

import { api, get } from '../api.js';
import { h, mount, money, when, badge, table, section, pageHeader, errorBox, loading, shortId, empty } from '../ui.js';

function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

/** Runs `load` and renders its result into a fresh container; a failure stays local. */
function part(load, render) {
  const box = h('div', {}, loading());
  load().then(
    (data) => mount(box, render(data)),
    (err) => mount(box, errorBox(err)),
  );
  return box;
}

function stat(label, value, href) {
  return h('div', { class: 'stat' }, h('span', { class: 'label' }, label), href ? h('a', { class: 'value', href }, value) : h('span', { class: 'value' }, value));
}

export async function render(main) {
  const today = api('GET', '/api/v1/orders/summary', { query: { from: startOfToday() } });
  const allTime = api('GET', '/api/v1/orders/summary');
  const low = get('/api/v1/inventory', { lowStock: 'true', pageSize: 5 });
  const failedPayments = get('/api/v1/payments', { status: 'FAILED', pageSize: 5 });
  const failedNotes = get('/api/v1/notifications/admin/all', { status: 'FAILED', pageSize: 5 });

  const stats = h('div', { class: 'stats', role: 'group', 'aria-label': 'Key figures' }, loading());
  Promise.allSettled([today, low, failedPayments, failedNotes]).then(([t, l, p, n]) => {
    const v = (r, f) => (r.status === 'fulfilled' ? f(r.value) : '?');
    mount(
      stats,
      stat("Today's orders", v(t, (s) => String(s.orders)), '/admin/orders'),
      stat("Today's revenue", v(t, (s) => (s.revenue.length ? s.revenue.map(money).join(' + ') : money({ amount: 0, currency: 'USD' })))),
      stat('Low-stock products', v(l, (x) => String(x.total)), '/admin/inventory?lowStock=true'),
      stat('Failed payments', v(p, (x) => String(x.total)), '/admin/payments?status=FAILED'),
      stat('Failed notifications', v(n, (x) => String(x.total)), '/admin/notifications?status=FAILED'),
    );
  });

  mount(
    main,
    pageHeader('Dashboard'),
    stats,
    h(
      'div',
      { class: 'grid wide' },
      section(
        'Orders by status',
        part(
          () => allTime,
          (s) => {
            const entries = Object.entries(s.byStatus);
            if (!entries.length) return empty('No orders yet.');
            const max = Math.max(...entries.map(([, n]) => n));
            return h(
              'ul',
              { class: 'bars' },
              entries.map(([status, n]) =>
                h('li', {}, h('a', { href: `/admin/orders?status=${status}` }, badge(status)), h('span', { class: 'bar', 'aria-hidden': 'true', style: null, dataset: { w: String(Math.round((n / max) * 100)) } }), h('span', { class: 'n' }, n)),
              ),
            );
          },
        ),
      ),
      section(
        'Low stock',
        part(
          async () => {
            const page = await low;
            const ids = page.items.map((i) => i.productId);
            const names = ids.length ? await api('POST', '/api/v1/products/batch', { body: { ids } }).catch(() => ({ products: [] })) : { products: [] };
            return { page, names: new Map(names.products.map((p) => [p.id, p.name])) };
          },
          ({ page, names }) =>
            table(
              'Products at or below their reorder level',
              [
                { label: 'Product', cell: (r) => h('a', { href: `/admin/inventory/${r.productId}` }, names.get(r.productId) || r.sku) },
                { label: 'Available', class: 'num', cell: (r) => r.availableQuantity },
                { label: 'Reorder at', class: 'num', cell: (r) => r.reorderLevel },
              ],
              page.items,
              { emptyText: 'No product is low on stock.' },
            ),
        ),
      ),
      section(
        'Failed payments',
        part(
          () => failedPayments,
          (page) =>
            table(
              'Recent failed payments',
              [
                { label: 'Order', cell: (p) => h('a', { href: `/admin/orders/${p.orderId}` }, shortId(p.orderId)) },
                { label: 'Amount', class: 'num', cell: (p) => money(p.amount) },
                { label: 'Reason', cell: (p) => p.failureReason || p.failureCode || '—' },
                { label: 'When', cell: (p) => when(p.createdAt) },
              ],
              page.items,
              { emptyText: 'No failed payments.' },
            ),
        ),
      ),
      section(
        'Failed notifications',
        part(
          () => failedNotes,
          (page) =>
            table(
              'Recent failed notifications',
              [
                { label: 'Type', cell: (n) => n.type },
                { label: 'Recipient', cell: (n) => n.recipient || '—' },
                { label: 'Error', cell: (n) => n.lastError || '—' },
              ],
              page.items,
              { emptyText: 'No failed notifications.' },
            ),
        ),
      ),
    ),
    section(
      'Services',
      part(
        () => get('/api/v1/info'),
        (rows) =>
          table(
            'Each service’s health and version',
            [
              { label: 'Service', header: true, cell: (s) => s.name },
              { label: 'Status', cell: (s) => badge(s.status) },
              { label: 'Version', cell: (s) => (s.info ? s.info.version : '—') },
              { label: 'Revision', cell: (s) => h('span', { class: 'mono' }, s.info ? s.info.gitRevision || s.info.revision || '—' : '—') },
              { label: 'Mode', cell: (s) => (s.info ? s.info.mode : '—') },
              { label: 'Notes', cell: (s) => [s.error, ...((s.info && s.info.warnings) || [])].filter(Boolean).join('; ') || '—' },
            ],
            rows,
          ),
      ),
    ),
  );
  // Bar widths through the CSSOM (the page's CSP allows no inline style attributes).
  const widen = () => {
    for (const b of main.querySelectorAll('.bar[data-w]')) b.style.width = `${b.dataset.w}%`;
  };
  const observer = new MutationObserver(widen);
  observer.observe(main, { childList: true, subtree: true });
  return () => observer.disconnect();
}

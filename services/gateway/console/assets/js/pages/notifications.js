// Notifications: the history with filters, the failed ones, and resending them.

import { api, get } from '../api.js';
import { h, mount, when, badge, table, pager, pageHeader, errorBox, loading, field, select, filterBar, confirmDialog, toast, shortId } from '../ui.js';

const TYPES = ['ORDER_CONFIRMATION', 'PAYMENT_CONFIRMATION', 'SHIPPING_UPDATE', 'DELIVERY_CONFIRMATION', 'ORDER_CANCELLED', 'REFUND_ISSUED', 'PAYMENT_FAILED', 'LOW_STOCK_ALERT'];
const label = (s) => s.replaceAll('_', ' ').toLowerCase();

export async function render(main, ctx) {
  const p = ctx.params;
  const f = { status: p.get('status') || '', type: p.get('type') || '', channel: p.get('channel') || '', page: Number(p.get('page') || 1) };
  const go = (changes) => {
    const next = new URLSearchParams({ ...f, page: String(f.page), ...changes });
    for (const [k, v] of [...next]) if (!v || (k === 'page' && v === '1')) next.delete(k);
    ctx.navigate(`/admin/notifications${next.size ? `?${next}` : ''}`);
  };
  const results = h('div', {}, loading('Loading notifications'));
  mount(
    main,
    pageHeader('Notifications'),
    filterBar(
      'Filter notifications',
      [
        field('Status', select([['', 'Any status'], ['PENDING', 'pending'], ['SENT', 'sent'], ['FAILED', 'failed']], { name: 'status', value: f.status })),
        field('Type', select([['', 'Any type'], ...TYPES.map((t) => [t, label(t)])], { name: 'type', value: f.type })),
        field('Channel', select([['', 'Any channel'], ['EMAIL', 'email'], ['SMS', 'SMS'], ['PUSH', 'push']], { name: 'channel', value: f.channel })),
      ],
      (v) => go({ status: v.status, type: v.type, channel: v.channel, page: '1' }),
    ),
    results,
  );
  const load = async () => {
    try {
      const data = await get('/api/v1/notifications/admin/all', { status: f.status, type: f.type, channel: f.channel, page: f.page, pageSize: 25 });
      mount(
        results,
        table(
          'Notifications, newest first',
          [
            { label: 'Created', cell: (n) => when(n.createdAt) },
            { label: 'Type', cell: (n) => label(n.type) },
            { label: 'Channel', cell: (n) => n.channel.toLowerCase() },
            { label: 'Recipient', cell: (n) => n.recipient || h('span', { class: 'muted' }, 'none') },
            { label: 'Subject', cell: (n) => n.subject },
            { label: 'Order', cell: (n) => (n.orderId ? h('a', { href: `/admin/orders/${n.orderId}`, class: 'mono' }, shortId(n.orderId)) : '—') },
            { label: 'Status', cell: (n) => badge(n.status) },
            { label: 'Attempts', class: 'num', cell: (n) => n.retryCount },
            { label: 'Last error', cell: (n) => n.lastError || '—' },
            {
              label: 'Action',
              cell: (n) =>
                n.status === 'FAILED' && n.recipient
                  ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => resend(n, load), 'aria-label': `Resend the ${label(n.type)} to ${n.recipient}` }, 'Resend')
                  : '—',
            },
          ],
          data.items,
          { emptyText: 'No notification matches.' },
        ),
        pager(data, (n) => go({ page: String(n) })),
      );
    } catch (err) {
      mount(results, errorBox(err));
    }
  };
  await load();
}

async function resend(n, reload) {
  const done = await confirmDialog(`Send the ${label(n.type)} again?`, `It goes to ${n.recipient} once more, with the usual retries.`, {
    submitLabel: 'Resend',
    action: () => api('POST', `/api/v1/notifications/${n.id}/resend`),
  });
  if (done) {
    toast('Queued to be sent again.');
    reload();
  }
}

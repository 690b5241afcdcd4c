// The live event browser: recent events across topics and each new one as it is published
// (server-sent events from the gateway's read-only tap), filtered by type, order or chain.

import { refresh } from '../api.js';
import { h, mount, table, pageHeader, field, input, select, filterBar, when, shortId, nextId, isUuid, showFieldErrors } from '../ui.js';

const TYPES = [
  'order.placed', 'order.confirmed', 'order.cancelled', 'order.shipped', 'order.delivered', 'order.status_changed',
  'payment.authorized', 'payment.captured', 'payment.failed', 'payment.refunded',
  'inventory.reserved', 'inventory.reservation_failed', 'inventory.released', 'inventory.committed', 'inventory.low_stock',
  'notification.sent', 'shipment.shipped', 'shipment.delivered',
];
const KEEP = 300;

export async function render(main, ctx) {
  const p = ctx.params;
  const f = { type: p.get('type') || '', orderId: p.get('orderId') || '', correlationId: p.get('correlationId') || '' };
  const go = (v) => {
    const next = new URLSearchParams(v);
    for (const [k, val] of [...next]) if (!val) next.delete(k);
    ctx.navigate(`/admin/events${next.size ? `?${next}` : ''}`);
  };
  const seen = new Set();
  const events = [];
  let source = null;
  let paused = false;
  let dropped = 0;
  let retry = null;
  let closed = false;

  const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
  const state = h('span', {}, 'Connecting…');
  const counts = h('span', { class: 'muted' });
  const pauseBtn = h('button', { type: 'button', class: 'btn', onclick: () => (paused ? resume() : pause()) }, 'Pause');
  const rows = h('div', {});
  const detailsId = nextId('ev');
  const details = h('section', { class: 'card', 'aria-labelledby': detailsId, hidden: true });

  const show = (ev) => {
    details.hidden = false;
    mount(details, h('h2', { id: detailsId }, `${ev.type} · ${shortId(ev.id)}`), h('dl', { class: 'facts' },
      h('dt', {}, 'Id'), h('dd', { class: 'mono' }, ev.id),
      h('dt', {}, 'Topic'), h('dd', {}, ev.topic),
      h('dt', {}, 'Source'), h('dd', {}, ev.source),
      h('dt', {}, 'Subject'), h('dd', { class: 'mono' }, ev.subject),
      h('dt', {}, 'Time'), h('dd', {}, ev.time),
      h('dt', {}, 'Correlation'), h('dd', { class: 'mono' }, h('a', { href: `/admin/events?correlationId=${encodeURIComponent(ev.correlationId)}` }, ev.correlationId)),
      h('dt', {}, 'Caused by'), h('dd', { class: 'mono' }, ev.causationId || '—'),
    ), h('h3', {}, 'Data'), h('pre', {}, JSON.stringify(ev.data, null, 2)));
    details.querySelector('h2').setAttribute('tabindex', '-1');
    details.querySelector('h2').focus();
  };

  const redraw = () => {
    counts.textContent = ` ${events.length} shown${dropped ? ` · ${dropped} missed (the browser fell behind)` : ''}`;
    mount(
      rows,
      table(
        'Events, newest first',
        [
          { label: 'Time', cell: (e) => when(e.time, { seconds: true }) },
          { label: 'Type', header: true, cell: (e) => h('span', { class: 'event-type' }, e.type) },
          { label: 'Subject', cell: (e) => h('span', { class: 'mono', title: e.subject }, e.subject.length > 12 ? shortId(e.subject) : e.subject) },
          { label: 'Order', cell: (e) => { const o = (e.data && e.data.orderId) || (e.type.startsWith('order.') ? e.subject : null); return o ? h('a', { href: `/admin/events?orderId=${o}`, class: 'mono', 'aria-label': `Events of order ${shortId(o)}` }, shortId(o)) : '—'; } },
          { label: 'Correlation', cell: (e) => h('a', { href: `/admin/events?correlationId=${encodeURIComponent(e.correlationId)}`, class: 'mono', 'aria-label': `Events of chain ${shortId(e.correlationId)}` }, shortId(e.correlationId)) },
          { label: 'Source', cell: (e) => e.source },
          { label: 'Data', cell: (e) => h('button', { type: 'button', class: 'btn btn-small', onclick: () => show(e), 'aria-label': `View ${e.type} ${shortId(e.id)}` }, 'View') },
        ],
        events,
        { emptyText: 'No events yet. They appear here as the shop publishes them.' },
      ),
    );
  };

  let pending = null;
  const add = (ev) => {
    if (seen.has(ev.id)) return;
    seen.add(ev.id);
    events.unshift(ev);
    if (events.length > KEEP) seen.delete(events.pop().id);
    // Batch redraws: a burst of events makes one.
    pending = pending || requestAnimationFrame(() => { pending = null; redraw(); });
  };

  const setState = (text, on) => {
    state.textContent = text;
    dot.classList.toggle('on', !!on);
  };

  const connect = () => {
    if (closed || paused) return;
    const q = new URLSearchParams({ limit: f.orderId || f.correlationId ? '200' : '100' });
    for (const k of ['type', 'orderId', 'correlationId']) if (f[k]) q.set(k, f[k]);
    source = new EventSource(`/api/v1/events/stream?${q}`);
    source.addEventListener('open', () => setState('Live', true));
    source.addEventListener('event', (m) => {
      try {
        add(JSON.parse(m.data));
      } catch {}
    });
    source.addEventListener('dropped', (m) => {
      try {
        dropped += JSON.parse(m.data).dropped;
      } catch {}
      redraw();
    });
    source.addEventListener('error', async () => {
      if (!source || source.readyState !== EventSource.CLOSED) {
        setState('Reconnecting…', false);
        return;
      }
      // Refused (an expired session, too many streams): renew the session and try again.
      source = null;
      setState('Disconnected; retrying…', false);
      await refresh();
      retry = setTimeout(connect, 3000);
    });
  };
  const pause = () => {
    paused = true;
    if (source) source.close();
    source = null;
    pauseBtn.textContent = 'Resume';
    setState('Paused', false);
  };
  const resume = () => {
    paused = false;
    pauseBtn.textContent = 'Pause';
    setState('Connecting…', false);
    connect();
  };

  const typeChoices = [['', 'Any type'], ['order.', 'order.*'], ['payment.', 'payment.*'], ['inventory.', 'inventory.*'], ['shipment.', 'shipment.*'], ['notification.', 'notification.*'], ...TYPES.map((t) => [t, t])];
  const filters = filterBar(
    'Filter events',
    [
      field('Type', select(typeChoices, { name: 'type', value: f.type })),
      field('Order id', input({ name: 'orderId', value: f.orderId, autocomplete: 'off' }), { name: 'orderId' }),
      field('Correlation id', input({ name: 'correlationId', value: f.correlationId, autocomplete: 'off' }), { name: 'correlationId' }),
    ],
    (v) => {
      if (v.orderId.trim() && !isUuid(v.orderId)) {
        showFieldErrors(filters, { errors: [{ field: 'orderId', message: 'an order id (a UUID)' }] });
        return;
      }
      go({ type: v.type, orderId: v.orderId.trim(), correlationId: v.correlationId.trim() });
    },
  );
  mount(
    main,
    pageHeader(f.orderId ? `Events of order ${shortId(f.orderId)}` : 'Events', pauseBtn),
    h('p', { class: 'live' }, dot, h('span', { role: 'status' }, state), counts),
    filters,
    f.orderId ? h('p', {}, h('a', { href: `/admin/orders/${f.orderId}` }, 'Back to the order')) : null,
    rows,
    details,
  );
  redraw();
  connect();
  return () => {
    closed = true;
    clearTimeout(retry);
    if (source) source.close();
  };
}

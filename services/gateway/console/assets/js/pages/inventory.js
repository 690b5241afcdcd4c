// Inventory: stock per product (low-stock filter), one product's stock with adjustments and
// its audit trail.

import { api, get } from '../api.js';
import {
  h, mount, when, badge, table, pager, section, pageHeader, errorBox, loading, field, input, select, filterBar,
  formData, showFieldErrors, toast, uuid,
} from '../ui.js';

export async function render(main, ctx) {
  if (ctx.rest[0]) return stock(main, ctx, ctx.rest[0]);
  return list(main, ctx);
}

async function names(ids) {
  if (!ids.length) return new Map();
  const r = await api('POST', '/api/v1/products/batch', { body: { ids } }).catch(() => ({ products: [] }));
  return new Map(r.products.map((p) => [p.id, p.name]));
}

async function list(main, ctx) {
  const low = ctx.params.get('lowStock') === 'true';
  const page = Number(ctx.params.get('page') || 1);
  const go = (l, n) => {
    const q = new URLSearchParams();
    if (l) q.set('lowStock', 'true');
    if (n > 1) q.set('page', String(n));
    ctx.navigate(`/admin/inventory${q.size ? `?${q}` : ''}`);
  };
  const results = h('div', {}, loading('Loading stock'));
  mount(
    main,
    pageHeader('Inventory'),
    filterBar(
      'Filter stock',
      [h('div', { class: 'check' }, h('input', { type: 'checkbox', id: 'f-low', name: 'lowStock', checked: low }), h('label', { for: 'f-low' }, 'Only low stock (at or below the reorder level)'))],
      (v) => go(v.lowStock, 1),
    ),
    results,
  );
  try {
    const data = await get('/api/v1/inventory', { lowStock: low ? 'true' : undefined, page, pageSize: 25 });
    const named = await names(data.items.map((r) => r.productId));
    mount(
      results,
      table(
        low ? 'Products low on stock' : 'Stock per product, by SKU',
        [
          { label: 'Product', header: true, cell: (r) => h('a', { href: `/admin/inventory/${r.productId}` }, named.get(r.productId) || r.sku) },
          { label: 'SKU', cell: (r) => h('span', { class: 'mono' }, r.sku) },
          { label: 'Available', class: 'num', cell: (r) => r.availableQuantity },
          { label: 'Reserved', class: 'num', cell: (r) => r.reservedQuantity },
          { label: 'Total', class: 'num', cell: (r) => r.totalQuantity },
          { label: 'Reorder at', class: 'num', cell: (r) => r.reorderLevel },
          { label: 'State', cell: (r) => (!r.inStock ? badge('out of stock', 'bad') : r.lowStock ? badge('low', 'warn') : badge('ok', 'ok')) },
        ],
        data.items,
        { emptyText: low ? 'No product is low on stock.' : 'No stock recorded.' },
      ),
      pager(data, (n) => go(low, n)),
    );
  } catch (err) {
    mount(results, errorBox(err));
  }
}

const TYPES = [
  ['PURCHASE', 'Purchase (adds)'],
  ['RETURN', 'Return (adds)'],
  ['DAMAGE', 'Damage (removes)'],
  ['SALE', 'Sale outside the shop (removes)'],
  ['ADJUSTMENT', 'Correction (signed: -3 or 5)'],
];

async function stock(main, ctx, productId) {
  mount(main, pageHeader('Stock'), loading());
  let row;
  let product;
  try {
    [row, product] = await Promise.all([
      api('GET', `/api/v1/inventory/${productId}`),
      api('GET', `/api/v1/products/${productId}`).catch(() => null),
    ]);
  } catch (err) {
    mount(main, pageHeader('Stock'), errorBox(err), h('p', {}, h('a', { href: '/admin/inventory' }, 'All stock')));
    return;
  }
  const title = product ? product.name : row.sku;
  ctx.setTitle(`Stock of ${title}`);
  const txPage = Number(ctx.params.get('page') || 1);
  const history = h('div', {}, loading('Loading the history'));
  const errors = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Adjust stock');
  let key = uuid();
  const form = h(
    'form',
    { novalidate: true },
    h(
      'div',
      { class: 'form-grid' },
      field('Type', select(TYPES, { name: 'type' }), { name: 'type' }),
      field('Quantity', input({ name: 'quantity', inputmode: 'numeric', required: true, autocomplete: 'off' }), { name: 'quantity' }),
      field('Reason', input({ name: 'reason', maxlength: '500' }), { name: 'reason' }),
      field('Reference', input({ name: 'reference', maxlength: '200' }), { name: 'reference', hint: 'A delivery note, an order id…' }),
    ),
    errors,
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    mount(errors);
    const v = formData(form);
    const quantity = Number(v.quantity);
    if (!Number.isInteger(quantity) || v.quantity.trim() === '') {
      showFieldErrors(form, { errors: [{ field: 'quantity', message: 'a whole number' }] });
      return;
    }
    submit.disabled = true;
    try {
      const after = await api('POST', `/api/v1/inventory/${productId}/adjust`, {
        body: { type: v.type, quantity, reason: v.reason.trim() || undefined, reference: v.reference.trim() || undefined },
        idempotencyKey: key,
      });
      key = uuid();
      toast(`Stock adjusted: ${after.availableQuantity} available${after.lowStock ? ' (low stock)' : ''}.`);
      stock(main, ctx, productId);
    } catch (err) {
      const rest = err.problem ? showFieldErrors(form, err.problem) : [];
      mount(errors, errorBox(err), rest.length ? h('ul', {}, rest.map((e) => h('li', {}, `${e.field}: ${e.message}`))) : null);
    } finally {
      submit.disabled = false;
    }
  });
  mount(
    main,
    pageHeader(`Stock of ${title}`),
    h(
      'div',
      { class: 'grid' },
      section(
        'Levels',
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'SKU'), h('dd', { class: 'mono' }, row.sku),
          h('dt', {}, 'Available'), h('dd', {}, h('strong', {}, row.availableQuantity), ' ', !row.inStock ? badge('out of stock', 'bad') : row.lowStock ? badge('low', 'warn') : null),
          h('dt', {}, 'Reserved'), h('dd', {}, row.reservedQuantity),
          h('dt', {}, 'Total'), h('dd', {}, row.totalQuantity),
          h('dt', {}, 'Reorder level'), h('dd', {}, row.reorderLevel),
          h('dt', {}, 'Reorder quantity'), h('dd', {}, row.reorderQuantity),
          h('dt', {}, 'Updated'), h('dd', {}, when(row.updatedAt)),
        ),
        product ? h('p', {}, h('a', { href: `/admin/products/${productId}` }, 'Edit the product')) : null,
      ),
      section('Adjust', form),
    ),
    section('History', history),
  );
  try {
    const tx = await get(`/api/v1/inventory/${productId}/transactions`, { page: txPage, pageSize: 20 });
    mount(
      history,
      table(
        'Stock movements, newest first',
        [
          { label: 'When', cell: (t) => when(t.createdAt) },
          { label: 'Type', cell: (t) => t.type },
          { label: 'Change', class: 'num', cell: (t) => (t.quantity > 0 ? `+${t.quantity}` : t.quantity) },
          { label: 'Available after', class: 'num', cell: (t) => t.availableAfter },
          { label: 'Reserved after', class: 'num', cell: (t) => t.reservedAfter },
          { label: 'Reason', cell: (t) => t.reason || '—' },
          { label: 'Reference', cell: (t) => t.reference || '—' },
          { label: 'By', cell: (t) => h('span', { class: 'mono' }, t.actor) },
        ],
        tx.items,
      ),
      pager(tx, (n) => ctx.navigate(`/admin/inventory/${productId}?page=${n}`)),
    );
  } catch (err) {
    mount(history, errorBox(err));
  }
}

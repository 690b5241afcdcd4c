// The catalog: products (search, filters, create, edit, activate/deactivate), categories and
// brands (list, create, edit, delete while nothing names them). Validation errors from the API
// appear on their fields; a refused delete says what still names the item.

import { api, get } from '../api.js';
import {
  h, mount, money, when, badge, table, pager, pageHeader, errorBox, loading, field, input, select, filterBar,
  formData, showFieldErrors, toast, confirmDialog, toMinor, fromMinor, nextId, dialog,
} from '../ui.js';

export async function render(main, ctx) {
  if (ctx.section === 'categories') return categories(main, ctx);
  if (ctx.section === 'brands') return brands(main, ctx);
  if (ctx.rest[0]) return productForm(main, ctx, ctx.rest[0] === 'new' ? null : ctx.rest[0]);
  return products(main, ctx);
}

const taxonomy = () => Promise.all([get('/api/v1/categories'), get('/api/v1/brands')]);

// ---------------------------------------------------------------- products

async function products(main, ctx) {
  const p = ctx.params;
  const f = {
    q: p.get('q') || '',
    category: p.get('category') || '',
    brand: p.get('brand') || '',
    inactive: p.get('inactive') || '',
    page: Number(p.get('page') || 1),
  };
  const go = (changes) => {
    const next = new URLSearchParams({ ...f, page: String(f.page), ...changes });
    for (const [k, v] of [...next]) if (!v || (k === 'page' && v === '1')) next.delete(k);
    ctx.navigate(`/admin/products${next.size ? `?${next}` : ''}`);
  };
  const results = h('div', {}, loading('Loading products'));
  const [cats, brandList] = await taxonomy().catch(() => [{ items: [] }, { items: [] }]);
  mount(
    main,
    pageHeader('Products', h('a', { class: 'btn btn-primary', href: '/admin/products/new' }, 'New product')),
    filterBar(
      'Filter products',
      [
        field('Search', input({ name: 'q', type: 'search', value: f.q, placeholder: 'name, SKU or description' })),
        field('Category', select([['', 'Any category'], ...cats.items.map((c) => [c.slug, `${'– '.repeat(c.depth)}${c.name}`])], { name: 'category', value: f.category })),
        field('Brand', select([['', 'Any brand'], ...brandList.items.map((b) => [b.slug, b.name])], { name: 'brand', value: f.brand })),
        h('div', { class: 'check' }, h('input', { type: 'checkbox', name: 'inactive', id: 'f-inactive', checked: f.inactive === 'true' }), h('label', { for: 'f-inactive' }, 'Include inactive')),
      ],
      (v) => go({ q: v.q.trim(), category: v.category, brand: v.brand, inactive: v.inactive ? 'true' : '', page: '1' }),
    ),
    results,
  );
  const load = async () => {
    try {
      const data = await get('/api/v1/products', {
        q: f.q, category: f.category, brand: f.brand, includeInactive: f.inactive || undefined, page: f.page, pageSize: 20,
        sort: f.q ? undefined : 'name',
      });
      mount(
        results,
        table(
          'Products',
          [
            { label: 'Product', header: true, cell: (x) => h('a', { href: `/admin/products/${x.id}` }, x.name) },
            { label: 'SKU', cell: (x) => h('span', { class: 'mono' }, x.sku) },
            { label: 'Price', class: 'num', cell: (x) => money(x.price) },
            { label: 'Category', cell: (x) => (x.category ? x.category.name : '—') },
            { label: 'Brand', cell: (x) => (x.brand ? x.brand.name : '—') },
            { label: 'State', cell: (x) => badge(x.active ? 'active' : 'inactive') },
            {
              label: 'Action',
              cell: (x) =>
                h('button', { type: 'button', class: 'btn btn-small', onclick: () => toggle(x, load), 'aria-label': `${x.active ? 'Deactivate' : 'Activate'} ${x.name}` }, x.active ? 'Deactivate' : 'Activate'),
            },
          ],
          data.items,
          { emptyText: 'No product matches.' },
        ),
        pager(data, (n) => go({ page: String(n) })),
      );
    } catch (err) {
      mount(results, errorBox(err));
    }
  };
  await load();
}

async function toggle(product, reload) {
  const to = !product.active;
  const ok = await confirmDialog(
    `${to ? 'Activate' : 'Deactivate'} ${product.name}?`,
    to ? 'The product is listed and can be sold again.' : 'The product disappears from the shop and cannot be ordered.',
    { submitLabel: to ? 'Activate' : 'Deactivate', danger: !to, action: () => api('PATCH', `/api/v1/products/${product.id}`, { body: { active: to } }) },
  );
  if (ok) {
    toast(`${product.name} is ${to ? 'active' : 'inactive'}.`);
    reload();
  }
}

async function productForm(main, ctx, id) {
  const title = id ? 'Edit product' : 'New product';
  mount(main, pageHeader(title), loading());
  let product = null;
  let cats;
  let brandList;
  try {
    [product, [cats, brandList]] = await Promise.all([id ? api('GET', `/api/v1/products/${id}`) : null, taxonomy()]);
  } catch (err) {
    mount(main, pageHeader(title), errorBox(err));
    return;
  }
  const cur = product ? product.price.currency : 'USD';
  const errors = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, id ? 'Save changes' : 'Create product');
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    h(
      'div',
      { class: 'form-grid' },
      field('Name', input({ name: 'name', value: product?.name, required: true, maxlength: '200' }), { name: 'name' }),
      field('SKU', input({ name: 'sku', value: product?.sku, required: true, maxlength: '64', autocomplete: 'off' }), { name: 'sku' }),
      field('Slug', input({ name: 'slug', value: product?.slug, maxlength: '120' }), { name: 'slug', hint: id ? 'The address of the product page.' : 'Left empty, it is made from the name.' }),
      field('Price', input({ name: 'price', inputmode: 'decimal', value: product ? fromMinor(product.price.amount, cur) : '', required: true }), { name: 'price.amount', hint: 'In the currency below, e.g. 12.99' }),
      field('Currency', select(['USD', 'EUR', 'GBP', 'CHF', 'JPY', 'CAD', 'AUD'].map((c) => [c, c]), { name: 'currency', value: cur }), { name: 'price.currency' }),
      field('Category', select([['', 'Choose a category'], ...cats.items.map((c) => [c.id, `${'– '.repeat(c.depth)}${c.name}`])], { name: 'categoryId', value: product?.category?.id || '' }), { name: 'categoryId' }),
      field('Brand', select([['', 'No brand'], ...brandList.items.map((b) => [b.id, b.name])], { name: 'brandId', value: product?.brand?.id || '' }), { name: 'brandId' }),
    ),
    field('Description', h('textarea', { name: 'description', rows: '4' }, product?.description || ''), { name: 'description' }),
    field('Images', h('textarea', { name: 'images', rows: '3' }, (product?.images || []).join('\n')), { name: 'images', hint: 'One http(s) address per line.' }),
    field('Attributes', h('textarea', { name: 'attributes', rows: '4', class: 'mono' }, JSON.stringify(product?.attributes || {}, null, 2)), { name: 'attributes', hint: 'A JSON object: names to text, numbers or true/false.' }),
    h('div', { class: 'check' }, h('input', { type: 'checkbox', name: 'active', id: 'p-active', checked: product ? product.active : true }), h('label', { for: 'p-active' }, 'Active (listed and for sale)')),
    errors,
    h('div', { class: 'actions' }, submit, h('a', { class: 'btn', href: '/admin/products' }, 'Back to products')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    mount(errors);
    const v = formData(form);
    const local = [];
    const amount = toMinor(v.price, v.currency);
    if (Number.isNaN(amount)) local.push({ field: 'price.amount', message: `a price such as 12.99 (${v.currency})` });
    let attributes = {};
    try {
      attributes = v.attributes.trim() ? JSON.parse(v.attributes) : {};
      if (typeof attributes !== 'object' || Array.isArray(attributes) || attributes === null) throw new Error('not an object');
    } catch {
      local.push({ field: 'attributes', message: 'must be a JSON object, e.g. {"color": "red"}' });
    }
    if (!v.categoryId) local.push({ field: 'categoryId', message: 'choose a category' });
    if (local.length) {
      showFieldErrors(form, { errors: local });
      mount(errors, h('div', { class: 'error', role: 'alert' }, 'Some fields need attention.'));
      return;
    }
    const body = {
      name: v.name.trim(),
      sku: v.sku.trim(),
      slug: v.slug.trim() || undefined,
      price: { amount, currency: v.currency },
      categoryId: v.categoryId,
      brandId: v.brandId || null,
      description: v.description,
      images: v.images.split('\n').map((s) => s.trim()).filter(Boolean),
      attributes,
      active: v.active,
    };
    submit.disabled = true;
    try {
      const saved = id ? await api('PATCH', `/api/v1/products/${id}`, { body }) : await api('POST', '/api/v1/products', { body });
      showFieldErrors(form, null);
      toast(id ? `Saved ${saved.name}.` : `Created ${saved.name}.`);
      if (!id) ctx.navigate(`/admin/products/${saved.id}`, { replace: true });
    } catch (err) {
      const rest = err.problem ? showFieldErrors(form, err.problem) : [];
      mount(errors, errorBox(err), rest.length ? h('ul', {}, rest.map((e) => h('li', {}, `${e.field}: ${e.message}`))) : null);
    } finally {
      submit.disabled = false;
    }
  });
  mount(
    main,
    pageHeader(product ? product.name : title),
    product ? h('p', { class: 'muted' }, 'Created ', when(product.createdAt), ' · updated ', when(product.updatedAt), ' · ', badge(product.active ? 'active' : 'inactive')) : null,
    form,
    product ? h('p', {}, h('a', { href: `/admin/inventory/${product.id}` }, 'Stock of this product')) : null,
  );
}

// ---------------------------------------------------------------- categories and brands

function namedForm(kind, item, extra) {
  const body = [
    field('Name', input({ name: 'name', value: item?.name, required: true, maxlength: '100' }), { name: 'name' }),
    field('Slug', input({ name: 'slug', value: item?.slug, maxlength: '120' }), { name: 'slug', hint: item ? 'Left empty, it stays as it is.' : 'Left empty, it is made from the name.' }),
    field('Description', h('textarea', { name: 'description', rows: '3' }, item?.description || ''), { name: 'description' }),
    extra,
  ];
  return body;
}

async function categories(main, ctx) {
  mount(main, pageHeader('Categories'), loading());
  let list;
  try {
    list = (await get('/api/v1/categories')).items;
  } catch (err) {
    mount(main, pageHeader('Categories'), errorBox(err));
    return;
  }
  const edit = async (cat) => {
    const saved = await dialog({
      title: cat ? `Edit ${cat.name}` : 'New category',
      submitLabel: cat ? 'Save' : 'Create',
      body: namedForm('category', cat, [
        field('Parent', select([['', 'None (top level)'], ...list.filter((c) => !cat || c.id !== cat.id).map((c) => [c.id, `${'– '.repeat(c.depth)}${c.name}`])], { name: 'parentId', value: cat?.parentId || '' }), { name: 'parentId' }),
        field('Position', input({ name: 'position', type: 'number', value: String(cat?.position ?? 0), step: '1' }), { name: 'position', hint: 'Order among its siblings.' }),
      ]),
      submit: (form) => {
        const v = formData(form);
        const body = { name: v.name.trim(), slug: v.slug.trim() || undefined, description: v.description, parentId: v.parentId || null, position: Number(v.position || 0) };
        return cat ? api('PUT', `/api/v1/categories/${cat.id}`, { body }) : api('POST', '/api/v1/categories', { body });
      },
    });
    if (saved) {
      toast(`${cat ? 'Saved' : 'Created'} ${saved.name}.`);
      categories(main, ctx);
    }
  };
  const remove = async (cat) => {
    const gone = await confirmDialog(`Delete ${cat.name}?`, 'A category can be deleted once no product (not even a deleted one) and no child category names it.', {
      submitLabel: 'Delete',
      danger: true,
      action: async () => {
        await api('DELETE', `/api/v1/categories/${cat.id}`);
        return true;
      },
    });
    if (gone) {
      toast(`Deleted ${cat.name}.`);
      categories(main, ctx);
    }
  };
  mount(
    main,
    pageHeader('Categories', h('button', { type: 'button', class: 'btn btn-primary', onclick: () => edit(null) }, 'New category')),
    table(
      'Categories, parents before their children',
      [
        { label: 'Name', header: true, cell: (c) => h('span', { class: `tree-${Math.min(c.depth, 3)}` }, c.name) },
        { label: 'Slug', cell: (c) => h('span', { class: 'mono' }, c.slug) },
        { label: 'Position', class: 'num', cell: (c) => c.position },
        { label: 'Products', cell: (c) => h('a', { href: `/admin/products?category=${c.slug}`, 'aria-label': `Products in ${c.name}` }, 'Products') },
        {
          label: 'Actions',
          cell: (c) => h('span', { class: 'row-actions' },
            h('button', { type: 'button', class: 'btn btn-small', onclick: () => edit(c), 'aria-label': `Edit ${c.name}` }, 'Edit'), ' ',
            h('button', { type: 'button', class: 'btn btn-small', onclick: () => remove(c), 'aria-label': `Delete ${c.name}` }, 'Delete')),
        },
      ],
      list,
    ),
  );
}

async function brands(main, ctx) {
  mount(main, pageHeader('Brands'), loading());
  let list;
  try {
    list = (await get('/api/v1/brands')).items;
  } catch (err) {
    mount(main, pageHeader('Brands'), errorBox(err));
    return;
  }
  const edit = async (brand) => {
    const saved = await dialog({
      title: brand ? `Edit ${brand.name}` : 'New brand',
      submitLabel: brand ? 'Save' : 'Create',
      body: namedForm('brand', brand, field('Logo address', input({ name: 'logoUrl', type: 'url', value: brand?.logoUrl || '' }), { name: 'logoUrl', hint: 'An http(s) address, or empty.' })),
      submit: (form) => {
        const v = formData(form);
        const body = { name: v.name.trim(), slug: v.slug.trim() || undefined, description: v.description, logoUrl: v.logoUrl.trim() || null };
        return brand ? api('PUT', `/api/v1/brands/${brand.id}`, { body }) : api('POST', '/api/v1/brands', { body });
      },
    });
    if (saved) {
      toast(`${brand ? 'Saved' : 'Created'} ${saved.name}.`);
      brands(main, ctx);
    }
  };
  const remove = async (brand) => {
    const gone = await confirmDialog(`Delete ${brand.name}?`, 'A brand can be deleted once no product (not even a deleted one) names it.', {
      submitLabel: 'Delete',
      danger: true,
      action: async () => {
        await api('DELETE', `/api/v1/brands/${brand.id}`);
        return true;
      },
    });
    if (gone) {
      toast(`Deleted ${brand.name}.`);
      brands(main, ctx);
    }
  };
  const filterId = nextId('q');
  const rows = h('div', {});
  const show = (q) =>
    mount(
      rows,
      table(
        'Brands',
        [
          { label: 'Name', header: true, cell: (b) => b.name },
          { label: 'Slug', cell: (b) => h('span', { class: 'mono' }, b.slug) },
          { label: 'Description', cell: (b) => b.description || '—' },
          { label: 'Products', cell: (b) => h('a', { href: `/admin/products?brand=${b.slug}`, 'aria-label': `Products of ${b.name}` }, 'Products') },
          {
            label: 'Actions',
            cell: (b) => h('span', { class: 'row-actions' },
              h('button', { type: 'button', class: 'btn btn-small', onclick: () => edit(b), 'aria-label': `Edit ${b.name}` }, 'Edit'), ' ',
              h('button', { type: 'button', class: 'btn btn-small', onclick: () => remove(b), 'aria-label': `Delete ${b.name}` }, 'Delete')),
          },
        ],
        list.filter((b) => !q || b.name.toLowerCase().includes(q.toLowerCase()) || b.slug.includes(q.toLowerCase())),
        { emptyText: 'No brand matches.' },
      ),
    );
  const search = input({ type: 'search', id: filterId, oninput: (e) => show(e.target.value.trim()) });
  mount(
    main,
    pageHeader('Brands', h('button', { type: 'button', class: 'btn btn-primary', onclick: () => edit(null) }, 'New brand')),
    h('div', { class: 'filters', role: 'search', 'aria-label': 'Filter brands' }, field('Find a brand', search)),
    rows,
  );
  show('');
}


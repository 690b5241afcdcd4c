// Customers (every account): search by email, filter by role, roles, disable/enable.

import { api, get } from '../api.js';
import { h, mount, when, badge, table, pager, pageHeader, errorBox, loading, field, input, select, filterBar, dialog, toast, formData } from '../ui.js';

const ROLES = ['customer', 'vendor', 'admin'];

export async function render(main, ctx) {
  const p = ctx.params;
  const f = { email: p.get('email') || '', role: p.get('role') || '', page: Number(p.get('page') || 1) };
  const go = (changes) => {
    const next = new URLSearchParams({ ...f, page: String(f.page), ...changes });
    for (const [k, v] of [...next]) if (!v || (k === 'page' && v === '1')) next.delete(k);
    ctx.navigate(`/admin/customers${next.size ? `?${next}` : ''}`);
  };
  const results = h('div', {}, loading('Loading accounts'));
  mount(
    main,
    pageHeader('Customers'),
    filterBar(
      'Filter accounts',
      [
        field('Email contains', input({ name: 'email', type: 'search', value: f.email })),
        field('Role', select([['', 'Any role'], ...ROLES.map((r) => [r, r])], { name: 'role', value: f.role })),
      ],
      (v) => go({ email: v.email.trim(), role: v.role, page: '1' }),
    ),
    results,
  );
  const load = async () => {
    try {
      const data = await get('/api/v1/users', { email: f.email, role: f.role, page: f.page, pageSize: 25 });
      mount(
        results,
        table(
          'Accounts, oldest first',
          [
            { label: 'Email', header: true, cell: (u) => u.email },
            { label: 'Name', cell: (u) => [u.firstName, u.lastName].filter(Boolean).join(' ') || '—' },
            { label: 'Roles', cell: (u) => u.roles.join(', ') },
            { label: 'Since', cell: (u) => when(u.createdAt) },
            { label: 'State', cell: (u) => badge(u.disabled ? 'disabled' : 'enabled') },
            {
              label: 'Actions',
              cell: (u) =>
                h(
                  'div',
                  { class: 'actions' },
                  h('button', { type: 'button', class: 'btn btn-small', onclick: () => roles(u, load), 'aria-label': `Roles of ${u.email}` }, 'Roles'),
                  h(
                    'button',
                    { type: 'button', class: u.disabled ? 'btn btn-small' : 'btn btn-small btn-danger', onclick: () => toggle(u, load), 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.email}` },
                    u.disabled ? 'Enable' : 'Disable',
                  ),
                ),
            },
          ],
          data.items,
          { emptyText: 'No account matches.' },
        ),
        pager(data, (n) => go({ page: String(n) })),
      );
    } catch (err) {
      mount(results, errorBox(err));
    }
  };
  await load();
}

async function toggle(user, reload) {
  const disable = !user.disabled;
  const done = await dialog({
    title: `${disable ? 'Disable' : 'Enable'} ${user.email}?`,
    submitLabel: disable ? 'Disable the account' : 'Enable the account',
    danger: disable,
    body: h('p', {}, disable ? 'They can no longer sign in, and their sessions are revoked (a current access token lasts until it expires, at most 15 minutes).' : 'They can sign in again.'),
    submit: () => api('POST', `/api/v1/users/${user.id}/${disable ? 'disable' : 'enable'}`),
  });
  if (done) {
    toast(`${user.email} is ${disable ? 'disabled' : 'enabled'}.`);
    reload();
  }
}

async function roles(user, reload) {
  const done = await dialog({
    title: `Roles of ${user.email}`,
    submitLabel: 'Save roles',
    body: h(
      'fieldset',
      {},
      h('legend', {}, 'Roles'),
      ROLES.map((r) => h('div', { class: 'check' }, h('input', { type: 'checkbox', name: r, id: `role-${r}`, checked: user.roles.includes(r) }), h('label', { for: `role-${r}` }, r))),
      h('p', { class: 'hint' }, 'Changes apply to tokens issued from now on (at the next sign-in or refresh).'),
    ),
    submit: (form) => {
      const v = formData(form);
      return api('PUT', `/api/v1/users/${user.id}/roles`, { body: { roles: ROLES.filter((r) => v[r]) } });
    },
  });
  if (done) {
    toast(`Roles of ${user.email}: ${done.roles.join(', ')}.`);
    reload();
  }
}

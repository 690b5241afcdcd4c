// Small DOM helpers and the console's building blocks: no framework, no dependencies.

/** h('a', {href: '/x', class: 'btn'}, 'text', child, …): an element. `on*` props are listeners. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A fresh id for label/aria wiring. */
export const nextId = (p = 'f') => `${p}-${++uid}`;

// ---------------------------------------------------------------- formatting

const moneyFormats = new Map();
/** {amount, currency} in minor units → "$12.99". */
export function money(m) {
  if (!m || m.amount === undefined) return '—';
  const cur = m.currency || 'USD';
  if (!moneyFormats.has(cur)) {
    try {
      moneyFormats.set(cur, new Intl.NumberFormat('en-US', { style: 'currency', currency: cur }));
    } catch {
      moneyFormats.set(cur, null);
    }
  }
  const f = moneyFormats.get(cur);
  const digits = f ? f.resolvedOptions().maximumFractionDigits : 2;
  const value = m.amount / 10 ** digits;
  return f ? f.format(value) : `${value.toFixed(digits)} ${cur}`;
}

/** Minor-unit digits of a currency (USD 2, JPY 0). */
export function currencyDigits(cur) {
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency: cur }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** "12.34" in `cur` → 1234 minor units, or NaN. */
export function toMinor(text, cur) {
  const t = String(text).trim();
  if (!/^\d+(\.\d+)?$/.test(t)) return NaN;
  const digits = currencyDigits(cur);
  const [whole, frac = ''] = t.split('.');
  if (frac.length > digits) return NaN;
  return Number(whole) * 10 ** digits + Number(frac.padEnd(digits, '0') || 0);
}

/** Minor units → "12.34" (for inputs). */
export function fromMinor(amount, cur) {
  const digits = currencyDigits(cur);
  return (amount / 10 ** digits).toFixed(digits);
}

const dateTime = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
/** An RFC 3339 time as a <time> element. */
export function when(iso, { seconds = false } = {}) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return h('time', { datetime: iso, title: iso }, seconds ? timeOnly.format(d) : dateTime.format(d));
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '—');

/** A status as a labelled badge (colour is never the only signal: the text is the status). */
export function badge(status, kind) {
  const s = String(status || 'NONE');
  const tone =
    kind ||
    ({
      PAID: 'ok', DELIVERED: 'ok', SENT: 'ok', CAPTURED: 'ok', AUTHORIZED: 'info', SHIPPED: 'info', PROCESSING: 'info',
      ACTIVE: 'ok', ENABLED: 'ok', UP: 'ok', READY: 'ok',
      PENDING: 'wait', AWAITING_PAYMENT: 'wait', REQUIRES_PAYMENT_METHOD: 'wait', REQUIRES_CONFIRMATION: 'wait',
      REQUIRES_ACTION: 'wait', PARTIALLY_REFUNDED: 'warn', REFUNDED: 'warn', LOW: 'warn', INACTIVE: 'muted',
      FAILED: 'bad', CANCELLED: 'muted', DISABLED: 'bad', DOWN: 'bad',
    }[s.toUpperCase()] || 'muted');
  return h('span', { class: `badge badge-${tone}` }, s.replaceAll('_', ' ').toLowerCase());
}

export function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export const isUuid = (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(String(s).trim());

// ---------------------------------------------------------------- page parts

/** The page heading (focused after navigation so screen readers announce the page). */
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', { tabindex: '-1', id: 'page-title' }, title), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

export function section(title, ...body) {
  const id = nextId('s');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), body);
}

/** An error message for a failed load or action (a problem document or an Error). */
export function errorBox(err) {
  const p = err && err.problem;
  const text = p ? `${p.title || 'Error'}${p.detail ? `: ${p.detail}` : ''}` : String((err && err.message) || err);
  return h('div', { class: 'error', role: 'alert' }, text, p && p.code ? h('span', { class: 'code' }, ` (${p.code})`) : null);
}

export const loading = (what = 'Loading') => h('p', { class: 'loading', role: 'status' }, `${what}…`);
export const empty = (text) => h('p', { class: 'empty' }, text);

/**
 * A data table: columns [{label, cell: row => node, class?}], rows; `caption` names it for
 * assistive technology. Wide tables scroll inside a focusable region.
 */
export function table(caption, columns, rows, { emptyText = 'Nothing to show.' } = {}) {
  if (!rows || rows.length === 0) return empty(emptyText);
  const t = h(
    'table',
    {},
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => (c.header ? h('th', { scope: 'row', class: c.class }, c.cell(r)) : h('td', { class: c.class }, c.cell(r))))))),
  );
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: '0' }, t);
}

/** Previous/next for a `Page` answer; `go(page)` loads another page. */
export function pager(page, go) {
  if (!page || !page.totalPages || page.totalPages <= 1) {
    return page ? h('p', { class: 'pager-info' }, `${page.total ?? 0} in total`) : null;
  }
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', class: 'btn', disabled: page.page <= 1, onclick: () => go(page.page - 1) }, '← Previous'),
    h('span', { 'aria-live': 'polite' }, `Page ${page.page} of ${page.totalPages} (${page.total} in total)`),
    h('button', { type: 'button', class: 'btn', disabled: page.page >= page.totalPages, onclick: () => go(page.page + 1) }, 'Next →'),
  );
}

/**
 * A labelled form field; `input` is an <input>/<select>/<textarea>. `name` is the API's field
 * path its errors come under (default: the control's name). Returns the wrapper.
 */
export function field(label, input, { hint, name } = {}) {
  const id = input.id || nextId('f');
  input.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errEl = h('span', { class: 'field-error', id: `${id}-error`, hidden: true });
  const describedBy = [hintEl && `${id}-hint`, `${id}-error`].filter(Boolean).join(' ');
  input.setAttribute('aria-describedby', describedBy);
  return h('div', { class: 'field', dataset: { field: name || input.name || '' } }, h('label', { for: id }, label), input, hintEl, errEl);
}

export const input = (props = {}) => h('input', { type: 'text', ...props });
export const select = (options, props = {}) =>
  h('select', props, options.map(([value, text]) => h('option', { value, selected: String(props.value ?? '') === String(value) }, text)));

/**
 * Shows a problem's field errors next to the fields of `form` (matched by data-field, the
 * problem's field path, or its first segment); returns the errors no field took.
 */
export function showFieldErrors(form, problem) {
  for (const e of form.querySelectorAll('.field-error')) {
    e.hidden = true;
    e.textContent = '';
  }
  for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  const rest = [];
  let first = null;
  for (const err of (problem && problem.errors) || []) {
    const name = err.field || '';
    const head = name.split(/[.[]/)[0];
    const wrap =
      form.querySelector(`.field[data-field="${CSS.escape(name)}"]`) ||
      form.querySelector(`.field[data-field="${CSS.escape(head)}"]`) ||
      form.querySelector(`.field[data-field^="${CSS.escape(head)}."]`);
    if (!wrap) {
      rest.push(err);
      continue;
    }
    const msg = wrap.querySelector('.field-error');
    msg.hidden = false;
    msg.textContent = msg.textContent ? `${msg.textContent}; ${err.message}` : err.message;
    const control = wrap.querySelector('input, select, textarea');
    if (control) {
      control.setAttribute('aria-invalid', 'true');
      first = first || control;
    }
  }
  if (first) first.focus();
  return rest;
}

// ---------------------------------------------------------------- dialogs and notices

/**
 * A modal dialog (native <dialog>: focus stays inside, Escape closes). `body` is a node or a
 * function building it; `submit(form, dialog)` runs on the primary button and closes the dialog
 * when it resolves to anything but false; errors it throws are shown in the dialog.
 */
export function dialog({ title, body, submitLabel = 'Confirm', danger = false, submit }) {
  return new Promise((resolve) => {
    const titleId = nextId('d');
    const errors = h('div', { class: 'dialog-errors', 'aria-live': 'assertive' });
    const form = h('form', { method: 'dialog', novalidate: true });
    const submitBtn = h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, submitLabel);
    const cancelBtn = h('button', { type: 'button', class: 'btn', onclick: () => close(null) }, 'Cancel');
    const dlg = h('dialog', { 'aria-labelledby': titleId, class: 'dialog' }, form);
    mount(form, h('h2', { id: titleId }, title), typeof body === 'function' ? body(form) : body, errors, h('div', { class: 'dialog-actions' }, cancelBtn, submitBtn));
    let result = null;
    const close = (value) => {
      result = value;
      dlg.close();
    };
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      mount(errors);
      submitBtn.disabled = true;
      submitBtn.setAttribute('aria-busy', 'true');
      try {
        const value = submit ? await submit(form, dlg) : true;
        if (value !== false) close(value === undefined ? true : value);
      } catch (err) {
        const rest = err && err.problem ? showFieldErrors(form, err.problem) : [];
        mount(errors, errorBox(err), rest.length ? h('ul', {}, rest.map((e) => h('li', {}, `${e.field}: ${e.message}`))) : null);
      } finally {
        submitBtn.disabled = false;
        submitBtn.removeAttribute('aria-busy');
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    const firstInput = form.querySelector('input, select, textarea');
    (firstInput || submitBtn).focus();
  });
}

/** A confirmation; resolves true when confirmed. */
export const confirmDialog = (title, text, { submitLabel = 'Confirm', danger = false, action } = {}) =>
  dialog({ title, body: h('p', {}, text), submitLabel, danger, submit: action });

/** A short notice in the live region (success messages). */
export function toast(text) {
  const region = document.getElementById('toasts');
  if (!region) return;
  const t = h('div', { class: 'toast' }, text);
  region.append(t);
  setTimeout(() => t.remove(), 6000);
}

/** Reads a form's named controls into an object (checkboxes as booleans). */
export function formData(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'radio') {
      if (el.checked) out[el.name] = el.value;
    } else out[el.name] = el.value;
  }
  return out;
}

/** A filter bar (a GET-like form): `onsubmit(values)`. */
export function filterBar(label, controls, onsubmit) {
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': label }, controls, h('button', { type: 'submit', class: 'btn' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    onsubmit(formData(form));
  });
  return form;
}

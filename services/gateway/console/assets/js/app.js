// The console's shell: sign-in, the navigation, and a router over /admin/… paths. Each page
// is a module loaded on first use.

import { currentSession, onSessionLost, signIn, signOut, ApiError } from './api.js';
import { h, mount, field, input, errorBox, toast } from './ui.js';

const BASE = '/admin';

const PAGES = [
  { path: '', title: 'Dashboard', module: 'dashboard' },
  { path: 'orders', title: 'Orders', module: 'orders' },
  { path: 'products', title: 'Products', module: 'catalog' },
  { path: 'categories', title: 'Categories', module: 'catalog' },
  { path: 'brands', title: 'Brands', module: 'catalog' },
  { path: 'inventory', title: 'Inventory', module: 'inventory' },
  { path: 'customers', title: 'Customers', module: 'customers' },
  { path: 'payments', title: 'Payments', module: 'payments' },
  { path: 'notifications', title: 'Notifications', module: 'notifications' },
  { path: 'events', title: 'Events', module: 'events' },
];

const root = document.getElementById('app');
let session = null;
let main = null;
let nav = null;
let current = null; // the page's cleanup function
let shown = null; // the path and query on screen (a fragment change, e.g. the skip link, is not a navigation)

/** Goes to an /admin/… URL without reloading. */
export function navigate(url, { replace = false } = {}) {
  const to = new URL(url, location.href);
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  route();
}

function section() {
  const rest = location.pathname.slice(BASE.length).replace(/^\/+/, '');
  const [first = '', ...more] = rest.split('/').filter(Boolean);
  return { first, more, params: new URLSearchParams(location.search) };
}

async function route() {
  if (!session) return;
  shown = location.pathname + location.search;
  const { first, more, params } = section();
  const page = PAGES.find((p) => p.path === first);
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.path === (page ? page.path : null)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current) {
    try {
      current();
    } catch {}
    current = null;
  }
  if (!page) {
    document.title = 'Not found · ShopPlatform admin';
    mount(main, h('h1', { tabindex: '-1', id: 'page-title' }, 'Page not found'), h('p', {}, h('a', { href: `${BASE}/` }, 'Back to the dashboard')));
    focusTitle();
    return;
  }
  const mod = await import(`./pages/${page.module}.js`);
  const ctx = { section: page.path, rest: more, params, navigate, session, setTitle };
  mount(main);
  setTitle(page.title);
  try {
    current = (await mod.render(main, ctx)) || null;
  } catch (err) {
    mount(main, h('h1', { tabindex: '-1', id: 'page-title' }, page.title), errorBox(err));
  }
  focusTitle();
}

function setTitle(title) {
  document.title = `${title} · ShopPlatform admin`;
}

function focusTitle() {
  const t = main.querySelector('h1');
  if (t) t.focus({ preventScroll: false });
}

// ---------------------------------------------------------------- the shell

function shell() {
  const who = session.user;
  nav = h(
    'nav',
    { 'aria-label': 'Main', class: 'nav' },
    h('ul', {}, PAGES.map((p) => h('li', {}, h('a', { href: `${BASE}/${p.path}`, dataset: { path: p.path } }, p.title)))),
  );
  main = h('main', { id: 'main', tabindex: '-1' });
  mount(
    root,
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: `${BASE}/` }, 'ShopPlatform ', h('span', {}, 'admin')),
      h(
        'div',
        { class: 'who' },
        h('span', { class: 'who-name' }, who.email),
        h('button', { type: 'button', class: 'btn btn-quiet', onclick: doSignOut }, 'Sign out'),
      ),
    ),
    h('div', { class: 'layout' }, nav, main),
    h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' }),
  );
}

async function doSignOut() {
  try {
    await signOut();
  } catch {}
  session = null;
  showSignIn('You are signed out.');
}

function showSignIn(message) {
  session = null;
  if (current) {
    try {
      current();
    } catch {}
    current = null;
  }
  document.title = 'Sign in · ShopPlatform admin';
  const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = input({ type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const errors = h('div', { 'aria-live': 'assertive' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin-form', novalidate: true },
    field('Email', email),
    field('Password', password),
    errors,
    button,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    mount(errors);
    if (!email.value || !password.value) {
      mount(errors, h('div', { class: 'error', role: 'alert' }, 'Enter your email and password.'));
      (email.value ? password : email).focus();
      return;
    }
    button.disabled = true;
    try {
      session = await signIn(email.value.trim(), password.value);
      start();
    } catch (err) {
      const text =
        err instanceof ApiError && err.problem
          ? {
              invalid_credentials: 'The email or password is wrong.',
              console_admin_only: 'The console is for administrators only.',
              account_disabled: 'This account is disabled.',
              too_many_requests: 'Too many attempts. Wait a minute and try again.',
            }[err.problem.code]
          : null;
      mount(errors, text ? h('div', { class: 'error', role: 'alert' }, text) : errorBox(err));
      password.select();
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  mount(
    root,
    h(
      'main',
      { id: 'main', class: 'signin' },
      h('h1', {}, 'ShopPlatform admin'),
      message ? h('p', { class: 'notice', role: 'status' }, message) : null,
      form,
    ),
  );
  email.focus();
}

function start() {
  shell();
  route();
}

// Links inside the console navigate without reloading.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest && ev.target.closest('a[href]');
  if (!a || a.getAttribute('href').startsWith('#') || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE) || a.hasAttribute('download')) return;
  ev.preventDefault();
  navigate(url);
});
window.addEventListener('popstate', () => {
  if (location.pathname + location.search !== shown) route();
});

onSessionLost((message) => {
  if (session) {
    toast(message);
    showSignIn(message);
  }
});

(async () => {
  try {
    session = await currentSession();
  } catch (err) {
    mount(root, h('main', { id: 'main' }, h('h1', {}, 'ShopPlatform admin'), errorBox(err)));
    return;
  }
  if (session) start();
  else showSignIn();
})();

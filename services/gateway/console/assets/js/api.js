// The console's API client. The session lives in HttpOnly cookies set by the gateway
// (ADR 0014): this module never sees a token. It keeps the session's CSRF token in memory,
// sends it on every state-changing request, refreshes the session when the access token
// expires (once per failure, shared by concurrent requests), and reports a lost session.

const SESSION = '/api/v1/console/session';

let csrf = null;
let refreshing = null;
let refreshTimer = null;
let onLost = () => {};

/** An API failure: `status`, and the problem document when the answer was one. */
export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message || (problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Called (with a message) when the session cannot be renewed: show the sign-in page. */
export function onSessionLost(fn) {
  onLost = fn;
}

function adopt(view) {
  csrf = view && view.csrfToken ? view.csrfToken : null;
  clearTimeout(refreshTimer);
  // Renew a minute before the access token expires, so pages rarely meet an expired token.
  if (view && view.user && view.expiresIn > 90) {
    refreshTimer = setTimeout(() => refresh().catch(() => {}), (view.expiresIn - 60) * 1000);
  }
  return view;
}

async function send(method, url, { body, idempotencyKey } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['x-csrf-token'] = csrf;
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, null, `The shop cannot be reached (${e.message}). Check the connection and try again.`);
  }
  const type = res.headers.get('content-type') || '';
  const data = res.status === 204 ? null : type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new ApiError(res.status, type.includes('json') ? data : null);
  return data;
}

const query = (q) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q || {})) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
};

/** Renews the session through the refresh cookie; true when it worked. */
export function refresh() {
  if (!refreshing) {
    refreshing = send('POST', `${SESSION}/refresh`)
      .then((view) => {
        adopt(view);
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

const EXPIRED = new Set(['token_expired', 'token_missing', 'token_invalid']);

/**
 * Calls the API: `api('GET', '/api/v1/orders', {query: {status: 'PAID'}})`. Resolves to the
 * decoded JSON; rejects with an ApiError. An expired session is renewed and the call made again.
 */
export async function api(method, path, opts = {}) {
  const url = path + query(opts.query);
  try {
    return await send(method, url, opts);
  } catch (e) {
    if (e.status === 401 && e.problem && EXPIRED.has(e.problem.code)) {
      if (await refresh()) return send(method, url, opts);
      onLost('Your session has expired. Sign in again.');
    }
    throw e;
  }
}

export const get = (path, q) => api('GET', path, { query: q });

// ---------------------------------------------------------------- the session

/** The current session, or null when signed out. Renews an expired one. */
export async function currentSession() {
  try {
    const view = adopt(await send('GET', SESSION));
    if (view.user) return view;
    return (await refresh()) ? adopt(await send('GET', SESSION)) : null;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

export async function signIn(email, password) {
  return adopt(await send('POST', SESSION, { body: { email, password } }));
}

export async function signOut() {
  try {
    await send('DELETE', SESSION);
  } finally {
    adopt(null);
  }
}
